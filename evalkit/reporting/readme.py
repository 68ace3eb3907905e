"""Score tables kept up to date inside a README, between markers:

    <!-- evalkit:table general -->
    ...generated table...
    <!-- /evalkit:table -->

Each marker stands on a line of its own. NAME is one of general, code, stem (baselines and ours),
branches (the branch table on the general suite, as in the model card), branches-code or
branches-stem. The text between the markers is the same table the report makes, written with the
line ending of the opening marker's line (LF or CRLF). Every byte outside the blocks stays as it
was, so running it twice changes nothing and `--check` can tell a stale README in CI. Markers inside
fenced code blocks (``` or ~~~), such as examples of this syntax, are text and are left alone. The
README is replaced atomically and keeps its mode: a full disk or a kill leaves it as it was.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import EvalkitError, did_you_mean
from evalkit.records.io import write_text_atomic
from evalkit.records.results import ResultsRecord, load_record, merge_records
from evalkit.reporting.tables import TABLE_NAMES, named_table

# A marker counts only on a line of its own, so prose that mentions one is left alone. The match
# stops before the line ending (a CRLF's \r included): a block's content starts with that ending.
_OPEN = re.compile(r"^<!--\s*evalkit:table\s+(?P<name>[\w-]+)\s*-->[ \t]*(?=\r?$)", re.MULTILINE)
_CLOSE = re.compile(r"^<!--\s*/evalkit:table\s*-->[ \t]*(?=\r?$)", re.MULTILINE)
# A fence line as in CommonMark: three or more backticks or tildes (indented, e.g. in a list item).
_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})(?P<info>[^\r\n]*)")


@dataclass(frozen=True)
class ReadmeUpdate:
    path: Path
    text: str  # the README with every block filled in
    blocks: tuple[str, ...]  # block names, in file order
    stale: tuple[str, ...]  # blocks whose content differs from the file's

    @property
    def changed(self) -> bool:
        return bool(self.stale)


def update_readme(path: str | Path, results: Sequence[str | Path], *, check: bool = False) -> ReadmeUpdate:
    """Fill every evalkit:table block of `path` from the records; write it unless `check`."""
    path = Path(path)
    if not path.is_file():
        raise EvalkitError(f"{path} does not exist; pass the README that holds <!-- evalkit:table NAME --> blocks")
    if not results:
        raise EvalkitError("readme needs at least one results record (--results RECORD.json)")
    record = merge_records([load_record(p) for p in results])
    with open(path, encoding="utf-8", newline="") as f:
        original = f.read()
    update = render(original, record, path)
    if update.changed and not check:
        write_text_atomic(path, update.text)  # a failed write leaves the README as it was
    return update


def render(text: str, record: ResultsRecord, path: Path = Path("README.md")) -> ReadmeUpdate:
    """`text` with every block's content replaced by its table; nothing else changes."""
    out, names, stale = [], [], []
    pos = 0
    for name, body_start, body_end in _blocks(text, path):
        table = named_table(record, name)
        if table is None:
            raise EvalkitError(
                f"{path}: block {name!r} has no scores in the given records; pass the record "
                "that holds them or remove the block"
            )
        newline = "\r\n" if text.startswith("\r\n", body_start) else "\n"
        body = newline + newline.join(table.splitlines()) + newline
        out += [text[pos:body_start], body]
        pos = body_end
        names.append(name)
        if text[body_start:body_end] != body:
            stale.append(name)
    out.append(text[pos:])
    if not names:
        raise EvalkitError(f"{path} has no <!-- evalkit:table NAME --> block; add one where a table belongs")
    return ReadmeUpdate(path, "".join(out), tuple(names), tuple(stale))


def _blocks(text: str, path: Path) -> list[tuple[str, int, int]]:
    """(name, content start, content end) of each block, in order; markers in fenced code don't count."""
    code = _fenced_code(text)
    opens = [m for m in _OPEN.finditer(text) if not _inside(code, m.start())]
    closes = [m for m in _CLOSE.finditer(text) if not _inside(code, m.start())]
    blocks: list[tuple[str, int, int]] = []
    pos = 0
    for k, m in enumerate(opens):
        if m.start() < pos:
            continue
        name = m.group("name")
        if name not in TABLE_NAMES:
            raise did_you_mean("table block", name, TABLE_NAMES)
        close = next((c for c in closes if c.start() >= m.end()), None)
        nested = opens[k + 1] if k + 1 < len(opens) else None
        if close is None or (nested is not None and nested.start() < close.start()):
            line = text.count("\n", 0, m.start()) + 1
            raise EvalkitError(f"{path} line {line}: block {name!r} is not closed; add <!-- /evalkit:table -->")
        blocks.append((name, m.end(), close.start()))
        pos = close.end()
    return blocks


def _fenced_code(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each fenced code block, fences included; an unclosed one runs to the end.

    A block closes at a fence of the same character, at least as long, with nothing after it.
    """
    spans: list[tuple[int, int]] = []
    opening: tuple[int, str] | None = None  # (offset, fence) of the open block
    offset = 0
    for line in text.splitlines(keepends=True):
        m = _FENCE.match(line)
        if m is not None:
            fence = m.group("fence")
            if opening is None:
                if not (fence[0] == "`" and "`" in m.group("info")):  # backticks in the info: inline code
                    opening = (offset, fence)
            elif fence[0] == opening[1][0] and len(fence) >= len(opening[1]) and not m.group("info").strip():
                spans.append((opening[0], offset + len(line)))
                opening = None
        offset += len(line)
    if opening is not None:
        spans.append((opening[0], len(text)))
    return spans


def _inside(spans: list[tuple[int, int]], pos: int) -> bool:
    return any(start <= pos < end for start, end in spans)
