"""OpenCompass's inference and evaluation tasks, timed: what a runner's worker runs.

`TimedInferTask` and `TimedEvalTask` are OpenCompass's `OpenICLInferTask` and `OpenICLEvalTask` (a
task type is OpenCompass's extension point for runners) that also note how long each (model,
dataset) pair took, in `timings/<model>/<dataset>.<stage>.json` under the run directory, so that a run
on workers records per-task timing as an in-process run does. A worker process runs one with

    python -m evalkit.oc.tasks infer|eval CONFIG

where an `EvalkitError` ends it with one line on stderr (`error: ...`) and exit code 2, which the
parent quotes as the task's cause.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from opencompass.tasks import OpenICLEvalTask, OpenICLInferTask

from evalkit.oc.signals import recording, signals_path
from evalkit.records.io import write_json_atomic

STAGES = ("infer", "eval")


def timing_path(work_dir: Path, model: str, dataset: str, stage: str) -> Path:
    return work_dir / "timings" / model / f"{dataset}.{stage}.json"


def _note(task: Any, stage: str, seconds: float) -> None:
    path = timing_path(Path(task.work_dir), str(task.model_cfg["abbr"]), str(task.dataset_cfg["abbr"]), stage)
    write_json_atomic(path, {"seconds": round(seconds, 3)})


def _command(stage: str, cfg_path: str, template: str) -> str:
    return template.format(task_cmd=f"{sys.executable} -m evalkit.oc.tasks {stage} {cfg_path}")


class TimedInferTask(OpenICLInferTask):
    def get_command(self, cfg_path: str, template: str) -> str:
        return _command("infer", cfg_path, template)

    def _inference(self) -> None:
        start = time.perf_counter()
        # each answer's confidence signals, from the model into this task's own file (a shard's: its own)
        with recording(signals_path(Path(self.work_dir), str(self.model_cfg["abbr"]), str(self.dataset_cfg["abbr"]))):
            super()._inference()
        _note(self, "infer", time.perf_counter() - start)


class TimedEvalTask(OpenICLEvalTask):
    def get_command(self, cfg_path: str, template: str) -> str:
        return _command("eval", cfg_path, template)

    def _score(self) -> None:
        start = time.perf_counter()
        super()._score()
        _note(self, "eval", time.perf_counter() - start)


def task_seconds(work_dir: Path, model: str, dataset: str) -> float | None:
    """Seconds a (model, dataset) task took on workers: its shards' inference plus its evaluation."""
    where = work_dir / "timings" / model
    files = [*where.glob(f"{dataset}@*.infer.json"), where / f"{dataset}.infer.json", where / f"{dataset}.eval.json"]
    total, seen = 0.0, False
    for path in files:
        try:
            total += float(json.loads(path.read_text(encoding="utf-8"))["seconds"])
            seen = True
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return round(total, 3) if seen else None


def main(argv: list[str]) -> int:
    from mmengine.config import Config

    from evalkit.errors import EvalkitError

    if len(argv) != 2 or argv[0] not in STAGES:
        print("usage: python -m evalkit.oc.tasks infer|eval CONFIG", file=sys.stderr)
        return 2
    task = (TimedInferTask if argv[0] == "infer" else TimedEvalTask)(Config.fromfile(argv[1]))
    # Slurm's time limit, preemption and scancel send SIGTERM first: exit through `finally` blocks, so the
    # task's signal sink is written before the process ends.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    start = time.perf_counter()
    try:
        task.run()
    except EvalkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"time elapsed: {time.perf_counter() - start:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
