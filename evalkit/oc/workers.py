"""Running a plan's tasks on workers: OpenCompass's LocalRunner (subprocesses) or SlurmRunner (srun jobs).

Inference, then evaluation, each partitioned by OpenCompass's partitioner mechanism: with `group`,
`FamilyPartitioner` (one task per family and data shard, so the shared trunk is kept); without, stock
`NaivePartitioner` (one task per model and dataset). The tasks are evalkit's timed subclasses of
OpenCompass's own (`evalkit.oc.tasks`). A task that fails becomes one line naming its models and
datasets, why it failed (read from its log: Slurm's time or memory kill, a bad partition, a missing
command, the error the task raised) and where the log is; what finished is kept for `--resume`.
"""

from __future__ import annotations

import io
import logging
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError


@dataclass(frozen=True)
class Workers:
    """How tasks are spread: the runner, its workers, and the Slurm options passed through to srun."""

    runner: str = "local"  # local | slurm
    max_num_workers: int = 1
    group: bool = True
    partition: str | None = None
    quotatype: str | None = None
    retries: int = 2
    slurm_args: tuple[str, ...] = field(default=())
    min_shard: int = 16

    def runner_config(self, task_type: type) -> dict[str, Any]:
        cfg: dict[str, Any] = dict(task=dict(type=task_type), max_num_workers=self.max_num_workers)
        if self.runner == "slurm":
            cfg.update(
                type="SlurmRunner",
                partition=self.partition,
                quotatype=self.quotatype,
                retry=self.retries,
                extra_command=[shlex.quote(a) for a in self.slurm_args],  # srun runs through a shell
            )
        else:
            cfg.update(type="LocalRunner")
        return cfg


def check_slurm(workers: Workers) -> None:
    """Before anything loads: srun on the PATH, and the partition known to the cluster (when sinfo can say)."""
    if workers.runner != "slurm":
        return
    if shutil.which("srun") is None:
        raise EvalkitError(
            "--runner slurm starts each task with Slurm's srun, which is not on the PATH; run evalkit on a "
            "node of the cluster (or load its Slurm module), or drop --runner slurm to run here"
        )
    if workers.partition is None or shutil.which("sinfo") is None:
        return
    try:
        found = subprocess.run(
            ["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return  # the controller does not answer: each task's srun will say why
    names = sorted({line.strip() for line in found.stdout.splitlines() if line.strip()})
    if found.returncode == 0 and names and workers.partition not in names:
        raise EvalkitError(
            f"Slurm has no partition {workers.partition!r} (its partitions: {', '.join(names)}); "
            "pass one of them to --partition"
        )


def run_on_workers(
    models: list[dict[str, Any]],
    datasets: list[dict[str, Any]],
    work_dir: Path,
    workers: Workers,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """Run every unfinished (model, dataset) pair; returns one line per failed task (empty: all finished)."""
    from mmengine.config import Config
    from opencompass.partitioners import NaivePartitioner

    from evalkit.oc.partition import FamilyPartitioner, merge_shards
    from evalkit.oc.tasks import TimedEvalTask, TimedInferTask

    cfg = Config(
        dict(
            models=models,
            datasets=datasets,
            work_dir=str(work_dir),
            eval=dict(runner=dict(task=dict(dump_details=True))),
        )
    )
    predictions = work_dir / "predictions"
    failures: list[str] = []
    for stage, task_type, out in (("infer", TimedInferTask, "predictions"), ("eval", TimedEvalTask, "results")):
        if workers.group:
            partitioner: Any = FamilyPartitioner(
                out_dir=str(work_dir / out),
                num_worker=workers.max_num_workers,
                split=stage == "infer",
                min_shard=workers.min_shard,
                requires_dir=None if stage == "infer" else str(predictions),
            )
        else:
            partitioner = NaivePartitioner(out_dir=str(work_dir / out))
        with _runner_quiet():
            tasks = partitioner(cfg)
        if stage == "eval":
            tasks = [t for t in tasks if _predicted(t, predictions)]
        if tasks:
            echo(_stage_line(stage, tasks, workers))
        failures += _launch(tasks, task_type, stage, workers)
        if stage == "infer" and workers.group:
            merge_shards(predictions, [str(m["abbr"]) for m in models], partitioner.shards)
    return failures


def _stage_line(stage: str, tasks: list[Any], workers: Workers) -> str:
    pairs = sum(len(ds) for t in tasks for ds in t["datasets"])
    how = "grouped by family and data shard" if workers.group else "one per model and dataset"
    where = f"Slurm partition {workers.partition}" if workers.partition else workers.runner
    what = "inference" if stage == "infer" else "evaluation"
    return (
        f"{what}: {len(tasks)} {'task' if len(tasks) == 1 else 'tasks'} ({how}; {pairs} model x data pairs) on "
        f"{workers.max_num_workers} "
        f"{'worker' if workers.max_num_workers == 1 else 'workers'} ({where}); logs under "
        f"logs/{stage}/ in the run directory"
    )


def _predicted(task: dict[str, Any], predictions: Path) -> bool:
    return all(
        (predictions / str(m["abbr"]) / f"{d['abbr']}.json").is_file()
        for m, ds in zip(task["models"], task["datasets"], strict=True)
        for d in ds
    )


def _launch(tasks: list[Any], task_type: type, stage: str, workers: Workers) -> list[str]:
    """Run the tasks with OpenCompass's runner; one line per task whose exit code is not 0."""
    if not tasks:
        return []
    from opencompass.registry import RUNNERS, TASKS

    for t in tasks:
        t["eval"] = dict(runner=dict(task=dict(dump_details=True)))
    runner = RUNNERS.build(workers.runner_config(task_type))
    by_name = {}
    for t in tasks:
        built = TASKS.build(dict(cfg=t, type=task_type))
        by_name[built.name] = (t, Path(built.get_log_path(file_extension="out")))
    with _runner_quiet():
        status = runner.launch(tasks)
    return [
        _failure_line(stage, by_name[name][0], code, by_name[name][1], workers) for name, code in status if code != 0
    ]


@contextmanager
def _runner_quiet() -> Iterator[None]:
    """OpenCompass's partitioners and runners print every task's whole name as it starts and fails, and
    a progress bar; evalkit says what runs in one line per stage and each failure in a line of its own."""
    from opencompass.utils import get_logger

    logger = get_logger()
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _failure_line(stage: str, task: dict[str, Any], code: int, log: Path, workers: Workers) -> str:
    models = list(dict.fromkeys(str(m["abbr"]) for m in task["models"]))
    datasets = list(dict.fromkeys(str(d["abbr"]) for ds in task["datasets"] for d in ds))
    what = "inference" if stage == "infer" else "evaluation"
    return (
        f"{what} of {_few(models)} on {_few(datasets)} failed: {failure_cause(_tail(log), code, workers)}; log: {log}"
    )


def _few(names: Sequence[str]) -> str:
    return ", ".join(names) if len(names) <= 3 else f"{', '.join(names[:2])} and {len(names) - 2} more"


def _tail(log: Path) -> str:
    try:
        return log.read_text(encoding="utf-8", errors="replace")[-20000:]
    except OSError:
        return ""


# (pattern in the task's log, the cause in words); the first that matches wins
_CAUSES = (
    (r"DUE TO TIME LIMIT", "Slurm cancelled it at its time limit; ask for more with --slurm-arg=--time=..."),
    (
        r"exceeded memory limit|Exceeded job memory limit|oom[-_ ]kill|OUT_OF_MEMORY",
        "Slurm killed it for exceeding its memory limit; ask for more with --slurm-arg=--mem=...",
    ),
    (r"Invalid partition name|invalid partition specified", "Slurm has no partition {partition!r}; fix --partition"),
    (r"DUE TO PREEMPTION", "Slurm preempted it"),
    (r"CANCELLED", "Slurm cancelled the job"),
    (r"srun: (?:error|fatal): (.+)", None),
    (r"srun: (?:command )?not found|srun: No such file", "srun is not on the workers' PATH"),
)


def failure_cause(log: str, code: int, workers: Workers) -> str:
    """Why a task failed, in words, from the tail of its log and its exit code."""
    for pattern, cause in _CAUSES:
        match = re.search(pattern, log)
        if match:
            return cause.format(partition=workers.partition) if cause else f"srun: {match.group(1).strip()}"
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
        if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*", line):
            return line
    if code in (137, -9):
        return f"killed (exit code {code}: out of memory?)"
    return f"exit code {code}" + (f"; last output: {lines[-1][:200]}" if lines else "")
