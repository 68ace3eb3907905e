"""Driving OpenCompass's own inference and evaluation tasks.

In process (the default): every (model, dataset) pair runs as OpenCompass's `OpenICLInferTask` then
`OpenICLEvalTask`, one after the other in this process, so model construction goes through the
engine registry and each checkpoint is read once. Tasks run family by family, and within a family
dataset by dataset with all its branches back to back, so the shared-trunk cache hits and only one
family is in memory at a time.

With `--runner slurm` or `--max-num-workers > 1`, OpenCompass's own partitioner and runner start one
subprocess (or Slurm job) per task instead; each imports evalkit and loads its model itself.

Either way a task whose predictions and results files exist is finished and is not run again, which
is how `--resume` works; `repair_partial` first removes what a killed task may have left half-written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.engine.family_engine import REGISTRY
from evalkit.load.devices import release_memory
from evalkit.oc.signals import recording, signals_path
from evalkit.records.io import write_text_atomic


@dataclass(frozen=True)
class Task:
    model: dict[str, Any]
    dataset: dict[str, Any]

    @property
    def model_abbr(self) -> str:
        return str(self.model["abbr"])

    @property
    def dataset_abbr(self) -> str:
        return str(self.dataset["abbr"])

    def prediction(self, work_dir: Path) -> Path:
        return work_dir / "predictions" / self.model_abbr / f"{self.dataset_abbr}.json"

    def result(self, work_dir: Path) -> Path:
        return work_dir / "results" / self.model_abbr / f"{self.dataset_abbr}.json"

    def done(self, work_dir: Path) -> bool:
        return self.prediction(work_dir).is_file() and self.result(work_dir).is_file()


def dotted(obj: Any) -> Any:
    """A config with every class or function replaced by its dotted import path.

    OpenCompass's registries build from dotted paths as they do from objects, and only this form
    survives `Config.dump` (stock runners dump each task's config for its subprocess) and JSON.
    """
    if isinstance(obj, dict):
        return {k: dotted(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(dotted(v) for v in obj)
    if callable(obj) and hasattr(obj, "__module__") and hasattr(obj, "__qualname__"):
        return f"{obj.__module__}.{obj.__qualname__}"
    return obj


def order_tasks(models: Sequence[dict[str, Any]], datasets: Sequence[dict[str, Any]]) -> list[Task]:
    """Family by family (models sharing a checkpoint path); within one, each dataset runs all its branches."""
    families: dict[str, list[dict[str, Any]]] = {}
    for m in models:
        families.setdefault(str(m["path"]), []).append(m)
    return [Task(m, d) for group in families.values() for d in datasets for m in group]


def repair_partial(work_dir: Path) -> list[str]:
    """Make a killed run's files safe to resume from; returns what was done, one line per file.

    A predictions or results file that does not parse was cut off mid-write: remove it so its task runs
    again. A partial generation file (`tmp_*.jsonl`, which OpenCompass resumes from) keeps its complete
    leading lines only; a torn last line would otherwise make OpenCompass discard every line.
    """
    notes = []
    for sub in ("predictions", "results"):
        for path in sorted((work_dir / sub).glob("*/*.json")):
            if not _parses(path):
                path.unlink()
                notes.append(f"removed half-written {path.relative_to(work_dir)}")
    for path in sorted((work_dir / "predictions").glob("*/tmp_*.jsonl")):
        lines = _complete_lines(path)
        if not lines:
            path.unlink()
            notes.append(f"removed empty partial {path.relative_to(work_dir)}")
            continue
        text = "".join(line + "\n" for line in lines)
        if text != path.read_text(encoding="utf-8"):
            write_text_atomic(path, text)
        notes.append(f"kept {len(lines)} finished items of {path.relative_to(work_dir)}")
    return notes


def _parses(path: Path) -> bool:
    try:
        json.loads(path.read_text(encoding="utf-8"))
        return True
    except (ValueError, UnicodeDecodeError):
        return False


def _complete_lines(path: Path) -> list[str]:
    """The leading lines that parse and whose idx run 0, 1, 2, ... (what OpenCompass assumes)."""
    out = []
    for expected, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        try:
            item = json.loads(line)
        except ValueError:
            break
        if str(item.get("idx")) != str(expected):
            break
        out.append(line)
    return out


def run_in_process(tasks: Sequence[Task], work_dir: Path, *, on_task: Callable[[Task, str, float], None]) -> None:
    """Run each unfinished task through OpenCompass's infer and eval tasks, in this process.

    `on_task(task, "ran" | "reused", seconds)` is called after each task (for progress and timing).
    """
    from mmengine.config import Config
    from opencompass.tasks import OpenICLEvalTask, OpenICLInferTask

    previous_path = None
    for task in tasks:
        if previous_path is not None and previous_path != task.model["path"]:
            release_models()  # the previous family is finished: free its memory before the next loads
        previous_path = task.model["path"]
        if task.done(work_dir):
            on_task(task, "reused", 0.0)
            continue
        start = time.perf_counter()
        cfg = Config(
            dict(
                models=[task.model],
                datasets=[[task.dataset]],
                work_dir=str(work_dir),
                eval=dict(runner=dict(task=dict(dump_details=True))),
            )
        )
        if not task.prediction(work_dir).is_file():
            with recording(signals_path(work_dir, task.model_abbr, task.dataset_abbr)):
                OpenICLInferTask(cfg).run()
        if not task.result(work_dir).is_file():
            OpenICLEvalTask(cfg).run()
        on_task(task, "ran", time.perf_counter() - start)
    release_models()


def release_models() -> None:
    REGISTRY.clear()
    release_memory()


def run_with_runner(
    tasks: Sequence[Task], work_dir: Path, *, runner: str, max_num_workers: int, partition: str | None = None
) -> None:
    """OpenCompass's partitioner + LocalRunner/SlurmRunner: one subprocess or job per task."""
    from mmengine.config import Config
    from opencompass.partitioners import NaivePartitioner
    from opencompass.registry import RUNNERS
    from opencompass.tasks import OpenICLEvalTask, OpenICLInferTask

    models = list({t.model_abbr: t.model for t in tasks}.values())
    datasets = list({t.dataset_abbr: t.dataset for t in tasks}.values())
    cfg = Config(
        dict(
            models=models,
            datasets=datasets,
            work_dir=str(work_dir),
            eval=dict(runner=dict(task=dict(dump_details=True))),
        )
    )
    for task_type, out in ((OpenICLInferTask, "predictions"), (OpenICLEvalTask, "results")):
        partitioner = NaivePartitioner(out_dir=str(work_dir / out))
        oc_tasks = partitioner(cfg)
        for t in oc_tasks:
            t["eval"] = dict(runner=dict(task=dict(dump_details=True)))
        runner_cfg: dict[str, Any] = dict(task=dict(type=task_type), max_num_workers=max_num_workers)
        if runner == "slurm":
            runner_cfg.update(type="SlurmRunner", partition=partition, retry=2)
        else:
            runner_cfg.update(type="LocalRunner")
        RUNNERS.build(runner_cfg)(oc_tasks)


@contextmanager
def quiet_opencompass() -> Iterator[None]:
    """OpenCompass's, datasets' and transformers' INFO chatter and inner progress bars off while ours runs.

    tqdm reads TQDM_DISABLE when it is imported, so the CLI sets it before any import; here it is set
    for anything imported later.
    """
    import logging

    import datasets
    import transformers
    from opencompass.utils import get_logger

    loggers = [
        get_logger(),
        *(logging.getLogger(n) for n in logging.root.manager.loggerDict if n.startswith("opencompass")),
    ]
    levels = [(lg, lg.level) for lg in loggers]
    bars_patched = _silence_inner_bars()
    verbosity = transformers.logging.get_verbosity()
    datasets_verbosity = datasets.utils.logging.get_verbosity()
    bars = datasets.utils.logging.is_progress_bar_enabled()
    old_env = os.environ.get("TQDM_DISABLE")
    try:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        transformers.logging.set_verbosity_error()
        datasets.utils.logging.set_verbosity_error()
        datasets.utils.logging.disable_progress_bar()
        os.environ["TQDM_DISABLE"] = "1"
        yield
    finally:
        for lg, level in levels:
            lg.setLevel(level)
        for module, name, original in bars_patched:
            setattr(module, name, original)
        transformers.logging.set_verbosity(verbosity)
        datasets.utils.logging.set_verbosity(datasets_verbosity)
        if bars:
            datasets.utils.logging.enable_progress_bar()
        if old_env is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = old_env


def _silence_inner_bars() -> list[tuple[Any, str, Any]]:
    """OpenCompass's inferencers pass `disable=` to tqdm themselves, so TQDM_DISABLE cannot reach them."""
    import importlib

    patched = []
    for name in ("icl_gen_inferencer", "icl_ppl_inferencer", "icl_ll_inferencer"):
        module = importlib.import_module(f"opencompass.openicl.icl_inferencer.{name}")
        for attr in ("tqdm", "trange"):
            original = getattr(module, attr, None)
            if original is not None:
                patched.append((module, attr, original))
                setattr(module, attr, _quiet(original))
    return patched


def _quiet(bar: Any) -> Any:
    def quiet(*args: Any, **kwargs: Any) -> Any:
        return bar(*args, **{**kwargs, "disable": True})

    return quiet
