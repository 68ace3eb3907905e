"""What `evalkit run` prints at the end: the models x datasets table and where every file went."""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from evalkit.catalog.datasets import DATASETS
from evalkit.evaluation.state import RunResult


def summary(result: RunResult) -> str:
    """The table of models x datasets (points, items), with whether each model ran on the shared trunk, and
    where every file went."""
    record = result.record
    keys = [d.key for d in DATASETS if any(s.dataset == d.key for s in record.scores)]
    shared = record.provenance.configs.shared_trunk() or {}
    rows = []
    for m in record.models:
        cells = []
        for k in keys:
            s = record.score(m.abbr, k)
            cells.append("-" if s is None else f"{s.value:.1f} ({s.n})")
        on = shared.get(m.abbr)
        rows.append([model_label(m.name, m.abbr), "-" if on is None else "on" if on else "off", *cells])
    titles = [f"{DATASETS[[d.key for d in DATASETS].index(k)].title}" for k in keys]
    table = tabulate(rows, headers=["model", "shared trunk", *titles], disable_numparse=True)
    d = result.run_dir
    tasks = record.provenance.configs.tasks or {}
    ran = sum(1 for t in tasks.values() if t.status == "ran")
    sessions = record.provenance.configs.sessions or ()
    seconds = float(sessions[-1].duration_s) if sessions else record.provenance.duration_s or 0.0
    done = f"{len(tasks)} tasks ({ran} run, {len(tasks) - ran} reused from earlier) in {seconds:.0f} s"
    if len(sessions) > 1:
        done += f" ({record.provenance.duration_s or 0.0:.0f} s over {len(sessions)} sessions)"
    files = [
        f"record:       {result.record_path}",
        f"predictions:  {d / 'predictions'}/<model>/<dataset>.json",
        f"results:      {d / 'results'}/<model>/<dataset>.json  (per-item details)",
        f"run config:   {d / 'run_config.json'}  (resume with {_resume_flags(result)})",
    ]
    return f"{done}; scores in points (items)\n" + table + "\n\n" + "\n".join(files)


def model_label(name: str, abbr: str) -> str:
    """One name per model: its display name, with the abbr that names its files when that is not the same
    name in other letter case (`tiny-ruyi-E297K`, but `Qwen2.5-7B-Instruct (qwen2.5-7b-instruct)`)."""
    return name if name.lower() == abbr.lower() else f"{name} ({abbr})"


def _resume_flags(result: RunResult) -> str:
    out = result.run_dir.parent.parent
    return f"--resume {result.run_id}" if out == Path(".") else f"--out {out} --resume {result.run_id}"
