"""What a run directory remembers between sessions: its settings, what it evaluated, and its progress.

`run_config.json` is written once, when the run starts: the resolved settings (`RunConfig`) and the
identity of what they evaluate (each checkpoint's fingerprint, the dtype, each model's generation
settings, each dataset config). `--resume` reads it back, rebuilds that identity from the files as they
are now, and refuses to continue when anything differs, so one record never mixes two models' answers.

`progress.json` is rewritten (atomically) after every task: one entry per session (the command, when it
started, how long it ran) and per task (how long it took, in which session). A resume adds a session,
so the record keeps the original start time and task timings beside the resume's.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.evaluation.options import OPTIONS, RunConfig, flag, json_types
from evalkit.load.branches import parse_branches, read_branches
from evalkit.load.tiny import embedded_path
from evalkit.records.io import write_json_atomic
from evalkit.records.results import ResultsRecord
from evalkit.records.run_ids import run_path

FORMAT = "evalkit.run_config"
VERSION = 2  # 1: the bare RunConfig dict (no format key, no identity), written before resume was checked
# The model config keys that decide what a model generates.
GENERATION_KEYS = ("max_out_len", "max_seq_len", "stop_words", "chat_template", "thinking", "pred_postprocessor")
# Settings an older run_config.json may lack whose default changes no result; any other missing key is fatal.
_OPTIONAL = tuple(name for name, option in OPTIONS.items() if option.may_be_absent)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    run_dir: Path
    record_path: Path
    record: ResultsRecord
    notes: tuple[str, ...] = field(default=())


class RunInterrupted(EvalkitError):
    """Ctrl-C during a run: what finished is kept, and the message says how to finish the rest."""

    exit_code = 130  # the shell's code for a process ended by SIGINT


def resume_command(out: Path, run_id: str) -> str:
    """The command that finishes run `run_id` under `out`."""
    where = "" if out == Path(".") else f"--out {shlex.quote(str(out))} "
    return f"python -m evalkit run {where}--resume {run_id}"


# --- identity: what a run evaluates --------------------------------------------------------------


def identity(
    models: list[dict[str, Any]], datasets: list[dict[str, Any]], checkpoints: Mapping[str, str], dtype: str
) -> dict[str, Any]:
    """The run's identity: per model its checkpoint fingerprint and generation settings, the dtype, and a
    digest of each dataset config. `checkpoints` maps a model's path to `family.checkpoint_identity`."""
    return {
        "dtype": dtype,
        "models": {
            m["abbr"]: {
                "path": str(m["path"]),
                "checkpoint": checkpoints[str(m["path"])],
                "generation": {k: m[k] for k in GENERATION_KEYS if k in m},
            }
            for m in models
        },
        "datasets": {d["abbr"]: _digest(_first_spelling(d)) for d in datasets},
    }


# evalkit's own classes in a dataset config, under the module paths they had when run identities were first
# stored: digests stay the same across that move, so a run started before it still resumes.
_FIRST_PATHS = {"evalkit.oc.evaluators.": "evalkit.oc_evaluators.", "evalkit.oc.model.": "evalkit.opencompass_model."}


def _first_spelling(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _first_spelling(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_first_spelling(v) for v in obj]
    if isinstance(obj, str):
        for now, first in _FIRST_PATHS.items():
            if obj.startswith(now):
                return first + obj[len(now) :]
    return obj


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def differences(stored: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What changed between the identity a run started with and the one its files give now."""
    out = []
    if stored.get("dtype") != now["dtype"]:
        out.append(f"dtype {stored.get('dtype')} is now {now['dtype']}")
    old_models, new_models = stored.get("models", {}), now["models"]
    for abbr in sorted(set(old_models) ^ set(new_models)):
        where = "no longer" if abbr in old_models else "now"
        out.append(f"model {abbr} is {where} part of the run (the checkpoint's branches changed)")
    for abbr in [a for a in old_models if a in new_models]:
        old, new = old_models[abbr], new_models[abbr]
        if old.get("checkpoint") != new["checkpoint"]:
            out.append(
                f"the checkpoint of {abbr} ({new['path']}) is not the one the run started with "
                f"(fingerprint {old.get('checkpoint')}, now {new['checkpoint']})"
            )
        for key in sorted(set(old.get("generation", {})) | set(new["generation"])):
            a, b = old.get("generation", {}).get(key), new["generation"].get(key)
            if a != b:
                out.append(f"{abbr}'s {key} {a!r} is now {b!r}")
    old_sets, new_sets = stored.get("datasets", {}), now["datasets"]
    changed = sorted(k for k in set(old_sets) | set(new_sets) if old_sets.get(k) != new_sets.get(k))
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        out.append(f"the dataset configs of {shown} differ (another evalkit or OpenCompass version?)")
    return out


# --- run_config.json ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredRun:
    """A run directory as `--resume` finds it."""

    run_id: str
    run_dir: Path
    config: RunConfig
    identity: Mapping[str, Any] | None  # None: written by an evalkit that did not record it
    version: int

    def check(self, now: Mapping[str, Any]) -> None:
        """Refuse to continue unless the checkpoints, dtype, generation and dataset configs are the run's own."""
        if self.identity is None:
            return
        changed = differences(self.identity, now)
        if changed:
            raise EvalkitError(
                f"cannot resume {self.run_id}: {'; '.join(changed)}; its finished tasks would mix "
                "with answers from another setup: restore what changed, or start a new run "
                "without --resume"
            )

    def refuse_conflicts(self, given: Mapping[str, Any]) -> None:
        """A resumed run keeps its own settings: a given setting (in RunConfig's form) that differs is an error."""
        differ = [(k, v) for k, v in given.items() if not self._agrees(k, v)]
        if not differ:
            return
        one = len(differ) == 1
        flags = ", ".join(_flag(k, v) for k, v in differ)
        theirs = ", ".join(f"{k} {_shown(getattr(self.config, k))}" for k, _ in differ)
        raise EvalkitError(
            f"--resume {self.run_id} finishes the run with its own settings, and {flags} "
            f"{'differs' if one else 'differ'} from them ({theirs}); drop {'it' if one else 'them'} to "
            "finish the run as it was started, or start a new run without --resume"
        )

    def _agrees(self, key: str, given: Any) -> bool:
        stored = getattr(self.config, key)
        if key == "branches":
            return same_branches(given, stored, self.config.model)
        return bool(given == stored)


def same_branches(a: str, b: str, model: str | None) -> bool:
    """Whether two branch lists select the same branches of `model` (None: the embedded family), known from
    its config.json and safetensors headers ("2" and "E111K" are one branch of the tiny family). Where the
    checkpoint cannot be read, they agree when they hold the same names or layers, in any case and order."""
    try:
        branches = read_branches(model or embedded_path())
        return set(parse_branches(a, branches)) == set(parse_branches(b, branches))
    except (EvalkitError, OSError):
        return _spelled(a) == _spelled(b)


def _spelled(spec: str) -> list[str]:
    """A branch list as written: its names or layers, lower case and sorted; "all" is the empty list."""
    tokens = sorted(t.strip().lower() for t in str(spec).split(",") if t.strip())
    return tokens if tokens != ["all"] else []


def _flag(key: str, value: Any) -> str:
    if key == "shared_trunk":
        return "--shared-trunk" if value else "--no-shared-trunk"
    return f"{flag(key)} {_shown(value)}"


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join("=".join(v) if isinstance(v, tuple) else str(v) for v in value) or "(none)"
    return "(none)" if value is None else str(value)


def write_run_config(run_dir: Path, config: RunConfig, run_identity: Mapping[str, Any]) -> Path:
    return write_json_atomic(
        run_dir / "run_config.json",
        {"format": FORMAT, "version": VERSION, "config": asdict(config), "identity": run_identity},
    )


def read_run_config(out: Path, run_id: str) -> StoredRun:
    """The run `run_id` under `out/results/`, or one clear error saying why it cannot be resumed."""
    fix = "pass the id of a run under OUT/results, as `evalkit run` printed it"
    run_dir = run_path(out / "results", run_id, "--resume", fix)
    path = run_dir / "run_config.json"
    if not path.is_file():
        runs = sorted(p.name for p in (out / "results").glob("*") if (p / "run_config.json").is_file())
        raise EvalkitError(
            f"no run {run_id!r} under {out / 'results'} to resume; runs there: {', '.join(runs) or 'none'}"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise EvalkitError(
            f"{path} is not valid JSON ({e}); the run's settings are lost, so it cannot be resumed: start a new run"
        ) from None
    if not isinstance(raw, dict):
        raise EvalkitError(f"{path} does not hold a run config (a JSON object); start a new run")
    version, body, run_identity = _unwrap(raw, path)
    settings = _settings(body, path)
    return StoredRun(run_id, run_dir, replace(RunConfig(), **settings), run_identity, version)


def _unwrap(raw: dict[str, Any], path: Path) -> tuple[int, dict[str, Any], dict[str, Any] | None]:
    if "format" not in raw:  # version 1: the settings alone
        return 1, raw, None
    version = raw.get("version")
    if raw["format"] != FORMAT or not isinstance(version, int):
        raise EvalkitError(
            f"{path} is not an evalkit run config (format {raw['format']!r}, version {version!r}); start a new run"
        )
    if version > VERSION:
        raise EvalkitError(
            f"{path} was written by a newer evalkit (run config version {version}; this one reads "
            f"up to {VERSION}); resume the run with that evalkit"
        )
    body, run_identity = raw.get("config"), raw.get("identity")
    if not isinstance(body, dict) or not isinstance(run_identity, dict):
        raise EvalkitError(f"{path} lacks its config or identity section; the file is damaged: start a new run")
    return version, body, run_identity


def _settings(body: dict[str, Any], path: Path) -> dict[str, Any]:
    """The RunConfig fields of a stored config, checked: unknown or missing settings are one clear error."""
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(body) - known)
    if unknown:
        raise EvalkitError(
            f"{path} has settings this evalkit does not know ({', '.join(unknown)}); resume the run "
            "with the evalkit that started it"
        )
    missing = sorted(known - set(body) - set(_OPTIONAL))
    if missing:
        raise EvalkitError(
            f"{path} lacks the settings {', '.join(missing)}; the run cannot be resumed as it was "
            "started: start a new run"
        )
    bad = [k for k, v in body.items() if not _typed(v, json_types(k))]
    if bad:
        raise EvalkitError(
            f"{path} holds values of the wrong type for {', '.join(sorted(bad))}; the file is damaged: start a new run"
        )
    settings = dict(body)
    for key in ("baselines", "suites"):
        if key in settings:
            settings[key] = tuple(str(v) for v in settings[key])
    if "baseline_paths" in settings:
        pairs = settings["baseline_paths"]
        if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise EvalkitError(
                f"{path}: baseline_paths must be [name, dir] pairs; the file is damaged: start a new run"
            )
        settings["baseline_paths"] = tuple((str(n), str(d)) for n, d in pairs)
    return settings


def _typed(value: Any, types: tuple[type, ...]) -> bool:
    """isinstance, except that a bool is not an int here (JSON true is no item limit)."""
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


# --- progress.json --------------------------------------------------------------------------------


@dataclass
class Progress:
    """Sessions and task timings of one run directory, saved after every change.

    A session is one process working on the run: the first, then one per --resume. A task's entry says
    how long it took and which session ran it; a resume that reuses it leaves the entry as it was.
    """

    path: Path
    sessions: list[dict[str, Any]] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def begin(cls, run_dir: Path, command: str, *, resume: bool) -> Progress:
        progress = cls(run_dir / "progress.json")
        if resume:
            progress._load()
        start = datetime.now(timezone.utc)
        progress.sessions.append(
            {
                "command": command,
                "started_at": start.isoformat(timespec="seconds"),
                "finished_at": None,
                "duration_s": 0.0,
                "_start": start.timestamp(),
            }
        )
        progress.save()
        return progress

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            sessions, tasks = list(raw["sessions"]), dict(raw["tasks"])
        except FileNotFoundError:
            self.notes.append(
                "no progress.json (an older evalkit started this run): earlier sessions' start "
                "time and task timings are unknown"
            )
            return
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as e:
            self.notes.append(f"progress.json is damaged ({type(e).__name__}); earlier sessions' timings are lost")
            return
        self.sessions = [s for s in sessions if isinstance(s, dict)]
        self.tasks = {k: v for k, v in tasks.items() if isinstance(v, dict)}

    @property
    def session(self) -> int:
        return len(self.sessions) - 1

    def ran(self, key: str, seconds: float | None) -> None:
        self.tasks[key] = {"seconds": None if seconds is None else round(seconds, 3), "session": self.session}
        self._tick()

    def finish(self) -> None:
        self._tick(finished=True)

    def _tick(self, *, finished: bool = False) -> None:
        current = self.sessions[-1]
        now = datetime.now(timezone.utc)
        current["duration_s"] = round(now.timestamp() - current["_start"], 3)
        if finished:
            current["finished_at"] = now.isoformat(timespec="seconds")
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, {"sessions": self.public_sessions(), "tasks": self.tasks})

    def task_table(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Per task: "ran" in this session or "reused" from an earlier one, its seconds and session."""
        out = {}
        for key in keys:
            entry = self.tasks.get(key, {"seconds": None, "session": None})
            status = "ran" if entry.get("session") == self.session else "reused"
            out[key] = {"status": status, "seconds": entry.get("seconds"), "session": entry.get("session")}
        return out

    def timeline(self) -> tuple[str | None, str | None, float]:
        """(the first session's start, the last one's finish, seconds spent running, summed over sessions)."""
        total = sum(float(s.get("duration_s") or 0.0) for s in self.sessions)
        return self.sessions[0].get("started_at"), self.sessions[-1].get("finished_at"), round(total, 3)

    def public_sessions(self) -> list[dict[str, Any]]:
        """The sessions as progress.json and the record state them (without the in-process start clock)."""
        return [{k: v for k, v in s.items() if not k.startswith("_")} for s in self.sessions]
