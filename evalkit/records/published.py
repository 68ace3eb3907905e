"""Published score tables (markdown, as in model cards) -> a results record of kind "published".

A score table has the model name in its first column, then columns of which at least one names a
dataset evalkit knows, and optionally an average column headed 均分, Avg or Average. Columns that
name no known dataset (Params, C-Eval, HumanEval+) are ignored with a warning, and that table's
averages are not checked. Other tables (download links, branch layouts) are skipped.

Score tables are numbered 1, 2, ... in file order, counting only score tables: those are the
numbers `--table` takes and errors list. A table that gains or loses an unknown column keeps its
number; a table with no known dataset column is never counted (one with an average column is
named in a warning).

Names lose their markup (`<b>`, `**`) and an `(ours)` mark. Ours are the rows marked `(ours)`, as
the model card marks its branches. A marked name such as `AI-Flow-Ruyi-7B-E3B-0725<b>(ours)</b>` is
read as branch E3B of family `ai-flow-ruyi-7b`, and so is an unmarked row of a family marked
elsewhere in the file. Other models with `E<n>B` in their names (Gemma-3n-E2B-it) stay baselines.

Branch sizes stay unknown (`num_params` None): the report then places branches at the size the
name states (E3B -> 3B) and labels that axis as nominal.

Each row's average is recomputed from its scores and compared with the published one; a mismatch
is a warning and is kept in the record's provenance (`configs.import_table`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path

from evalkit.catalog.datasets import BY_KEY, normalize_dataset
from evalkit.errors import EvalkitError
from evalkit.records.markdown import PipeTable, find_tables, plain
from evalkit.records.provenance import AverageCheck, RunProvenance, TableImport
from evalkit.records.results import ModelInfo, Provenance, ResultsRecord, Score
from evalkit.records.run_ids import check_run_id, run_id_from

AVERAGE_HEADERS = {"均分", "平均", "平均分", "avg", "average", "mean", "avg.", "overall"}
_OURS = re.compile(r"[(（]\s*ours\s*[)）]", re.IGNORECASE)
_BRANCH_NAME = re.compile(r"^(?P<family>.+?)-(?P<branch>E\d+B)(?:-(?P<release>.+))?$", re.IGNORECASE)
_MISSING = {"", "-", "–", "—", "n/a", "na", "/"}
# Two decimals each for the scores and the published mean: their rounding can move it by 0.01.
AVERAGE_TOLERANCE = 0.01 + 1e-9


class _Conflict(Exception):
    """Two tables give one model's dataset different scores."""


@dataclass(frozen=True)
class ImportResult:
    record: ResultsRecord
    warnings: tuple[str, ...]
    tables: tuple[int, ...]  # 1-based numbers of the score tables imported


@dataclass(frozen=True)
class _ScoreTable:
    number: int  # 1-based among the score tables of the file
    table: PipeTable
    datasets: tuple[str | None, ...]  # per column after the first: its dataset key, None for any other
    average: int | None = None  # position in `datasets` of the average column
    ignored: tuple[str, ...] = ()  # headers of the columns that name no dataset evalkit knows
    clash: str | None = None  # two columns that read as one dataset: the table cannot be read


def import_table(
    path: str | Path,
    *,
    n: Mapping[str, int] | None = None,
    source: str | None = None,
    tables: str | Sequence[int] | None = None,
    run_id: str | None = None,
) -> ImportResult:
    """Read every score table of a markdown file (or those `tables` selects, e.g. "1-4" or [1, 3])."""
    path = Path(path)
    if run_id is not None:
        check_run_id(run_id, "--run-id", "pass one such as published-ruyi-model-card")
    if not path.is_file():
        raise EvalkitError(f"{path} does not exist; pass a markdown file that holds a score table")
    text = path.read_text(encoding="utf-8")
    found = score_tables(text)
    warnings = [
        f"{path.name} line {t.line}: table with an average column but no dataset evalkit knows "
        f"({', '.join(plain(h) for h in t.headers[1:])}); skipped and not numbered"
        for t in _unknown_score_tables(text)
    ]
    if not found:
        raise EvalkitError(f"{path} holds no score table (a pipe table whose columns are dataset names)")
    chosen = _select(found, tables)
    sizes = {normalize_dataset(k): int(v) for k, v in (n or {}).items()}
    ours = _our_families(found)
    names = [cells[0] for st in found for _, cells in st.table.rows]
    if not any(_OURS.search(plain(c)) for c in names) and any(_family(_name(c)) for c in names):
        warnings.append(
            f"{path.name}: no row is marked (ours), so every model imports as a baseline; "
            "mark our branches' names, e.g. AI-Flow-Ruyi-7B-E3B-0725 (ours)"
        )
    models: dict[str, ModelInfo] = {}
    values: dict[tuple[str, str], tuple[float, int]] = {}
    averages: list[AverageCheck] = []
    try:
        for st in chosen:
            _read_rows(st, ours, models, values, averages, warnings, path)
    except _Conflict as e:
        raise EvalkitError(f"{e}; import one release with --table K (score tables: {describe(found)})") from None
    _check_branches(models, found, path)
    scores = tuple(
        Score(model=abbr, dataset=key, metric=BY_KEY[key].metric, value=v, n=sizes.get(key, 0))
        for (abbr, key), (v, _) in values.items()
    )
    mismatches = [a for a in averages if a.mismatch]
    imported = TableImport(
        file=str(path),
        tables=tuple(st.number for st in chosen),
        n=sizes,
        averages=tuple(averages),
        average_mismatches=len(mismatches),
    )
    prov = Provenance(
        source=source or path.name,
        command=f"evalkit import-table {path.name}",
        configs=RunProvenance(import_table=imported),
    )
    record = ResultsRecord(
        run_id=run_id or run_id_from(f"published-{path.stem}"),
        kind="published",
        models=tuple(models.values()),
        scores=scores,
        provenance=prov,
    )
    return ImportResult(record, tuple(warnings), tuple(st.number for st in chosen))


def score_tables(text: str) -> list[_ScoreTable]:
    """The score tables of a markdown text, numbered from 1 in file order (see the module doc)."""
    out: list[_ScoreTable] = []
    for t in find_tables(text):
        st = _columns(len(out) + 1, t)
        if st is not None:
            out.append(st)
    return out


def _columns(number: int, t: PipeTable) -> _ScoreTable | None:
    """The table read as score table `number`, or None if no column names a dataset evalkit knows."""
    keys: list[str | None] = []
    ignored: list[str] = []
    average = clash = None
    for i, header in enumerate(t.headers[1:]):
        name, key = plain(header), None
        if name.lower() in AVERAGE_HEADERS and average is None:
            average = i
        else:
            try:
                key = normalize_dataset(name)
            except EvalkitError:
                ignored.append(name or f"column {i + 2}")
        if key is not None and key in keys and clash is None:
            clash = f"columns {plain(t.headers[keys.index(key) + 1])!r} and {name!r} both read as {BY_KEY[key].title}"
        keys.append(key)
    if all(k is None for k in keys):
        return None
    return _ScoreTable(number, t, tuple(keys), average, tuple(ignored), clash)


def _unknown_score_tables(text: str) -> list[PipeTable]:
    """Tables with an average column but no known dataset: score tables evalkit cannot read."""
    return [
        t
        for t in find_tables(text)
        if any(plain(h).lower() in AVERAGE_HEADERS for h in t.headers[1:]) and _columns(0, t) is None
    ]


def _select(found: list[_ScoreTable], tables: str | Sequence[int] | None) -> list[_ScoreTable]:
    if tables is None or tables == "" or tables == "all":
        return found
    numbers = parse_table_numbers(tables) if isinstance(tables, str) else list(dict.fromkeys(tables))
    if not numbers:
        raise EvalkitError(f"no score table selected; this file has {len(found)}: {describe(found)}")
    bad = [k for k in numbers if not 1 <= k <= len(found)]
    if bad:
        raise EvalkitError(f"no score table {bad[0]}; this file has {len(found)}: {describe(found)}")
    return [found[k - 1] for k in numbers]


def parse_table_numbers(spec: str) -> list[int]:
    """ "2", "1,3" or "1-4" -> [1, 2, 3, 4]; each number once, in the order given."""
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise EvalkitError(f"--table {spec!r} is not a table number, list (1,3) or range (1-4)") from None
        if last < first:
            raise EvalkitError(f"--table {spec!r}: range {part.strip()} runs backwards; write {last}-{first}")
        out += range(first, last + 1)
    return list(dict.fromkeys(out))


def describe(found: list[_ScoreTable]) -> str:
    return "; ".join(
        f"{st.number} (line {st.table.line}: {', '.join(BY_KEY[d].title for d in st.datasets if d)})" for st in found
    )


def model_info(cell: str, our_families: Set[str] = frozenset()) -> ModelInfo:
    """A model row's name cell -> who it is (a branch of our family, another model of ours, or a baseline).

    Ours are marked `(ours)`, or belong to one of `our_families` (family names as `_family` gives them).
    """
    ours = bool(_OURS.search(plain(cell)))
    name = _name(cell)
    abbr = re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-")
    family = _family(name)
    if family is not None and (ours or family in our_families):
        branch = _BRANCH_NAME.match(name)
        assert branch is not None
        return ModelInfo(abbr=abbr, name=name, role="ours", family=family, branch=branch.group("branch").upper())
    return ModelInfo(abbr=abbr, name=name, role="ours" if ours else "baseline")


def _name(cell: str) -> str:
    return _OURS.sub("", plain(cell)).strip()


def _family(name: str) -> str | None:
    """ "AI-Flow-Ruyi-7B-E3B-0725" -> "ai-flow-ruyi-7b"; None for a name that is not FAMILY-E<n>B[-RELEASE]."""
    m = _BRANCH_NAME.match(name)
    return m.group("family").lower() if m else None


def _our_families(found: Sequence[_ScoreTable]) -> frozenset[str]:
    """The families that some row of the file marks (ours): their unmarked rows are ours too."""
    return frozenset(
        family
        for st in found
        for _, cells in st.table.rows
        if cells and _OURS.search(plain(cells[0])) and (family := _family(_name(cells[0]))) is not None
    )


def _number(cell: str, where: str) -> float | None:
    text = plain(cell).rstrip("%").strip()
    if text.lower() in _MISSING:
        return None
    try:
        value = float(text)
    except ValueError:
        raise EvalkitError(f"{where}: {cell!r} is not a score; fix the table or drop the row") from None
    if not 0.0 <= value <= 100.0:
        raise EvalkitError(f"{where}: score {value} is outside 0..100; scores must be in points")
    return value


def _read_rows(
    st: _ScoreTable,
    ours: Set[str],
    models: dict[str, ModelInfo],
    values: dict[tuple[str, str], tuple[float, int]],
    averages: list[AverageCheck],
    warnings: list[str],
    path: Path,
) -> None:
    where = f"{path.name} line {st.table.line} (score table {st.number})"
    if st.clash:
        raise EvalkitError(f"{where}: {st.clash}; rename one column, or leave the table out with --table")
    if st.ignored:
        known = ", ".join(d.title for d in BY_KEY.values())
        unchecked = "; its averages are not checked" if st.average is not None else ""
        warnings.append(
            f"{where}: ignored {', '.join(map(repr, st.ignored))}, not datasets evalkit knows "
            f"(known: {known}){unchecked}"
        )
    for line, cells in st.table.rows:
        if not cells or not plain(cells[0]):
            continue
        info = model_info(cells[0], ours)
        models.setdefault(info.abbr, info)
        row: dict[str, float] = {}
        published_avg = None
        for i, (key, cell) in enumerate(zip(st.datasets, cells[1:], strict=False)):
            if key is None and i != st.average:
                continue
            v = _number(cell, f"{path.name} line {line}")
            if v is None:
                continue
            if key is None:
                published_avg = v
                continue
            row[key] = v
            old = values.get((info.abbr, key))
            if old is not None and old[0] != v:
                raise _Conflict(
                    f"{path.name}: {info.name} {BY_KEY[key].title} is {old[0]:.2f} at line "
                    f"{old[1]} but {v:.2f} at line {line}"
                )
            values[(info.abbr, key)] = (v, line)
        if published_avg is not None:
            averages.append(_check_average(st, line, info, row, published_avg, path, warnings))


def _check_average(
    st: _ScoreTable,
    line: int,
    info: ModelInfo,
    row: dict[str, float],
    published: float,
    path: Path,
    warnings: list[str],
) -> AverageCheck:
    expected = [d for d in st.datasets if d is not None]
    complete = len(row) == len(expected) and not st.ignored  # an ignored column may be in the average
    recomputed = sum(row.values()) / len(row) if complete else None
    mismatch = recomputed is not None and abs(recomputed - published) > AVERAGE_TOLERANCE
    if mismatch:
        warnings.append(
            f"{path.name} line {line}: {info.name}: published average {published:.2f}, "
            f"recomputed {recomputed:.2f} from its {len(row)} scores"
        )
    elif recomputed is None and not st.ignored:  # the table's warning covers ignored columns
        warnings.append(
            f"{path.name} line {line}: {info.name}: average {published:.2f} not checked "
            f"(row has {len(row)} of {len(expected)} scores)"
        )
    return AverageCheck(
        table=st.number,
        line=line,
        model=info.abbr,
        published=published,
        recomputed=None if recomputed is None else round(recomputed, 4),
        mismatch=mismatch,
    )


def _check_branches(models: dict[str, ModelInfo], found: list[_ScoreTable], path: Path) -> None:
    """Two different names must not claim the same branch of one family (e.g. two releases)."""
    seen: dict[tuple[str, str], str] = {}
    for m in models.values():
        if m.family is None or m.branch is None:
            continue
        other = seen.setdefault((m.family, m.branch), m.name)
        if other != m.name:
            raise EvalkitError(
                f"{path.name}: {other} and {m.name} are both branch {m.branch} of {m.family}; import one "
                f"release with --table K (score tables: {describe(found)})"
            )


def parse_sizes(pairs: Sequence[str]) -> dict[str, int]:
    """["MMLU=14042", "gsm8k=1319"] -> {"mmlu": 14042, "gsm8k": 1319}."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not value.strip().isdigit():
            raise EvalkitError(f"--n {pair!r} is not DATASET=N (e.g. --n MMLU=14042)")
        out[normalize_dataset(name.strip())] = int(value)
    return out
