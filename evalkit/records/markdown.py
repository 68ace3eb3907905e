"""Pipe tables found in markdown text: where they are and what their cells say."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class PipeTable:
    line: int  # 1-based line number of the header row
    headers: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]  # (line number, cells)


def split_row(line: str) -> tuple[str, ...]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") else body
    return tuple(c.strip() for c in body.split("|"))


def plain(cell: str) -> str:
    """A cell without HTML tags or bold/italic markup: `**A**<b>(x)</b>` -> `A(x)`."""
    text = _TAG.sub("", cell)
    text = text.replace("**", "").replace("__", "")
    return " ".join(text.split())


def find_tables(text: str) -> list[PipeTable]:
    """Every pipe table: a header row, a separator row (`|:-:|---|`), then rows containing `|`."""
    lines = text.splitlines()
    tables = []
    i = 0
    while i < len(lines) - 1:
        if "|" in lines[i] and _SEPARATOR.match(lines[i + 1]) and "-" in lines[i + 1]:
            headers = split_row(lines[i])
            rows = []
            j = i + 2
            while j < len(lines) and "|" in lines[j] and lines[j].strip():
                rows.append((j + 1, split_row(lines[j])))
                j += 1
            tables.append(PipeTable(i + 1, headers, tuple(rows)))
            i = j
        else:
            i += 1
    return tables
