"""The run's options, declared once: `RunConfig`'s fields.

Each field carries an `Option`: its help, how it is spelled on the command line, and how a user's
value is checked and settled into the form `run_config.json` stores. The CLI's flags, `evalkit.run`'s
keyword arguments and the stored run config are all derived from these fields, so a new option is
one new field.

Everything here is pure (no torch, no OpenCompass), so a bad argument fails in well under a second.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from evalkit.catalog.baselines import parse_baseline_paths, parse_baselines
from evalkit.catalog.datasets import parse_suites
from evalkit.errors import EvalkitError, did_you_mean
from evalkit.load.devices import check_device, check_dtype
from evalkit.load.tiny import cache_root
from evalkit.oc.fixtures import materialise_fixture_root
from evalkit.records.io import UnwritableError

RUNNERS = ("local", "slurm")
DTYPES = ("fp32", "bf16", "fp16")  # as the command line offers them; check_dtype also takes torch's spellings
TINY_MAX_OUT_LEN = 16  # the embedded tiny family answers in a few tokens: a longer cap would only cost time
FIXTURE_LIMIT = 15  # items per dataset (and per fixture group) on the embedded fixture data


@dataclass(frozen=True)
class Option:
    """How one run option is asked for and settled."""

    help: str
    default_help: str | None = None  # what the CLI shows as the default when the field's default is not it
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    unit: str | None = None  # a positive whole number of these
    parse: Callable[[Any], Any] | None = None  # the user's value -> the stored form (and its checks)
    flag: str | None = None  # the CLI spelling when it is not --field-name
    repeatable: bool = False  # given once per value on the command line
    may_be_absent: bool = False  # an older run_config.json may lack it, since its default changes no result
    # Where and how tasks run, not what they compute: a resume may change it (a fix for a failed task).
    reschedules: bool = False


def _option(default: Any, help: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"option": Option(help, **kwargs)})


def _absolute(raw: str) -> str:
    return str(Path(raw).expanduser().resolve())


def existing_data_root(raw: str, source: str) -> Path:
    root = Path(raw).expanduser().resolve()
    if not root.is_dir():
        raise EvalkitError(
            f"data directory {root} (from {source}) does not exist; pass --data-dir pointing at the "
            "OpenCompass data root (the directory that contains data/)"
        )
    return root


def _at_least_zero(n: int, name: str) -> int:
    if n < 0:
        raise EvalkitError(f"{name} must be 0 or more, got {n}; pass a whole number of retries")
    return n


def _srun_options(args: str | Sequence[str]) -> tuple[str, ...]:
    values = (args,) if isinstance(args, str) else tuple(args)
    bad = [a for a in values if not str(a).startswith("-")]
    if bad:
        raise EvalkitError(
            f"--slurm-arg takes srun options such as --time=2:00:00 or --mem=64G, got {bad[0]!r}; "
            "write the option and its value as one word (--slurm-arg=--time=2:00:00)"
        )
    return tuple(str(a) for a in values)


def _baseline_names(spec: str | Sequence[str]) -> tuple[str, ...]:
    return tuple(b.name for b in parse_baselines(spec))


def _baseline_paths(pairs: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((n, _absolute(p)) for n, p in parse_baseline_paths(pairs).items()))


@dataclass(frozen=True)
class RunConfig:
    """A run's settings, settled: what `run_config.json` stores and `--resume` reads back."""

    model: str | None = _option(
        None, "Checkpoint directory (default: the embedded tiny family, shipped trained).", parse=_absolute
    )
    branches: str = _option("all", "all, names (E3B,E7B) or exit layers (11,27).")
    baselines: tuple[str, ...] = _option(
        (), "Comma-separated baselines, e.g. qwen2.5-7b-instruct,yi-9b, or all.", default_help="", parse=_baseline_names
    )
    baseline_paths: tuple[tuple[str, str], ...] = _option(
        (),
        "Local checkpoint of a baseline named in --baselines (else its environment variable). Repeatable.",
        default_help="",
        metavar="NAME=DIR",
        flag="--baseline-path",
        repeatable=True,
        parse=_baseline_paths,
        may_be_absent=True,
    )
    suites: tuple[str, ...] = _option(
        ("general", "code", "stem"),
        "general, code, stem (comma-separated) or all.",
        default_help="all",
        parse=parse_suites,
    )
    data_dir: str | None = _option(
        None,
        "OpenCompass data root (contains data/); default $COMPASS_DATA_CACHE, else the embedded fixtures.",
        default_help="",
        parse=lambda raw: str(existing_data_root(raw, "--data-dir")),
    )
    limit: int | None = _option(
        None,
        "Evaluate the first N items of each dataset; MMLU, MMLU-Pro, CMMLU and BBH take the first N of each "
        "subject or task (their scores average those).",
        default_help="all items; 4 on the fixtures",
        unit="items",
    )
    max_out_len: int | None = _option(
        None, "Cap on every generation length, in tokens.", default_help="", unit="tokens"
    )
    out: str = _option(".", "Runs go to OUT/results/<run-id>/.", may_be_absent=True)
    runner: str = _option(
        "local",
        "local: this machine (in process, or subprocesses with --max-num-workers > 1); slurm: one srun job "
        "per task (OpenCompass's SlurmRunner).",
        choices=RUNNERS,
        may_be_absent=True,
        reschedules=True,
    )
    max_num_workers: int = _option(
        1,
        "Tasks run at once. More than 1 (or --runner slurm): OpenCompass's runner, each task in its own "
        "process or job.",
        unit="workers",
        may_be_absent=True,
        reschedules=True,
    )
    group_tasks: bool = _option(
        True,
        "On workers, one task per family and data shard runs all its branches through the shared trunk "
        "(the checkpoint loaded once per task); off: OpenCompass's one task per model and dataset.",
        default_help="group-tasks",
        may_be_absent=True,
        reschedules=True,
    )
    partition: str | None = _option(
        None, "Slurm partition (srun -p; needs --runner slurm).", may_be_absent=True, reschedules=True
    )
    quotatype: str | None = _option(
        None,
        "Slurm quota type (srun --quotatype=..., on clusters whose srun takes it).",
        default_help="",
        may_be_absent=True,
        reschedules=True,
    )
    slurm_retries: int = _option(
        2,
        "Times a failed Slurm job is submitted again before its task counts as failed.",
        parse=lambda n: _at_least_zero(n, "--slurm-retries"),
        may_be_absent=True,
        reschedules=True,
    )
    slurm_args: tuple[str, ...] = _option(
        (),
        "An srun option passed through as given, e.g. --slurm-arg=--time=2:00:00 --slurm-arg=--mem=64G. Repeatable.",
        default_help="",
        metavar="OPTION",
        flag="--slurm-arg",
        repeatable=True,
        parse=lambda args: _srun_options(args),
        may_be_absent=True,
        reschedules=True,
    )
    dtype: str | None = _option(None, "Default: the checkpoint's.", choices=DTYPES, default_help="", parse=check_dtype)
    device: str = _option(
        "cpu", "auto (cuda if available), cpu, cuda, cuda:1, ...", default_help="auto", parse=check_device
    )
    batch_size: int = _option(8, "", unit="rows")
    shared_trunk: bool = _option(
        True,
        "Score and decode all of a family's branches in one trunk pass. In bf16 about 1 generation in 6 "
        "differs from per-branch decoding, as stock transformers' own outputs differ across batch shapes; "
        "fp32 matches.",
        default_help="shared-trunk",
        may_be_absent=True,
    )

    @property
    def embedded_model(self) -> bool:
        return self.model is None


OPTIONS: dict[str, Option] = {f.name: f.metadata["option"] for f in fields(RunConfig)}
_KINDS = {str: "text", int: "a whole number", bool: "true or false"}
DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}


FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in fields(RunConfig)}


def value_type(name: str) -> type:
    """The type of one value of option `name`, read off RunConfig's annotation (a tuple option's items are str)."""
    base = FIELD_TYPES[name].split(" | ")[0]
    return str if base.startswith("tuple") else {"str": str, "int": int, "bool": bool}[base]


def json_types(name: str) -> tuple[type, ...]:
    """The JSON types option `name` may have in run_config.json."""
    annotation = FIELD_TYPES[name]
    types: tuple[type, ...] = (list,) if annotation.startswith("tuple") else (value_type(name),)
    return types + ((type(None),) if annotation.endswith("| None") else ())


def flag(name: str) -> str:
    """How the command line spells option `name`."""
    return OPTIONS[name].flag or f"--{name.replace('_', '-')}"


def parse_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """The options that were given (not None, not empty), checked and in the form RunConfig stores."""
    unknown = [k for k in given if k not in OPTIONS]
    if unknown:
        raise did_you_mean("run option", unknown[0], list(OPTIONS))
    out = {}
    for name, value in sorted(given.items(), key=lambda item: list(OPTIONS).index(item[0])):
        if value is None or (OPTIONS[name].repeatable and not value):
            continue
        option = OPTIONS[name]
        if option.unit and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise EvalkitError(
                f"{flag(name)} must be at least 1 ({option.unit}), got {value!r}; pass a positive "
                "whole number or leave it out"
            )
        kind = value_type(name)
        if not FIELD_TYPES[name].startswith("tuple") and not _is_a(value, kind):
            raise EvalkitError(f"{flag(name)} takes {_KINDS[kind]}, got {value!r}")
        if option.choices and not option.parse and value not in option.choices:
            raise did_you_mean(name.replace("_", " "), value, list(option.choices))
        out[name] = option.parse(value) if option.parse else value
    return out


def _is_a(value: Any, kind: type) -> bool:
    """isinstance, except that a bool is not an int here (and an int is not a bool)."""
    return isinstance(value, kind) and isinstance(value, bool) == (kind is bool)


def new_config(given: Mapping[str, Any], out: str) -> RunConfig:
    """A new run's settings: what was given, else the defaults; the device is settled by the caller."""
    settled = dict(given)
    if "data_dir" not in given and os.environ.get("COMPASS_DATA_CACHE"):
        settled["data_dir"] = str(existing_data_root(os.environ["COMPASS_DATA_CACHE"], "COMPASS_DATA_CACHE"))
    if settled.get("data_dir") is None and settled.get("limit") is None:
        settled["limit"] = FIXTURE_LIMIT
    settled.setdefault("device", "auto")
    config = RunConfig(**settled, out=out)
    stray = [name for name, _ in config.baseline_paths if name not in config.baselines]
    if stray:
        raise EvalkitError(
            f"--baseline-path names {', '.join(stray)}, which --baselines does not evaluate; add "
            f"{', '.join(stray)} to --baselines or drop that --baseline-path"
        )
    check_schedule(config)
    return config


def check_schedule(config: RunConfig) -> None:
    """Slurm settings need the Slurm runner."""
    if config.partition is not None and config.runner != "slurm":
        raise EvalkitError(
            f"--partition {config.partition} is a Slurm partition, but the runner is "
            f"{config.runner}; add --runner slurm or drop --partition"
        )
    given = [flag(n) for n in ("quotatype", "slurm_args") if getattr(config, n)]
    if given and config.runner != "slurm":
        raise EvalkitError(
            f"{' and '.join(given)} {'is a Slurm option' if len(given) == 1 else 'are Slurm options'}, but the "
            f"runner is {config.runner}; add --runner slurm or drop {' and '.join(given)}"
        )


def check_out(out: Path) -> None:
    """Fail before anything loads when OUT/results cannot be made (a file in the way, no permission)."""
    target = (out / "results").absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise UnwritableError(target, f"{existing} is not a directory", "pass a writable --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnwritableError(target, f"{existing} is not writable", "pass a writable --out")


def fixture_root() -> Path:
    """The embedded fixture data, written once into the cache in OpenCompass's layout."""
    return materialise_fixture_root(cache_root() / "fixture-data")


def data_root(data_dir: str | None) -> Path:
    """The data root a new run with this --data-dir reads: it, else $COMPASS_DATA_CACHE, else the fixtures."""
    explicit = data_dir or os.environ.get("COMPASS_DATA_CACHE")
    if explicit:
        return existing_data_root(explicit, "--data-dir" if data_dir else "COMPASS_DATA_CACHE")
    return fixture_root()
