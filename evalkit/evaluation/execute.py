"""Executing a settled run: a run directory, OpenCompass's tasks in order, and the results record.

`execute` writes everything under `<out>/results/<run-id>/` (OpenCompass's predictions/ and results/
trees, run_config.json, progress.json and `results.json`, one `ResultsRecord`), and never touches an
earlier run. With `resume`, it finishes the stored run in place, after checking that the checkpoints,
dtype, generation settings and dataset configs are still the ones it started with. Either way it holds
the run directory's lock (`lock.py`) until the record is written, so no other process works there.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bars

from evalkit.catalog.datasets import BY_KEY, dataset_of, title
from evalkit.errors import EvalkitError
from evalkit.evaluation.lock import run_lock
from evalkit.evaluation.options import RunConfig
from evalkit.evaluation.plan import Plan, count, make_plan
from evalkit.evaluation.state import Progress, RunInterrupted, RunResult, StoredRun, resume_command, write_run_config
from evalkit.oc.collect import collect_scores
from evalkit.oc.driver import order_tasks, quiet_opencompass, release_models, repair_partial, run_in_process
from evalkit.oc.tasks import task_seconds
from evalkit.oc.workers import Workers, check_slurm, run_on_workers
from evalkit.records.io import cannot_write
from evalkit.records.provenance import (
    RecordError,
    RunProvenance,
    Session,
    TaskTiming,
    command_line,
    device_description,
    git_revision,
    package_versions,
)
from evalkit.records.results import Provenance, ResultsRecord, save_record
from evalkit.sandbox.runner import sandbox_capabilities


def execute(config: RunConfig, *, resume: StoredRun | None = None, echo: Callable[[str], None] = print) -> RunResult:
    """Run a settled config: a new run directory, or the stored run `resume` continued in place."""
    check_slurm(workers(config))  # no srun, or a partition the cluster lacks: one line before anything loads
    plan = make_plan(config)  # everything that can fail up front fails here, before a directory is made
    if resume is not None:
        resume.check(plan.identity)
        run_id, run_dir = resume.run_id, resume.run_dir
    else:
        run_id, run_dir = _new_run_dir(Path(config.out))
    with run_lock(run_dir, run_id, command_line()) as stale:
        if resume is None:
            write_run_config(run_dir, config, plan.identity)
        return _execute(config, plan, run_id, run_dir, resume, stale, echo)


def _execute(
    config: RunConfig,
    plan: Plan,
    run_id: str,
    run_dir: Path,
    resume: StoredRun | None,
    stale: list[Path],
    echo: Callable[[str], None],
) -> RunResult:
    """The run in `run_dir`, which this process has locked."""
    for line in plan.notes:
        echo(line)
    notes = [f"removed {p.relative_to(run_dir)}, left by a write that was killed" for p in stale]
    if resume is not None:
        env_data = os.environ.get("COMPASS_DATA_CACHE")
        if env_data and str(Path(env_data).expanduser().resolve()) != config.data_dir:
            notes.append(f"COMPASS_DATA_CACHE is ignored: the run reads the data it started with ({plan.data_source})")
        if resume.identity is None:
            notes.append(
                "run_config.json comes from an older evalkit that recorded no checkpoint identity, so "
                "whether the checkpoint changed since the run started cannot be checked"
            )
        notes += repair_partial(run_dir)
    progress = Progress.begin(run_dir, command_line(), resume=resume is not None)
    notes += progress.notes
    for line in notes:
        echo(f"resume: {line}")
    tasks = order_tasks(plan.models, plan.datasets)
    echo(f"run {run_id}: {task_count(len(plan.models), [d['abbr'] for d in plan.datasets])} -> {run_dir}")
    try:
        with (
            _threads(1 if config.embedded_model else None),
            _env("COMPASS_DATA_CACHE", str(plan.data_root)),
            _tidy_cwd(),
        ):
            failures = _run_tasks(config, tasks, run_dir, progress, echo)
    except KeyboardInterrupt:
        done = sum(1 for t in tasks if t.done(run_dir))
        raise RunInterrupted(
            f"run {run_id} interrupted after {count(done, 'finished task')} of {len(tasks)}, all kept; finish it "
            f"with: {resume_command(Path(config.out), run_id)}"
        ) from None
    if failures:
        raise TasksFailed(failures, resume_command(Path(config.out), run_id))
    progress.finish()
    record = _record(config, plan, run_id, run_dir, progress, [f"{t.model_abbr}/{t.dataset_abbr}" for t in tasks])
    path = save_record(record, run_dir / "results.json")
    return RunResult(run_id, run_dir, path, record, tuple(plan.notes) + tuple(notes))


class TasksFailed(EvalkitError):
    """Tasks on workers that failed: one line each, then how to finish the run once the cause is fixed."""

    def __init__(self, failures: list[str], resume: str):
        self.failures = failures
        super().__init__(
            "\n".join(
                [f"{count(len(failures), 'task')} on workers failed; every finished task is kept:"]
                + [f"  {line}" for line in failures]
                + [f"fix the cause and finish the run with: {resume}"]
            )
        )


def workers(config: RunConfig) -> Workers:
    """The run's workers, from its settings."""
    return Workers(
        runner=config.runner,
        max_num_workers=config.max_num_workers,
        group=config.group_tasks,
        partition=config.partition,
        quotatype=config.quotatype,
        retries=config.slurm_retries,
        slurm_args=config.slurm_args,
    )


def _new_run_dir(out: Path) -> tuple[str, Path]:
    base = out / "results"
    for _ in range(5):
        run_id = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        try:
            (base / run_id).mkdir(parents=True, exist_ok=False)
            return run_id, base / run_id
        except FileExistsError:
            continue
        except OSError as e:
            raise cannot_write(base / run_id, e) from None
    raise EvalkitError(f"could not create a fresh run directory under {base}; check that it is writable")


# --- running -----------------------------------------------------------------------------------


@contextmanager
def _tidy_cwd() -> Iterator[None]:
    """OpenCompass makes scratch folders in the working directory; remove the empty ones it made."""
    scratch = [Path(name) for name in ("icl_inference_output", "tmp") if not Path(name).exists()]
    try:
        yield
    finally:
        for path in scratch:
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """OpenCompass's loaders (and its task subprocesses) read the data root from the environment."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """The tiny family's matrices are too small to gain from threads; extra threads only contend."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def task_count(models: int, abbrs: list[str]) -> str:
    """'4 models x 17 OpenCompass datasets = 68 tasks', saying how 17 configs make the table's 13 columns."""
    keys = [dataset_of(a)[0] for a in abbrs]
    canonical = list(dict.fromkeys(keys))
    line = (
        f"{count(models, 'model')} x {count(len(abbrs), 'OpenCompass dataset')} = {count(models * len(abbrs), 'task')}"
    )
    split = [k for k in canonical if keys.count(k) > 1]
    if not split:
        return line
    parts = [f"{title(k)} as {keys.count(k)} {_noun(k, keys.count(k))}" for k in split]
    parts[0] = parts[0].replace(" as ", " runs as ", 1)
    return f"{line} (the table's {len(canonical)} datasets: {', '.join(parts)})"


def _noun(key: str, n: int) -> str:
    groups = BY_KEY[key].groups
    return groups.noun(n) if groups is not None else "configs"


def _run_tasks(
    config: RunConfig, tasks: list[Any], run_dir: Path, progress: Progress, echo: Callable[[str], None]
) -> list[str]:
    """Run every unfinished task; `progress` notes each one as it finishes (a kill loses no timing).

    Returns one line per task that failed on workers (in process, a failure raises).
    """
    if config.runner == "slurm" or config.max_num_workers > 1:
        release_models()  # each task's process loads its own model
        todo = [t for t in tasks if not t.done(run_dir)]
        models = list({t.model_abbr: t.model for t in tasks}.values())
        datasets = list({t.dataset_abbr: t.dataset for t in tasks}.values())
        # the tiny family gains nothing from threads (see _threads); a worker process takes it from here
        with _env("OMP_NUM_THREADS", "1") if config.embedded_model else nullcontext():
            failures = run_on_workers(models, datasets, run_dir, workers(config), echo)
        for t in todo:
            if t.done(run_dir):
                progress.ran(f"{t.model_abbr}/{t.dataset_abbr}", task_seconds(run_dir, t.model_abbr, t.dataset_abbr))
        return failures
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with quiet_opencompass(), Bars(*columns, transient=False) as bars:
        bar = bars.add_task("tasks", total=len(tasks))

        def on_task(task: Any, status: str, seconds: float) -> None:
            if status == "ran":
                progress.ran(f"{task.model_abbr}/{task.dataset_abbr}", seconds)
            bars.update(bar, advance=1, description=f"{task.model_abbr} {task.dataset_abbr}")

        run_in_process(tasks, run_dir, on_task=on_task)
    return []


def _record(
    config: RunConfig, plan: Plan, run_id: str, run_dir: Path, progress: Progress, task_keys: list[str]
) -> ResultsRecord:
    scores = collect_scores(run_dir, [m["abbr"] for m in plan.models], [d["abbr"] for d in plan.datasets])
    try:  # progress.json is read back on resume: check what it holds before the record states it
        sessions = tuple(Session.from_dict(s, f"sessions[{i}]") for i, s in enumerate(progress.public_sessions()))
        tasks = {k: TaskTiming.from_dict(t, f"tasks[{k!r}]") for k, t in progress.task_table(task_keys).items()}
    except RecordError as e:
        raise EvalkitError(
            f"{progress.path}: {e}; the run's predictions are kept: delete that file and resume "
            f"{run_id} (its earlier timings are then lost)"
        ) from None
    started, finished, duration = progress.timeline()
    provenance = Provenance(
        git_revision=git_revision(),
        packages=package_versions(),
        device=device_description(config.device),
        dtype=plan.dtype,
        data_source=plan.data_source,
        command=sessions[0].command,
        configs=RunProvenance(
            run=asdict(config),
            models=tuple(plan.models),
            datasets=tuple(plan.datasets),
            sandbox=sandbox_capabilities().describe(),
            tasks=tasks,
            sessions=sessions,
        ),
        started_at=started,
        finished_at=finished,
        duration_s=duration,
    )
    return ResultsRecord(
        run_id=run_id, kind="measured", models=tuple(plan.infos), scores=tuple(scores), provenance=provenance
    )
