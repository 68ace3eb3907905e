"""`evalkit run` on workers (OpenCompass's LocalRunner): family-grouped tasks give the in-process run's
predictions, keep per-task timing, resume, and name each failed task in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("opencompass")
pytestmark = pytest.mark.slow

SETTINGS = dict(suites="stem", limit=2, branches="2,7", batch_size=2)  # 2 branches x 3 datasets


def _quiet(_: str) -> None:
    pass


def _files(run_dir: Path, sub: str) -> dict[str, str]:
    root = run_dir / sub
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.json"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_path):
    from evalkit import run

    inproc = run(**SETTINGS, out=str(tmp_path_factory.mktemp("inproc")), echo=_quiet)
    lines: list[str] = []
    grouped = run(**SETTINGS, max_num_workers=2, out=str(tmp_path_factory.mktemp("grouped")), echo=lines.append)
    return dict(inproc=inproc, grouped=grouped, lines=lines)


def test_grouped_workers_predict_what_the_in_process_run_does(runs):
    a, b = runs["inproc"].run_dir, runs["grouped"].run_dir
    assert len(_files(a, "predictions")) == 6
    assert _files(b, "predictions") == _files(a, "predictions")
    assert _files(b, "results") == _files(a, "results")
    assert [(s.model, s.dataset, s.value, s.items) for s in runs["grouped"].record.scores] == [
        (s.model, s.dataset, s.value, s.items) for s in runs["inproc"].record.scores
    ]


def test_grouped_workers_record_each_answers_signals_as_the_in_process_run_does(runs):
    def signals(result):
        return {(s.model, s.dataset, i.id): i.signals for s in result.record.scores for i in s.items or ()}

    grouped, inproc = signals(runs["grouped"]), signals(runs["inproc"])
    assert len(grouped) == 12 and all(v is not None and v.mean_logprob is not None for v in grouped.values())
    assert grouped == inproc


def test_each_worker_task_runs_the_whole_family(runs):
    run_dir = runs["grouped"].run_dir
    logs = sorted(run_dir.glob("logs/infer/*/*.out"))
    assert len(logs) == 2  # 3 datasets dealt to 2 workers; not 6 (one per branch and dataset)
    assert any(
        "inference: 2 tasks (grouped by family and data shard; 6 model x data pairs)" in s for s in runs["lines"]
    )


def test_worker_tasks_keep_their_timing(runs):
    tasks = runs["grouped"].record.provenance.configs.tasks
    assert len(tasks) == 6
    assert all(t.status == "ran" and t.seconds is not None and t.seconds > 0 for t in tasks.values())


def test_resume_on_workers_reruns_only_what_is_missing(runs, tmp_path):
    import shutil

    from evalkit import run

    src = runs["grouped"].run_dir
    out = tmp_path / "out"
    run_dir = out / "results" / src.name
    shutil.copytree(src, run_dir)
    (run_dir / "results.json").unlink()
    for sub in ("predictions", "results"):
        (run_dir / sub / "tiny-ruyi-e297k" / "gsm8k.json").unlink()
    for path in (run_dir / "timings" / "tiny-ruyi-e297k").glob("gsm8k.*"):
        path.unlink()
    kept = {p: p.stat().st_mtime_ns for p in run_dir.glob("*/*/*.json") if "gsm8k" not in p.name}

    result = run(resume=src.name, out=str(out), echo=_quiet)

    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert _files(run_dir, "predictions") == _files(runs["inproc"].run_dir, "predictions")
    tasks = result.record.provenance.configs.tasks
    assert tasks["tiny-ruyi-e297k/gsm8k"].status == "ran" and tasks["tiny-ruyi-e297k/gsm8k"].session == 1
    assert tasks["tiny-ruyi-e297k/gsm8k"].seconds is not None
    assert sum(t.status == "reused" for t in tasks.values()) == 5


def test_shards_join_into_the_in_process_predictions(runs, tmp_path, monkeypatch):
    """A dataset cut into shards (one item each here) gives the same predictions file as one task."""
    from evalkit.evaluation.options import fixture_root
    from evalkit.oc.workers import Workers, run_on_workers

    configs = runs["inproc"].record.provenance.configs
    monkeypatch.setenv("COMPASS_DATA_CACHE", str(fixture_root()))
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    work_dir = tmp_path / "run"
    models = [json.loads(json.dumps(m)) for m in configs.models]
    datasets = [json.loads(json.dumps(d)) for d in configs.datasets]
    failures = run_on_workers(models, datasets, work_dir, Workers(max_num_workers=2, min_shard=1), lines.append)

    assert failures == []
    assert any("inference: 2 tasks" in line and "12 model x data pairs" in line for line in lines)
    assert _files(work_dir, "predictions") == _files(runs["inproc"].run_dir, "predictions")
    assert _files(work_dir, "results") == _files(runs["inproc"].run_dir, "results")
    timings = sorted(p.name for p in (work_dir / "timings" / "tiny-ruyi-e111k").iterdir())
    assert "gsm8k@0-1.infer.json" in timings and "gsm8k@1-2.infer.json" in timings


def test_a_failed_worker_task_is_one_line_naming_its_cause(runs, tmp_path, monkeypatch):
    from evalkit.evaluation.options import fixture_root
    from evalkit.oc.workers import Workers, run_on_workers

    configs = runs["inproc"].record.provenance.configs
    monkeypatch.setenv("COMPASS_DATA_CACHE", str(fixture_root()))
    monkeypatch.chdir(tmp_path)
    models = [dict(m, path=str(tmp_path / "gone")) for m in configs.models]  # the checkpoint was moved away
    datasets = [d for d in configs.datasets if d["abbr"] == "gsm8k"]
    failures = run_on_workers(models, datasets, tmp_path / "run", Workers(max_num_workers=2), _quiet)

    assert len(failures) == 1
    (line,) = failures
    assert line.startswith("inference of tiny-ruyi-e111k, tiny-ruyi-e297k on gsm8k failed: ")
    assert str(tmp_path / "gone") in line and "\n" not in line
    assert line.endswith(".out") and os.path.isfile(line.rsplit("log: ", 1)[1])
    assert not (tmp_path / "run" / "results").exists()  # nothing to evaluate: no second failure for it
