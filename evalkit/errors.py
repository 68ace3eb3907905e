"""The one exception type that reaches the user as a single line."""

from __future__ import annotations


class EvalkitError(Exception):
    """A problem the user can fix: the message says what was wrong and what to do.

    The CLI prints it as one line and exits non-zero; it never shows a traceback.
    """

    exit_code = 2


def did_you_mean(kind: str, name: object, valid: list[str] | tuple[str, ...]) -> EvalkitError:
    """An 'unknown X' error that lists the valid choices."""
    plural = f"{kind}es" if kind.endswith(("s", "x", "ch", "sh")) else f"{kind}s"
    return EvalkitError(f"unknown {kind} {name!r}; valid {plural} are: {', '.join(map(str, valid))}")
