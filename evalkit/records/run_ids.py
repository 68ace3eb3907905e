"""Run ids name directories (`OUT/results/<run id>`, `reports/<run id>`), so every one follows one rule.

A run id is 1 to 128 ASCII letters, digits, '.', '_' and '-', starting with a letter or a digit: it is
one path component, never '.', '..', absolute, empty or a hidden name. Every place a run id comes in
(a record or bench record read from disk, `import-table --run-id`, `run --resume`) checks it, and a
path built from one is checked to stay inside its folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from evalkit.errors import EvalkitError

RUN_ID_RULE = "1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_run_id(value: object, what: str, fix: str) -> str:
    """`value` if it is a valid run id, else an EvalkitError: '{what} ... is not a valid run id (...); {fix}'."""
    if isinstance(value, str) and _RUN_ID.fullmatch(value):
        return value
    raise EvalkitError(f"{what} {value!r} is not a valid run id ({RUN_ID_RULE}); {fix}")


def run_id_from(text: str) -> str:
    """A valid run id made from free text (a file name): other characters become '-'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).lstrip("._-")[:128]
    return cleaned or "run"


def run_path(base: Path, run_id: str, what: str, fix: str) -> Path:
    """`base/run_id`, for a checked run id: one component below `base`, never outside it."""
    path = base / check_run_id(run_id, what, fix)
    if path.parent != base or path.name != run_id:  # the rule makes this impossible; the path must not depend on it
        raise EvalkitError(f"{what} {run_id!r} does not name a folder directly inside {base}; {fix}")
    return path
