"""Counting the items each dataset's loader will evaluate, before anything loads.

A data root can hold every file a suite needs and still fail: an MMLU subject file with no rows, an
MMLU-Pro category absent from the test split, a BBH task with no examples. OpenCompass then runs
inference on everything else and fails scoring the empty group with a raw IndexError. `count_items`
reads the file the catalog names (`Dataset.opencompass.items`) the way OpenCompass 0.5.4's loader
reads it (the comment on each reader names the loader) and returns how many items that loader would
hand on, without importing OpenCompass or `datasets`. A file the loader would fail to read raises
`Unreadable` with the reason.
"""

from __future__ import annotations

import csv
import functools
import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path


class Unreadable(Exception):
    """A data file its loader would fail on; the message says why, in a phrase ("line 3 is not JSON")."""


def count_items(path: Path, reader: str, group: str | None) -> int | None:
    """Items the loader evaluates from `path` (of `group`, for a grouped dataset); None when they cannot
    be counted without the loader (a layout this check does not know)."""
    try:
        return READERS[reader](path, group)
    except UnicodeDecodeError as e:
        raise Unreadable(f"is not UTF-8 text (byte {e.start})") from None
    except (OSError, csv.Error) as e:
        raise Unreadable(f"cannot be read ({getattr(e, 'strerror', None) or e})") from None


def _lines(path: Path, errors: str = "strict") -> list[str]:
    with path.open(encoding="utf-8", errors=errors) as f:
        return list(f)


def _rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8") as f:
        return list(csv.reader(f))


def _json(text: str, where: str) -> object:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise Unreadable(f"{where} is not valid JSON ({e})") from None


def _csv(path: Path, group: str | None) -> int:
    """MMLUDataset: every row of the test csv is an item."""
    return len(_rows(path))


def _csv_after_header(path: Path, group: str | None) -> int:
    """CMMLUDataset: every row after the header row."""
    return max(0, len(_rows(path)) - 1)


def _gpqa_csv(path: Path, group: str | None) -> int:
    """GPQADataset: every row whose 8th field (the question) is not the header's "Question"."""
    rows = _rows(path)
    for number, row in enumerate(rows, 1):
        if len(row) < 8:
            raise Unreadable(f"row {number} has {len(row)} fields; the loader reads the question from the 8th")
    return sum(row[7] != "Question" for row in rows)


def _jsonl(path: Path, group: str | None) -> int:
    """GSM8K, HellaSwag, WinoGrande and HumanEval datasets: one item per line."""
    return sum(bool(line.strip()) for line in _lines(path))


def _arc_jsonl(path: Path, group: str | None) -> int:
    """ARCDataset: lines whose question has exactly four choices (it skips the others)."""
    count = 0
    for number, line in enumerate(_lines(path, errors="ignore"), 1):  # the loader ignores bad bytes too
        item = _json(line.strip(), f"line {number}")
        question = item.get("question") if isinstance(item, dict) else None
        choices = question.get("choices") if isinstance(question, dict) else None
        if not isinstance(choices, list):
            raise Unreadable(f"line {number} has no question.choices list")
        count += len(choices) == 4
    return count


def _mbpp_jsonl(path: Path, group: str | None) -> int:
    """SanitizedMBPPDataset: lines 8 to 264 (`train[7:264]`; the first seven are its few-shot examples)."""
    return max(0, min(sum(bool(line.strip()) for line in _lines(path)), 264) - 7)


def _json_examples(path: Path, group: str | None) -> int:
    """BBHDataset: the list under "examples"."""
    data = _json(path.read_text(encoding="utf-8"), "the file")
    examples = data.get("examples") if isinstance(data, dict) else None
    if not isinstance(examples, list):
        raise Unreadable('holds no "examples" list')
    return len(examples)


def _json_object(path: Path, group: str | None) -> int:
    """MATHDataset: one item per key of the top-level object."""
    data = _json(path.read_text(encoding="utf-8"), "the file")
    if not isinstance(data, dict):
        raise Unreadable("holds no JSON object of items")
    return len(data)


def _parquet_category(path: Path, group: str | None) -> int | None:
    """MMLUProDataset: `load_dataset(<dir>)`, its test split, rows whose category is the group (the abbr
    spells a category's spaces as underscores)."""
    tests = _test_split(path)
    if any(p.suffix != ".parquet" for p in tests):
        return None  # another format `datasets` reads; the loader will count it
    stamps = tuple((p, p.stat().st_mtime_ns, p.stat().st_size) for p in tests)
    return _categories(path, stamps)[(group or "").replace("_", " ")]


# How `datasets` names the split of a directory's files: data/<split>-00000-of-00001.parquet first, then
# a split keyword in a directory or file name between separators. It skips hidden files and its own.
_SHARDED = re.compile(r"^data/(?P<split>\w+)-\d{5}-of-\d{5}[^/]*$")
_TEST_WORD = re.compile(r"(^|[-._ 0-9/])(test|testing|eval|evaluation)[-._ 0-9/]")
_NOT_DATA = {"README.md", "config.json", "dataset_info.json", "dataset_infos.json", "dataset_dict.json"}


def _test_split(root: Path) -> list[Path]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith((".", "__")))
    named = [(p, p.relative_to(root).as_posix()) for p in files if p.name not in _NOT_DATA]
    sharded = [(p, m["split"]) for p, rel in named if (m := _SHARDED.match(rel))]
    tests = [p for p, split in sharded if split == "test"] if sharded else [p for p, r in named if _TEST_WORD.search(r)]
    if not tests:
        raise Unreadable("has no test split (data/test-00000-of-00001.parquet)")
    return tests


@functools.lru_cache(maxsize=4)
def _categories(root: Path, stamps: tuple[tuple[Path, int, int], ...]) -> Counter[str]:
    """Rows per category over the test split's parquet files (cached while the files are unchanged)."""
    import pyarrow.parquet as pq  # installed with `datasets`, which OpenCompass needs; about 0.4 s

    counts: Counter[str] = Counter()
    for p, _, _ in stamps:
        try:
            column = pq.ParquetFile(p).read(columns=["category"]).column("category")  # no pyarrow.dataset import
            counts.update(str(c) for c in column.to_pylist())
        except Exception as e:  # noqa: BLE001 - pyarrow raises its own kinds for a damaged or foreign file
            raise Unreadable(f"file {p.relative_to(root)} has no readable category column ({e})") from None
    return counts


READERS: dict[str, Callable[[Path, str | None], int | None]] = {
    "csv": _csv,
    "csv-after-header": _csv_after_header,
    "gpqa-csv": _gpqa_csv,
    "jsonl": _jsonl,
    "arc-jsonl": _arc_jsonl,
    "mbpp-jsonl": _mbpp_jsonl,
    "json-examples": _json_examples,
    "json-object": _json_object,
    "parquet-category": _parquet_category,
}
