"""`bench --shared-trunk`, end to end: `evalkit run --branches all` vs stock OpenCompass on exported branches.

Both sides evaluate the same branches on the same dataset configs, items and data, each as a user
would run it, timed by the wall clock from outside (process start, imports and weight loads included):

- evalkit: `python -m evalkit run --branches all --suites S --limit N` (one process; the family is
  read once; shared trunk on, so every branch's generations come from one decode of all branches);
- stock: every branch written as a plain checkpoint (`Family.export_branch`, not timed), then the stock
  `opencompass` CLI (`python -m opencompass.cli.main config.py -w DIR`) on them as separate models:
  its default partitioners and LocalRunner start one subprocess per inference task (each loads its
  model's weights) and one per (model, dataset) evaluation task. The model class is evalkit's
  `FamilialBranchModel` pointed at each exported plain checkpoint with shared trunk off, i.e. stock
  transformers `generate` per branch: OpenCompass's own `HuggingFacewithChatTemplate` cannot run on
  transformers 5 (it calls `tokenizer.batch_encode_plus`, which transformers 5 removed).

The predictions files of the two runs are then compared model by model, item by item.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from evalkit.benchmark.interleave import RatioSpec, Stopping, interleave, values_of
from evalkit.errors import EvalkitError
from evalkit.evaluation import data_root
from evalkit.load.family import load_family
from evalkit.load.tiny import default_model_path
from evalkit.oc.model import chat_messages
from evalkit.records.bench import Comparison, TrunkE2E
from evalkit.records.io import write_text_atomic
from evalkit.records.results import load_record

STOCK_MODEL_CLASS = "evalkit.oc.model.FamilialBranchModel"
BASELINE = (
    "stock OpenCompass CLI (default NumWorkerPartitioner + LocalRunner: one subprocess per inference "
    "task, each loading its model, and one per (model, dataset) evaluation task) running each branch "
    "exported with Family.export_branch as its own plain HF checkpoint, through "
    f"{STOCK_MODEL_CLASS} with shared trunk off (stock transformers generate per branch); "
    "OpenCompass's HuggingFacewithChatTemplate crashes on transformers 5 "
    "(tokenizer.batch_encode_plus)"
)


@dataclass(frozen=True)
class E2ESetup:
    model: str | None  # checkpoint directory; None: the embedded tiny family
    suite: str = "stem"
    limit: int = 2
    max_out_len: int | None = None  # None: what `run` uses (16 tokens for the embedded tiny family)
    device: str = "cpu"
    batch_size: int = 8
    work_dir: str | None = None  # keep both runs' files here; None: a temporary directory, removed after
    rounds: int = 1  # 1: one run of each side, a single measurement; more: that run, then `rounds` interleaved
    seed: int = 0


def end_to_end(setup: E2ESetup) -> tuple[TrunkE2E, list[str], Comparison | None]:
    """Run both sides, compare their predictions, and return the timings, notes and the verdict.

    With `rounds` >= 2 the first run of each side (which sets up the stock config and warms the file
    cache) is not timed into the figure: `rounds` more runs of each, interleaved in seeded order
    (`evalkit.benchmark.interleave`), give the medians and the interval, returned as a comparison.
    """
    if setup.work_dir:
        Path(setup.work_dir).mkdir(parents=True, exist_ok=True)
        return _end_to_end(setup, Path(setup.work_dir))
    with tempfile.TemporaryDirectory(prefix="evalkit-e2e-") as tmp:
        return _end_to_end(setup, Path(tmp))


def _end_to_end(setup: E2ESetup, work: Path) -> tuple[TrunkE2E, list[str], Comparison | None]:
    env = _env(setup)
    ours_cmd = _evalkit_command(setup, work / "evalkit")
    ours_s = _timed(ours_cmd, env, "evalkit run")
    run_dir = _only_dir(work / "evalkit" / "results")
    configs = load_record(run_dir / "results.json").provenance.configs
    models = [dict(m) for m in configs.models or ()]
    datasets = [dict(d) for d in configs.datasets or ()]
    start = time.perf_counter()
    exported = export_branches(setup.model, [m["branch"] for m in models], work / "branches")
    export_s = time.perf_counter() - start
    config_file = write_stock_config(work / "stock_config.py", stock_models(models, exported), datasets)
    stock_cmd = [sys.executable, "-m", "opencompass.cli.main", str(config_file), "-w", str(work / "stock")]
    stock_s = _timed(stock_cmd, env, "stock OpenCompass")
    stock_dir = _only_dir(work / "stock")
    abbrs, ds = [m["abbr"] for m in models], [d["abbr"] for d in datasets]
    compared, mismatches = compare_predictions(run_dir, stock_dir, abbrs, ds)
    notes = [f"end to end: {m.describe()}" for m in mismatches[:3]]
    if mismatches:
        notes += tokenizer_notes(setup.model, next(iter(exported.values())), run_dir, abbrs[0], ds, mismatches)
    comparison = None
    ratio, ci = stock_s / ours_s, None
    if setup.rounds >= 2:
        comparison = _repeated(setup, work, env, stock_cmd)
        ours_s, stock_s = median(values_of(comparison, "evalkit")), median(values_of(comparison, "stock"))
        estimate = comparison.ratios[0]
        ratio, ci = estimate.value, estimate.ci
    result = TrunkE2E(
        suite=setup.suite,
        limit=setup.limit,
        branches=tuple(m["branch"] for m in models),
        datasets=tuple(ds),
        evalkit_s=round(ours_s, 3),
        stock_s=round(stock_s, 3),
        e2e_stock_over_evalkit=ratio,
        predictions_identical=not mismatches and compared > 0,
        items_compared=compared,
        export_s=round(export_s, 3),
        evalkit_command=_shell(ours_cmd),
        stock_command=_shell(stock_cmd),
        baseline=BASELINE,
        rounds=setup.rounds,
        e2e_stock_over_evalkit_ci=ci,
    )
    return result, notes, comparison


def _repeated(setup: E2ESetup, work: Path, env: dict[str, str], stock_cmd: list[str]) -> Comparison:
    """`rounds` more runs of each side, interleaved, each into a directory of its own."""
    runs = itertools.count(1)

    def evalkit_once() -> float:
        return _timed(_evalkit_command(setup, work / f"evalkit-{next(runs)}"), env, "evalkit run")

    def stock_once() -> float:
        return _timed([*stock_cmd[:-1], str(work / f"stock-{next(runs)}")], env, "stock OpenCompass")

    return interleave(
        {"evalkit": evalkit_once, "stock": stock_once},
        [RatioSpec("stock/evalkit", ("stock",), ("evalkit",))],
        stopping=Stopping(min_rounds=setup.rounds, budget_s=math.inf, max_rounds=setup.rounds),
        name=f"end to end {setup.suite} limit {setup.limit}",
        warmup=0,
        seed=setup.seed,
    )


def export_branches(model: str | None, branches: Sequence[str], out: Path) -> dict[str, Path]:
    """Each branch written as a plain checkpoint under `out/<branch>`, at the checkpoint's stored dtype."""

    family = load_family(model or default_model_path())
    return {b: family.export_branch(b, out / b) for b in branches}


def stock_models(models: Sequence[dict[str, Any]], exported: dict[str, Path]) -> list[dict[str, Any]]:
    """The run's model configs, each pointed at its exported branch as a single-branch model, shared trunk off."""
    return [
        {**m, "path": str(exported[m["branch"]].resolve()), "branch": None, "shared_trunk": False, "run_branches": []}
        for m in models
    ]


def write_stock_config(path: Path, models: Sequence[dict[str, Any]], datasets: Sequence[dict[str, Any]]) -> Path:
    """An OpenCompass config file (plain literals: every class is a dotted import path already)."""
    return write_text_atomic(path, f"models = {list(models)!r}\n\ndatasets = {list(datasets)!r}\n")


@dataclass(frozen=True)
class Mismatch:
    model: str
    dataset: str
    item: str | None  # None: the whole file (missing, or other items)
    what: str

    def describe(self) -> str:
        return f"{self.model}/{self.dataset}" + ("" if self.item is None else f" item {self.item}") + f": {self.what}"


def compare_predictions(
    ours: Path, stock: Path, abbrs: Sequence[str], datasets: Sequence[str]
) -> tuple[int, list[Mismatch]]:
    """Items compared, and every difference, over predictions/<abbr>/<dataset>.json of both runs."""
    compared, diffs = 0, []
    for abbr in abbrs:
        for ds in datasets:
            a, b = _predictions(ours, abbr, ds), _predictions(stock, abbr, ds)
            if a is None or b is None:
                diffs.append(
                    Mismatch(abbr, ds, None, f"no predictions from the {'evalkit' if a is None else 'stock'} run")
                )
                continue
            if set(a) != set(b):
                diffs.append(Mismatch(abbr, ds, None, "the runs predicted different items"))
                continue
            compared += len(a)
            diffs += [Mismatch(abbr, ds, k, f"{a[k]!r} != {b[k]!r}") for k in sorted(a) if a[k] != b[k]]
    return compared, diffs


def tokenizer_notes(
    model: str | None, exported: Path, run_dir: Path, abbr: str, datasets: Sequence[str], mismatches: Sequence[Mismatch]
) -> list[str]:
    """Why predictions may differ: the exported checkpoint's tokenizer, as transformers loads it for a plain
    model type, may split the run's prompts into other tokens than the family's tokenizer does."""
    from transformers import AutoTokenizer

    ours = AutoTokenizer.from_pretrained(str(model or default_model_path()), local_files_only=True)
    theirs = AutoTokenizer.from_pretrained(str(exported), local_files_only=True)
    total, differ = 0, set()
    for ds in datasets:
        items = json.loads((run_dir / "predictions" / abbr / f"{ds}.json").read_text(encoding="utf-8"))
        for key, item in items.items():
            prompt = chat_messages(item["origin_prompt"])
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
            text = ours.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            total += 1
            if ours(text, add_special_tokens=False)["input_ids"] != theirs(text, add_special_tokens=False)["input_ids"]:
                differ.add((ds, key))
    if not differ:
        return []
    explained = sum((m.dataset, m.item) in differ for m in mismatches)
    return [
        f"end to end: the exported checkpoints' tokenizer loads as {type(theirs).__name__} (the family's as "
        f"{type(ours).__name__}) and tokenizes {len(differ)} of {total} prompts into other tokens, so those "
        f"items get another model input on the stock side; {explained} of the {len(mismatches)} differing "
        "predictions are on those items"
    ]


def _predictions(run_dir: Path, abbr: str, ds: str) -> dict[str, Any] | None:
    path = run_dir / "predictions" / abbr / f"{ds}.json"
    if not path.is_file():
        return None
    return {k: v.get("prediction") for k, v in json.loads(path.read_text(encoding="utf-8")).items()}


def _evalkit_command(setup: E2ESetup, out: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "evalkit",
        "run",
        "--branches",
        "all",
        "--suites",
        setup.suite,
        "--limit",
        str(setup.limit),
        "--out",
        str(out),
        "--device",
        setup.device,
        "--batch-size",
        str(setup.batch_size),
    ]
    if setup.model:
        cmd += ["--model", setup.model]
    if setup.max_out_len:
        cmd += ["--max-out-len", str(setup.max_out_len)]
    return cmd


def _env(setup: E2ESetup) -> dict[str, str]:
    """Both sides read the same data root; on the tiny family both run one thread, as `run` does for it."""

    root = data_root(None)
    env = {**os.environ, "COMPASS_DATA_CACHE": str(root), "TQDM_DISABLE": "1"}
    if setup.model is None:
        env["OMP_NUM_THREADS"] = "1"
    return env


def _timed(cmd: list[str], env: dict[str, str], what: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise EvalkitError(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")
    return seconds


def _only_dir(parent: Path) -> Path:
    dirs = [p for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
    if len(dirs) != 1:
        raise EvalkitError(f"expected one run directory under {parent}, found {len(dirs)}")
    return dirs[0]


def _shell(cmd: Sequence[str]) -> str:
    import shlex

    return " ".join(shlex.quote(c) for c in cmd)
