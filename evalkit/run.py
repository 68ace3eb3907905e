"""Run stage: evaluate every branch of a family (and any baselines) on the suites through OpenCompass.

`run(...)` is `python -m evalkit run ...` with the same arguments. It settles one frozen `RunConfig` at
the edge (absolute paths, the data root, the item limit, the device), writes everything under
`<out>/results/<run-id>/` (OpenCompass's predictions/ and results/ trees, run_config.json, progress.json
and `results.json`, one `ResultsRecord`), and never touches an earlier run. `resume=<run-id>` finishes
the run found under `out` in place, with its own stored settings, after checking that the checkpoints,
dtype, generation settings and dataset configs are still the ones it started with.
"""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import EvalkitError, did_you_mean
from .datasets import parse_suites
from .results import ModelInfo, Provenance, ResultsRecord, UnwritableError, cannot_write, save_record

if TYPE_CHECKING:
    from ._run_state import Progress, StoredRun

RUNNERS = ("local", "slurm")
TINY_MAX_OUT_LEN = 16  # the embedded tiny family is random: a longer answer would only cost time
FIXTURE_LIMIT = 4  # items per dataset (and per fixture group) on the embedded fixture data
# How a grouped dataset's groups are called, for the --limit note.
_GROUP_NOUNS = {"mmlu": ("subject", "subjects"), "mmlu_pro": ("category", "categories"),
                "cmmlu": ("subject", "subjects"), "bbh": ("task", "tasks")}


@dataclass(frozen=True)
class RunConfig:
    """A run's settings, settled: what `run_config.json` stores and `--resume` reads back."""

    model: str | None = None  # absolute checkpoint directory; None: the embedded tiny family
    branches: str = "all"
    baselines: tuple[str, ...] = ()
    baseline_paths: tuple[tuple[str, str], ...] = ()  # (baseline, absolute directory)
    suites: tuple[str, ...] = ("general", "code", "stem")
    data_dir: str | None = None  # absolute OpenCompass data root; None: the embedded fixtures
    limit: int | None = None  # first N items of each dataset, and of each subject/task of a grouped one
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


def run(model: str | None = None, branches: str | None = None, baselines: str | Sequence[str] | None = None,
        suites: str | Sequence[str] | None = None, data_dir: str | None = None, limit: int | None = None,
        out: str = ".", resume: str | None = None, runner: str | None = None, max_num_workers: int | None = None,
        dtype: str | None = None, device: str | None = None, batch_size: int | None = None,
        shared_trunk: bool | None = None, baseline_paths: Sequence[str] = (), max_out_len: int | None = None,
        partition: str | None = None, echo: Callable[[str], None] = print) -> RunResult:
    """Evaluate the branches and baselines on the suites; returns the record and where it was written.

    An argument left as None takes `RunConfig`'s default in a new run (device: "auto", the first GPU if
    there is one; data_dir: $COMPASS_DATA_CACHE, else the embedded fixtures). With `resume`, the run under
    `out` continues with its stored settings, and an argument that differs from them is an error.
    """
    given = _given(model=model, branches=branches, baselines=baselines, suites=suites, data_dir=data_dir,
                   limit=limit, runner=runner, max_num_workers=max_num_workers, dtype=dtype, device=device,
                   batch_size=batch_size, shared_trunk=shared_trunk, baseline_paths=baseline_paths,
                   max_out_len=max_out_len, partition=partition)
    if resume:
        from ._run_state import read_run_config

        stored = read_run_config(Path(out), resume)
        stored.refuse_conflicts(given)
        return execute(replace(stored.config, out=out), resume=stored, echo=echo)
    return execute(_new_config(given, out), echo=echo)


def _given(**kwargs: Any) -> dict[str, Any]:
    """The arguments that were given (not None, not empty), checked and in the form RunConfig stores."""
    from .model_configs import parse_baseline_paths, parse_baselines

    given = {k: v for k, v in kwargs.items() if v is not None and not (k == "baseline_paths" and not v)}
    for key, unit in (("limit", "items"), ("max_out_len", "tokens"), ("batch_size", "rows"),
                      ("max_num_workers", "workers")):
        value = given.get(key)
        if key in given and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise EvalkitError(f"--{key.replace('_', '-')} must be at least 1 ({unit}), got {value!r}; pass a "
                               "positive whole number or leave it out")
    if "runner" in given and given["runner"] not in RUNNERS:
        raise did_you_mean("runner", given["runner"], list(RUNNERS))
    if "model" in given:
        given["model"] = str(Path(given["model"]).expanduser().resolve())
    if "baselines" in given:
        given["baselines"] = tuple(b.name for b in parse_baselines(given["baselines"]))
    if "baseline_paths" in given:
        paths = parse_baseline_paths(given["baseline_paths"])
        given["baseline_paths"] = tuple(sorted((n, str(Path(p).expanduser().resolve())) for n, p in paths.items()))
    if "suites" in given:
        given["suites"] = parse_suites(given["suites"])
    if "data_dir" in given:
        given["data_dir"] = str(_existing_data_root(given["data_dir"], "--data-dir"))
    if "device" in given:
        given["device"] = _resolve_device(given["device"])
    return given


def _new_config(given: dict[str, Any], out: str) -> RunConfig:
    """A new run's settings: what was given, else the defaults, with the data root and device settled here."""
    settled = dict(given)
    settled.setdefault("device", _resolve_device("auto"))
    if "data_dir" not in given and os.environ.get("COMPASS_DATA_CACHE"):
        settled["data_dir"] = str(_existing_data_root(os.environ["COMPASS_DATA_CACHE"], "COMPASS_DATA_CACHE"))
    if settled.get("data_dir") is None and settled.get("limit") is None:
        settled["limit"] = FIXTURE_LIMIT
    config = RunConfig(**settled, out=out)
    stray = [name for name, _ in config.baseline_paths if name not in config.baselines]
    if stray:
        raise EvalkitError(f"--baseline-path names {', '.join(stray)}, which --baselines does not evaluate; add "
                           f"{', '.join(stray)} to --baselines or drop that --baseline-path")
    if config.partition is not None and config.runner != "slurm":
        raise EvalkitError(f"--partition {config.partition} is a Slurm partition, but the runner is "
                           f"{config.runner}; add --runner slurm or drop --partition")
    return config


def _resolve_device(device: str) -> str:
    """"auto" is the first GPU when there is one, else the CPU; anything else must name a usable device."""
    import torch

    from .family import resolve_device

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    resolve_device(device)
    return device


def _existing_data_root(raw: str, source: str) -> Path:
    root = Path(raw).expanduser().resolve()
    if not root.is_dir():
        raise EvalkitError(f"data directory {root} (from {source}) does not exist; pass --data-dir pointing at the "
                           "OpenCompass data root (the directory that contains data/)")
    return root


def data_root(data_dir: str | None) -> Path:
    """The data root a new run with this --data-dir reads: it, else $COMPASS_DATA_CACHE, else the fixtures."""
    from .suites import materialise_fixture_root
    from .tiny import cache_root

    explicit = data_dir or os.environ.get("COMPASS_DATA_CACHE")
    if explicit:
        return _existing_data_root(explicit, "--data-dir" if data_dir else "COMPASS_DATA_CACHE")
    return materialise_fixture_root(cache_root() / "fixture-data")


def execute(config: RunConfig, *, resume: StoredRun | None = None, echo: Callable[[str], None] = print) -> RunResult:
    """Run a settled config: a new run directory, or the stored run `resume` continued in place."""
    from ._oc_driver import order_tasks, repair_partial
    from ._provenance import command_line
    from ._run_state import Progress, write_run_config

    _resolve_device(config.device)
    if resume is None:
        _check_out(Path(config.out))
    plan = _plan(config)  # everything that can fail up front fails here, before a directory is made
    if resume is not None:
        resume.check(plan.identity)
        run_id, run_dir = resume.run_id, resume.run_dir
    else:
        run_id, run_dir = _new_run_dir(Path(config.out))
        write_run_config(run_dir, config, plan.identity)
    for line in plan.notes:
        echo(line)
    notes = []
    if resume is not None:
        env_data = os.environ.get("COMPASS_DATA_CACHE")
        if env_data and str(Path(env_data).expanduser().resolve()) != config.data_dir:
            notes.append(f"COMPASS_DATA_CACHE is ignored: the run reads the data it started with ({plan.data_source})")
        if resume.identity is None:
            notes.append("run_config.json comes from an older evalkit that recorded no checkpoint identity, so "
                         "whether the checkpoint changed since the run started cannot be checked")
        notes += repair_partial(run_dir)
    progress = Progress.begin(run_dir, command_line(), resume=resume is not None)
    notes += progress.notes
    for line in notes:
        echo(f"resume: {line}")
    tasks = order_tasks(plan.models, plan.datasets)
    echo(f"run {run_id}: {_count(len(plan.models), 'model')} x {_count(len(plan.datasets), 'dataset')} = "
         f"{_count(len(tasks), 'task')} -> {run_dir}")
    with _threads(1 if config.embedded_model else None), _env("COMPASS_DATA_CACHE", str(plan.data_root)), \
            _tidy_cwd():
        _run_tasks(config, tasks, run_dir, progress)
    progress.finish()
    record = _record(config, plan, run_id, run_dir, progress, [f"{t.model_abbr}/{t.dataset_abbr}" for t in tasks])
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
    dtype: str  # as the record states it
    identity: dict[str, Any]  # what the run evaluates (see _run_state.identity)
    notes: list[str]


def _plan(config: RunConfig) -> Plan:
    from . import suites as S
    from ._oc_driver import dotted
    from ._run_state import identity
    from .family import parse_branches
    from .lm import family_identity
    from .model_configs import BASELINES, baseline_configs, familial_configs
    from .oc_evaluators import use_sandboxed_evaluators
    from .tiny import default_model_path

    notes: list[str] = []
    data_root, source, groups = _data(config, notes)
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
    family = _load(path, config.dtype, config.device)
    family.tokenizer  # noqa: B018 - a checkpoint without tokenizer files fails here, not in its first task
    chosen = parse_branches(config.branches, family.branches)
    plain = not family.files.is_familial
    models = familial_configs(path, [b.name for b in chosen], shared_trunk=config.shared_trunk, plain=plain,
                              **common)
    infos = [ModelInfo(abbr=m["abbr"], name=_display(path, b.name, plain), role="ours",
                       family=_family_name(path), branch=b.name, exit_layer=b.exit_layer,
                       num_params=b.num_params, path=str(path)) for m, b in zip(models, chosen, strict=True)]
    checkpoints = {str(path): family.identity}
    checkpoints.update({m["path"]: family_identity(m["path"], dtype=config.dtype, device=config.device)
                        for m in base_models})
    models += base_models
    infos += [ModelInfo(abbr=b.abbr, name=b.display, role="baseline", path=m["path"])
              for b, m in zip(baselines, base_models, strict=True)]
    datasets = [dotted(use_sandboxed_evaluators(d)) for d in
                S.dataset_configs(config.suites, limit=config.limit, max_out_len=max_out, groups=groups)]
    if config.limit is not None:
        notes.append(_limit_note(config.limit, datasets))
    dtype = config.dtype or f"{str(family.dtype).removeprefix('torch.')} (stored)"
    return Plan(models, infos, datasets, data_root, source, dtype, identity(models, datasets, checkpoints, dtype),
                notes)


def _load(path: Path, dtype: str | None, device: str) -> Any:
    """The family, read through the engine registry (the run's tasks reuse this load)."""
    from .lm import engine_for

    return engine_for(path, dtype=dtype, device=device).family


def _data(config: RunConfig, notes: list[str]) -> tuple[Path, str, dict[str, Any] | None]:
    from .suites import FIXTURE_GROUPS, materialise_fixture_root
    from .tiny import cache_root

    if config.data_dir is not None:
        root = Path(config.data_dir)
        if not root.is_dir():
            raise EvalkitError(f"the run's data root {root} does not exist any more; restore it (a resumed run reads "
                               "the data it started with), or start a new run")
        return root, f"OpenCompass data at {root}", None
    root = materialise_fixture_root(cache_root() / "fixture-data")
    notes.append("data: the embedded fixtures (a few hand-written items per dataset); pass --data-dir for real "
                 "OpenCompass data")
    return root, "embedded fixtures", dict(FIXTURE_GROUPS)


def _limit_note(limit: int, datasets: list[dict[str, Any]]) -> str:
    """What --limit N means for these datasets, in words: grouped datasets take N from every group."""
    from .datasets import BY_KEY
    from .suites import dataset_of

    groups = Counter(key for key, group in (dataset_of(d["abbr"]) for d in datasets) if group is not None)
    text = f"limit: the first {_count(limit, 'item')} of each dataset"
    if groups:
        nouns = {k: _GROUP_NOUNS.get(k, ("group", "groups"))[n != 1] for k, n in groups.items()}
        named = ", ".join(f"{BY_KEY[k].title} ({n} {nouns[k]})" for k, n in groups.items())
        text += f", and of each group of {named}, whose scores average their groups"
    return text + f": at most {limit * len(datasets)} items per model"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _family_name(path: Path) -> str:
    from .model_configs import family_slug

    return family_slug(path)


def _display(path: Path, branch: str, plain: bool) -> str:
    name = "tiny-ruyi" if path.name.startswith("tiny-ruyi") else path.resolve().name
    return name if plain else f"{name}-{branch}"


def _check_out(out: Path) -> None:
    """Fail before anything loads when OUT/results cannot be made (a file in the way, no permission)."""
    target = (out / "results").absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise UnwritableError(target, f"{existing} is not a directory", "pass a writable --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnwritableError(target, f"{existing} is not writable", "pass a writable --out")


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
    import torch

    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _run_tasks(config: RunConfig, tasks: list[Any], run_dir: Path, progress: Progress) -> None:
    """Run every unfinished task; `progress` notes each one as it finishes (a kill loses no timing)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ._oc_driver import quiet_opencompass, release_models, run_in_process, run_with_runner

    if config.runner == "slurm" or config.max_num_workers > 1:
        release_models()  # each task's subprocess loads its own model
        todo = [t for t in tasks if not t.done(run_dir)]
        run_with_runner(tasks, run_dir, runner=config.runner, max_num_workers=config.max_num_workers,
                        partition=config.partition)
        for t in todo:
            if t.done(run_dir):
                progress.ran(f"{t.model_abbr}/{t.dataset_abbr}", None)  # the runner does not say how long
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with quiet_opencompass(), Progress(*columns, transient=False) as bars:
        bar = bars.add_task("tasks", total=len(tasks))

        def on_task(task: Any, status: str, seconds: float) -> None:
            if status == "ran":
                progress.ran(f"{task.model_abbr}/{task.dataset_abbr}", seconds)
            bars.update(bar, advance=1, description=f"{task.model_abbr} {task.dataset_abbr}")

        run_in_process(tasks, run_dir, on_task=on_task)


def _record(config: RunConfig, plan: Plan, run_id: str, run_dir: Path, progress: Progress,
            task_keys: list[str]) -> ResultsRecord:
    from ._collect import collect_scores
    from ._provenance import device_description, git_revision, package_versions
    from .sandbox import sandbox_capabilities

    scores = collect_scores(run_dir, [m["abbr"] for m in plan.models], [d["abbr"] for d in plan.datasets])
    sessions = progress.public_sessions()
    started, finished, duration = progress.timeline()
    provenance = Provenance(
        git_revision=git_revision(), packages=package_versions(), device=device_description(config.device),
        dtype=plan.dtype, data_source=plan.data_source, command=sessions[0]["command"],
        configs={"run": asdict(config), "models": plan.models, "datasets": plan.datasets,
                 "sandbox": sandbox_capabilities().describe(), "tasks": progress.task_table(task_keys),
                 "sessions": sessions},
        started_at=started, finished_at=finished, duration_s=duration,
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
    sessions = record.provenance.configs.get("sessions", [])
    seconds = float(sessions[-1]["duration_s"]) if sessions else record.provenance.duration_s or 0.0
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


def _resume_flags(result: RunResult) -> str:
    out = result.run_dir.parent.parent
    return f"--resume {result.run_id}" if out == Path(".") else f"--out {out} --resume {result.run_id}"
