"""Run stage: evaluate every branch of a family (and any baselines) on the suites through OpenCompass.

`run(...)` is `python -m evalkit run ...` with the same arguments. It builds one frozen `RunConfig` at
the edge, writes everything under `<out>/results/<run-id>/` (OpenCompass's predictions/ and results/
trees, the resolved config, and `results.json`, one `ResultsRecord`), and never touches an earlier run.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._errors import EvalkitError, did_you_mean
from .datasets import parse_suites
from .results import ModelInfo, Provenance, ResultsRecord, save_record, write_json_atomic

RUNNERS = ("local", "slurm")
TINY_MAX_OUT_LEN = 16  # the embedded tiny family is random: a longer answer would only cost time
FIXTURE_LIMIT = 4  # items per dataset on the embedded fixture data (HumanEval there is the real 164)


@dataclass(frozen=True)
class RunConfig:
    model: str | None = None  # None: the embedded tiny family
    branches: str = "all"
    baselines: tuple[str, ...] = ()
    baseline_paths: tuple[tuple[str, str], ...] = ()
    suites: tuple[str, ...] = ("general", "code", "stem")
    data_dir: str | None = None  # None: $COMPASS_DATA_CACHE, else the embedded fixtures
    limit: int | None = None
    max_out_len: int | None = None  # cap on every generation length
    out: str = "."
    runner: str = "local"
    max_num_workers: int = 1
    partition: str | None = None  # Slurm
    dtype: str | None = None
    device: str = "cpu"
    batch_size: int = 8
    shared_trunk: bool = True  # several branches of one family: score them in one trunk pass

    @property
    def embedded_model(self) -> bool:
        return self.model is None


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    record_path: Path
    record: ResultsRecord
    notes: tuple[str, ...] = field(default=())


def run(model: str | None = None, branches: str = "all", baselines: str | Sequence[str] = (),
        suites: str | Sequence[str] = "all", data_dir: str | None = None, limit: int | None = None,
        out: str = ".", resume: str | None = None, runner: str = "local", max_num_workers: int = 1,
        dtype: str | None = None, device: str = "auto", batch_size: int = 8, shared_trunk: bool = True,
        baseline_paths: Sequence[str] = (), max_out_len: int | None = None, partition: str | None = None,
        echo: Callable[[str], None] = print) -> RunResult:
    """Evaluate the branches and baselines on the suites; returns the record and where it was written."""
    from .model_configs import parse_baseline_paths, parse_baselines

    if resume:
        config = _load_config(Path(out), resume)
    else:
        if runner not in RUNNERS:
            raise did_you_mean("runner", runner, list(RUNNERS))
        if batch_size < 1 or max_num_workers < 1:
            raise EvalkitError("--batch-size and --max-num-workers must be at least 1")
        config = RunConfig(
            model=model, branches=branches,
            baselines=tuple(b.name for b in parse_baselines(baselines)),
            baseline_paths=tuple(sorted(parse_baseline_paths(baseline_paths).items())),
            suites=parse_suites(suites), data_dir=data_dir, limit=limit, max_out_len=max_out_len, out=out,
            runner=runner, max_num_workers=max_num_workers, partition=partition, dtype=dtype,
            device=_resolve_device(device), batch_size=batch_size, shared_trunk=shared_trunk,
        )
    return execute(config, resume=resume, echo=echo)


def _resolve_device(device: str) -> str:
    """"auto" is the first GPU when there is one, else the CPU; anything else is taken as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def execute(config: RunConfig, *, resume: str | None = None, echo: Callable[[str], None] = print) -> RunResult:
    from ._oc_driver import order_tasks, repair_partial

    plan = _plan(config)  # everything that can fail up front fails here, before a directory is made
    run_id, run_dir = _run_dir(Path(config.out), resume)
    if not resume:
        write_json_atomic(run_dir / "run_config.json", asdict(config))
    for line in plan.notes:
        echo(line)
    notes = repair_partial(run_dir) if resume else []
    for line in notes:
        echo(f"resume: {line}")
    tasks = order_tasks(plan.models, plan.datasets)
    echo(f"run {run_id}: {len(plan.models)} models x {len(plan.datasets)} datasets = {len(tasks)} tasks -> {run_dir}")
    started = datetime.now(timezone.utc)
    with _threads(1 if config.embedded_model else None), _env("COMPASS_DATA_CACHE", str(plan.data_root)), \
            _tidy_cwd():
        timing = _run_tasks(config, tasks, run_dir)
    record = _record(config, plan, run_id, run_dir, started, timing)
    path = save_record(record, run_dir / "results.json")
    return RunResult(run_id, run_dir, path, record, tuple(plan.notes) + tuple(notes))


# --- planning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    models: list[dict[str, Any]]
    infos: list[ModelInfo]
    datasets: list[dict[str, Any]]
    data_root: Path
    data_source: str
    notes: list[str]


def _plan(config: RunConfig) -> Plan:
    from . import suites as S
    from ._oc_driver import dotted
    from .family import parse_branches
    from .model_configs import BASELINES, baseline_configs, familial_configs
    from .oc_evaluators import use_sandboxed_evaluators
    from .tiny import default_model_path

    notes: list[str] = []
    data_root, source, groups, limit = _data(config, notes)
    S.check_data(data_root, config.suites, groups)
    baselines = [BASELINES[n] for n in config.baselines]
    max_out = config.max_out_len
    if config.embedded_model and max_out is None:
        max_out = TINY_MAX_OUT_LEN
        notes.append(f"embedded tiny family (random weights, scores are near chance): generation capped at "
                     f"{max_out} tokens; pass --max-out-len to change")
    common: dict[str, Any] = dict(
        dtype=config.dtype, device=config.device, batch_size=config.batch_size, max_out_len=max_out
    )
    base_models = baseline_configs(baselines, dict(config.baseline_paths), **common)  # checks paths, kernels

    path = Path(config.model) if config.model else default_model_path()
    family = _branch_list(path, config.dtype, config.device)
    chosen = parse_branches(config.branches, family)
    models = familial_configs(path, [b.name for b in chosen], shared_trunk=config.shared_trunk, **common)
    infos = [ModelInfo(abbr=m["abbr"], name=_display(path, b.name, len(family)), role="ours",
                       family=_family_name(path), branch=b.name, exit_layer=b.exit_layer,
                       num_params=b.num_params, path=str(path)) for m, b in zip(models, chosen, strict=True)]
    models += base_models
    infos += [ModelInfo(abbr=b.abbr, name=b.display, role="baseline", path=m["path"])
              for b, m in zip(baselines, base_models, strict=True)]
    datasets = [dotted(use_sandboxed_evaluators(d)) for d in
                S.dataset_configs(config.suites, limit=limit, max_out_len=max_out, groups=groups)]
    return Plan(models, infos, datasets, data_root, source, notes)


def _branch_list(path: Path, dtype: str | None, device: str) -> tuple[Any, ...]:
    """The family's branches, read through the engine registry (the run's tasks reuse this load)."""
    from .lm import engine_for

    return engine_for(path, dtype=dtype, device=device).family.branches


def _data(config: RunConfig, notes: list[str]) -> tuple[Path, str, dict[str, Any] | None, int | None]:
    from .suites import FIXTURE_GROUPS, materialise_fixture_root
    from .tiny import cache_root

    explicit = config.data_dir or os.environ.get("COMPASS_DATA_CACHE")
    if explicit:
        root = Path(explicit).expanduser().resolve()
        if not root.is_dir():
            raise EvalkitError(f"data directory {root} does not exist; pass --data-dir pointing at the OpenCompass "
                               "data root (the directory that contains data/)")
        return root, f"OpenCompass data at {root}", None, config.limit
    root = materialise_fixture_root(cache_root() / "fixture-data")
    limit = config.limit if config.limit is not None else FIXTURE_LIMIT
    notes.append(f"data: the embedded fixtures (a few hand-written items per dataset; {limit} items per dataset); "
                 "pass --data-dir for real OpenCompass data")
    return root, "embedded fixtures", dict(FIXTURE_GROUPS), limit


def _family_name(path: Path) -> str:
    from .model_configs import family_slug

    return family_slug(path)


def _display(path: Path, branch: str, n_branches: int) -> str:
    name = "tiny-ruyi" if path.name.startswith("tiny-ruyi") else path.resolve().name
    return name if n_branches == 1 else f"{name}-{branch}"


def _run_dir(out: Path, resume: str | None) -> tuple[str, Path]:
    base = out / "results"
    if resume:
        return resume, base / resume
    for _ in range(5):
        run_id = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        try:
            (base / run_id).mkdir(parents=True, exist_ok=False)
            return run_id, base / run_id
        except FileExistsError:
            continue
    raise EvalkitError(f"could not create a fresh run directory under {base}; check that it is writable")


def _load_config(out: Path, run_id: str) -> RunConfig:
    path = out / "results" / run_id / "run_config.json"
    if not path.is_file():
        runs = sorted(p.name for p in (out / "results").glob("*") if (p / "run_config.json").is_file())
        raise EvalkitError(f"no run {run_id!r} under {out / 'results'} to resume; runs there: "
                           f"{', '.join(runs) or 'none'}")
    raw = json.loads(path.read_text(encoding="utf-8"))
    for key in ("baselines", "suites"):
        raw[key] = tuple(raw[key])
    raw["baseline_paths"] = tuple(tuple(p) for p in raw["baseline_paths"])
    return replace(RunConfig(), **raw)


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
    import torch

    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _run_tasks(config: RunConfig, tasks: list[Any], run_dir: Path) -> dict[str, dict[str, Any]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ._oc_driver import quiet_opencompass, release_models, run_in_process, run_with_runner

    timing: dict[str, dict[str, Any]] = {}
    if config.runner == "slurm" or config.max_num_workers > 1:
        release_models()  # each task's subprocess loads its own model
        finished = [(t, t.done(run_dir)) for t in tasks]
        run_with_runner(tasks, run_dir, runner=config.runner, max_num_workers=config.max_num_workers,
                        partition=config.partition)
        return {f"{t.model_abbr}/{t.dataset_abbr}": {"status": "reused" if done else "ran", "seconds": None}
                for t, done in finished}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with quiet_opencompass(), Progress(*columns, transient=False) as progress:
        bar = progress.add_task("tasks", total=len(tasks))

        def on_task(task: Any, status: str, seconds: float) -> None:
            timing[f"{task.model_abbr}/{task.dataset_abbr}"] = {"status": status, "seconds": round(seconds, 3)}
            progress.update(bar, advance=1, description=f"{task.model_abbr} {task.dataset_abbr}")

        run_in_process(tasks, run_dir, on_task=on_task)
    return timing


def _dtype_name(config: RunConfig, plan: Plan) -> str:
    """The dtype asked for, or the one the (familial) checkpoint stores."""
    if config.dtype:
        return config.dtype
    from ._checkpoint import read_checkpoint
    from .family import _resolve_dtype

    ours = next((m.path for m in plan.infos if m.role == "ours" and m.path), None)
    if ours is None:
        return "checkpoint default"
    return f"{str(_resolve_dtype(None, read_checkpoint(ours))).removeprefix('torch.')} (stored)"


def _record(config: RunConfig, plan: Plan, run_id: str, run_dir: Path, started: datetime,
            timing: dict[str, dict[str, Any]]) -> ResultsRecord:
    from ._collect import collect_scores
    from ._provenance import command_line, device_description, git_revision, package_versions
    from .sandbox import sandbox_capabilities

    finished = datetime.now(timezone.utc)
    scores = collect_scores(run_dir, [m["abbr"] for m in plan.models], [d["abbr"] for d in plan.datasets])
    provenance = Provenance(
        git_revision=git_revision(), packages=package_versions(), device=device_description(config.device),
        dtype=_dtype_name(config, plan), data_source=plan.data_source, command=command_line(),
        configs={"run": asdict(config), "models": plan.models, "datasets": plan.datasets,
                 "sandbox": sandbox_capabilities().describe(), "tasks": timing},
        started_at=started.isoformat(timespec="seconds"), finished_at=finished.isoformat(timespec="seconds"),
        duration_s=round((finished - started).total_seconds(), 3),
    )
    return ResultsRecord(run_id=run_id, kind="measured", models=tuple(plan.infos), scores=tuple(scores),
                         provenance=provenance)


def summary(result: RunResult) -> str:
    """The table of models x datasets (points, items) and where every file went."""
    from tabulate import tabulate

    from .datasets import DATASETS

    record = result.record
    keys = [d.key for d in DATASETS if any(s.dataset == d.key for s in record.scores)]
    rows = []
    for m in record.models:
        cells = []
        for k in keys:
            s = record.score(m.abbr, k)
            cells.append("-" if s is None else f"{s.value:.1f} ({s.n})")
        rows.append([m.abbr, m.name, *cells])
    titles = [f"{DATASETS[[d.key for d in DATASETS].index(k)].title}" for k in keys]
    table = tabulate(rows, headers=["model", "name", *titles], disable_numparse=True)
    d = result.run_dir
    tasks = record.provenance.configs.get("tasks", {})
    ran = sum(1 for t in tasks.values() if t["status"] == "ran")
    seconds = record.provenance.duration_s or 0.0
    done = f"{len(tasks)} tasks ({ran} run, {len(tasks) - ran} reused from earlier) in {seconds:.0f} s"
    files = [
        f"record:       {result.record_path}",
        f"predictions:  {d / 'predictions'}/<model>/<dataset>.json",
        f"results:      {d / 'results'}/<model>/<dataset>.json  (per-item details)",
        f"run config:   {d / 'run_config.json'}  (resume with --resume {result.run_id})",
    ]
    return f"{done}; scores in points (items)\n" + table + "\n\n" + "\n".join(files)
