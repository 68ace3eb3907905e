"""Reading JSON documents strictly: one reader for every file evalkit loads, and field checks that name
the field.

JSON allows values no stage can use, and Python's `json` module allows more: a key twice in one
object (Python keeps the last, other readers the first), `NaN`, `Infinity` and
numbers too large for a float (`1e999` reads as infinity), `true` where a number belongs (a bool is an
int in Python), a list where an object belongs, and documents nested deeper than the parser's
recursion limit. `read_json` turns every way a file can fail to parse into one EvalkitError; the checks
below refuse the rest, each with a RecordError whose message starts with the field's path
(`scores[3].n is Infinity, expected a whole number`), which the loaders prefix with the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from evalkit.errors import EvalkitError


class RecordError(EvalkitError, ValueError):
    """A record that parses but holds values no stage can use; the message names the value. Loaders add
    the file; one raised while a record is built in code (import-table's, say) reaches the user as is."""


def read_json(path: str | Path, what: str, fix: str) -> Any:
    """The parsed contents of `path`; a file that cannot be read or parsed is one EvalkitError,
    "<what> <path> <problem>; <fix>"."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as e:
        problem = f"has the key {e.args[0]!r} twice in one object (readers disagree on which one counts)"
    except UnicodeDecodeError as e:
        problem = f"is not UTF-8 text (byte {e.start} is {e.object[e.start : e.start + 1]!r})"
    except ValueError as e:  # malformed, or an integer too long for Python to convert
        problem = f"is not valid JSON ({e})"
    except RecursionError:
        problem = "is nested too deeply to read (more levels than the JSON parser allows)"
    except OSError as e:
        problem = f"cannot be read ({e.strerror or e})"
    raise EvalkitError(f"{what} {path} {problem}; {fix}")


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return out


def keys(data: Any, where: str, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> Mapping[str, Any]:
    """`data` as an object with every `required` key and no key outside `required` and `optional`."""
    found = obj(data, where)
    missing = [k for k in required if k not in found]
    if missing:
        raise RecordError(f"{where} lacks {', '.join(map(repr, missing))}")
    unknown = [k for k in found if k not in required and k not in optional]
    if unknown:
        raise RecordError(
            f"{where} has {', '.join(map(repr, unknown))}, which this evalkit does not know "
            f"(known: {', '.join((*required, *optional))})"
        )
    return found


def obj(value: Any, where: str) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else wrong(value, where, "an object")


def seq(value: Any, where: str) -> list[Any] | tuple[Any, ...]:
    return value if isinstance(value, list | tuple) else wrong(value, where, "a list")


def text(value: Any, where: str, *, null: bool = False, empty: bool = True) -> Any:
    if isinstance(value, str) and (empty or value.strip()):
        return value
    if null and value is None:
        return None
    return wrong(value, where, "text" if empty else "non-empty text", null)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_whole(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def number(value: Any, where: str, *, null: bool = False, low: float | None = None, high: float | None = None) -> Any:
    """A finite number (not a bool), within [low, high] where given."""
    if null and value is None:
        return None
    if not is_number(value):
        wrong(value, where, "a number", null)
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            bounds = f"from {low:g} to {high:g}"
        else:
            bounds = f">= {low:g}" if low is not None else f"<= {high:g}"
        raise RecordError(f"{where} is {value!r}, expected a number {bounds}")
    return value


# The largest whole number a record may hold: every integer up to it is exact as a float, which the
# statistics turn counts into; JSON has no portable integer beyond it either.
MAX_WHOLE = 2**53


def whole(value: Any, where: str, *, null: bool = False, low: int | None = None) -> Any:
    """A whole number (an int, not a bool, not 3.0), at least `low` where given and at most MAX_WHOLE."""
    if null and value is None:
        return None
    if not is_whole(value):
        wrong(value, where, "a whole number", null)
    if low is not None and value < low:
        raise RecordError(f"{where} is {value!r}, expected a whole number >= {low}")
    if abs(value) > MAX_WHOLE:
        raise RecordError(f"{where} is {shown(value)}, expected a whole number of at most 2**53")
    return value


def interval(value: Any, where: str) -> tuple[float, float]:
    """A confidence interval: [low, high], two finite numbers >= 0 with low <= high."""
    items = seq(value, where)
    if len(items) != 2:
        raise RecordError(f"{where} has {len(items)} values, expected an interval [low, high]")
    low, high = (float(number(v, f"{where}[{i}]", low=0)) for i, v in enumerate(items))
    if low > high:
        raise RecordError(f"{where} is [{low:g}, {high:g}], expected low <= high")
    return low, high


def flag(value: Any, where: str, *, null: bool = False) -> Any:
    if isinstance(value, bool) or (null and value is None):
        return value
    return wrong(value, where, "true or false", null)


def finite(value: Any, where: str) -> Any:
    """Free-form JSON (a run's settings, a copied config) with no NaN or infinity anywhere in it."""
    todo = [(value, where)]
    while todo:  # a loop, not recursion: the document may be as deep as the parser allowed
        node, at = todo.pop()
        if isinstance(node, float) and not math.isfinite(node):
            wrong(node, at, "a finite number")
        elif isinstance(node, Mapping):
            todo += [(v, f"{at}[{k!r}]") for k, v in node.items()]
        elif isinstance(node, list | tuple):
            todo += [(v, f"{at}[{i}]") for i, v in enumerate(node)]
    return value


def shown(value: Any) -> str:
    """A value as an error message shows it: JSON's spelling for what JSON cannot hold as a number."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def wrong(value: Any, where: str, expected: str, null: bool = False) -> NoReturn:
    raise RecordError(f"{where} is {shown(value)}, expected {expected}{' or null' if null else ''}")
