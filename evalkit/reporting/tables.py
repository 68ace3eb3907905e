"""Score tables in the shape of the Ruyi model card: models as rows, datasets plus an average as columns.

The same text goes into report.md and, through `evalkit readme`, into README blocks, so it is
built in one place. Numbers come from the record with 2 decimals; nothing is retyped.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from tabulate import tabulate

from evalkit.analysis.family_view import branch_models, datasets_with_scores, headline_models
from evalkit.analysis.stats import mean_se, standard_error
from evalkit.catalog.datasets import BY_KEY, SUITES
from evalkit.errors import did_you_mean
from evalkit.records.results import ModelInfo, ResultsRecord

MISSING = "–"
# Block names: a suite table (baselines and the largest branch), or a branch table for a suite.
TABLE_NAMES = ("general", "code", "stem", "branches", "branches-code", "branches-stem")


def _suite_and_rows(record: ResultsRecord, name: str) -> tuple[str, list[ModelInfo]]:
    if name not in TABLE_NAMES:
        raise did_you_mean("table", name, TABLE_NAMES)
    if name.startswith("branches"):
        suite = name.partition("-")[2] or "general"
        return suite, branch_models(record)
    return name, headline_models(record)


def named_table(record: ResultsRecord, name: str, *, stderr: bool = False) -> str | None:
    """The table called `name` (see TABLE_NAMES), or None when the record has no scores for it."""
    suite, rows = _suite_and_rows(record, name)
    keys = datasets_with_scores(record, rows, SUITES[suite])
    rows = [m for m in rows if any(record.score(m.abbr, k) is not None for k in keys)]
    if not rows or not keys:
        return None
    return score_table(record, rows, keys, stderr=stderr)


def score_table(record: ResultsRecord, rows: list[ModelInfo], keys: list[str], *, stderr: bool = False) -> str:
    headers = ["Model", *(BY_KEY[k].title for k in keys), "Avg"]
    return pipe_table([[_name_cell(m), *_score_cells(record, m, keys, stderr)] for m in rows], headers)


def pipe_table(rows: list[list[str]], headers: list[str]) -> str:
    """A markdown pipe table of text cells as report.md shows scores: the first column left, the rest centred."""
    colalign = ("left", *("center",) * (len(headers) - 1))
    return tabulate(rows, headers=headers, tablefmt="pipe", colalign=colalign, disable_numparse=True)


def _name_cell(m: ModelInfo) -> str:
    return f"**{m.name}**" if m.role == "ours" else m.name


def fmt2(value: float | Decimal) -> str:
    """Two decimals, halves rounded up as a reader would by hand (85.105 -> 85.11, not 85.10)."""
    exact = value if isinstance(value, Decimal) else Decimal(repr(value))
    return str(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def decimal_mean(values: list[float]) -> Decimal:
    """The mean of the values as written (87.5 and 82.71 average to exactly 85.105)."""
    return sum((Decimal(repr(v)) for v in values), Decimal(0)) / len(values)


def _fmt(value: float | Decimal, se: float | None, stderr: bool) -> str:
    if not stderr or se is None:
        return fmt2(value)
    return f"{fmt2(value)} ± {fmt2(se)}"


def _score_cells(record: ResultsRecord, m: ModelInfo, keys: list[str], stderr: bool) -> list[str]:
    cells, values, ses = [], [], []
    for k in keys:
        s = record.score(m.abbr, k)
        if s is None:
            cells.append(MISSING)
            continue
        se = standard_error(s) if stderr else None
        cells.append(_fmt(s.value, se, stderr))
        values.append(s.value)
        ses.append(se)
    cells.append(_average_cell(values, ses, len(keys), stderr))
    return cells


def _average_cell(values: list[float], ses: list[float | None], k: int, stderr: bool) -> str:
    """Mean over all columns; a row missing a column gets no average rather than a biased one."""
    if len(values) != k or k == 0:
        return MISSING
    return _fmt(decimal_mean(values), mean_se(ses), stderr)


def row_average(record: ResultsRecord, m: ModelInfo, keys: list[str]) -> float | None:
    """The Avg column's value for one model, or None when it misses a dataset."""
    values = [s.value for k in keys if (s := record.score(m.abbr, k)) is not None]
    return sum(values) / len(keys) if keys and len(values) == len(keys) else None
