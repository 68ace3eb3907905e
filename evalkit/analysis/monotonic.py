"""Monotonicity of a family's branches: does a larger branch ever score lower than a smaller one?

Every ordered pair (smaller, larger) of a family's branches is compared on every dataset, not only
adjacent ones, so an inversion that skips a branch (E5B above E7B) is caught too. Each pair is
tested (see `evalkit.analysis.stats.compare`: exact McNemar on common items, two-proportion z-test on
aggregates) and the p-values are Holm-corrected across all pairs of one dataset (10 pairs for five
branches). Only pairs where the larger branch scores lower are listed; p-values are two-sided.

The average over datasets is checked the same way; its test is a z-test on the mean of the
per-dataset differences, with the per-dataset SEs combined as independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

from evalkit.analysis.family_view import Sized, all_dataset_keys, families
from evalkit.analysis.stats import Comparison, compare, holm, mean_comparison
from evalkit.catalog.datasets import AVERAGE
from evalkit.records.results import ResultsRecord

ALPHA = 0.05


@dataclass(frozen=True)
class Inversion:
    family: str
    dataset: str  # dataset key, or "avg" for the average over datasets
    from_: str  # the smaller branch, which scores higher
    to: str  # the larger branch, which scores lower
    from_value: float
    to_value: float
    delta: float  # to - from, points, negative
    p_value: float | None  # Holm-adjusted across the dataset's pairs; None when n is unknown
    p_raw: float | None
    significant: bool
    method: str

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "dataset": self.dataset,
            "from": self.from_,
            "to": self.to,
            "from_value": round(self.from_value, 4),
            "to_value": round(self.to_value, 4),
            "delta": round(self.delta, 4),
            "p_value": self.p_value,
            "p_raw": self.p_raw,
            "significant": self.significant,
            "method": self.method,
        }


@dataclass(frozen=True)
class _Pair:
    small: Sized
    large: Sized
    small_value: float
    large_value: float
    comparison: Comparison


def find_inversions(record: ResultsRecord, *, alpha: float = ALPHA) -> list[Inversion]:
    """Every inversion of every family on every dataset and on the average, in catalogue order."""
    out: list[Inversion] = []
    keys = all_dataset_keys(record)
    for family, branches in families(record).items():
        per_dataset = {k: _pairs(record, branches, k) for k in keys}
        for k in keys:
            out += _inversions(family, k, per_dataset[k], alpha)
        out += _inversions(family, AVERAGE, _average_pairs(branches, per_dataset), alpha)
    return out


def _pairs(record: ResultsRecord, branches: list[Sized], key: str) -> list[_Pair]:
    pairs = []
    for small, large in combinations(branches, 2):
        a, b = record.score(small.model.abbr, key), record.score(large.model.abbr, key)
        if a is not None and b is not None:
            pairs.append(_Pair(small, large, a.value, b.value, compare(a, b)))
    return pairs


def _average_pairs(branches: list[Sized], per_dataset: dict[str, list[_Pair]]) -> list[_Pair]:
    """Pairs on the mean over the datasets every branch has."""
    complete = [k for k, ps in per_dataset.items() if len(ps) == len(branches) * (len(branches) - 1) // 2]
    if not complete:
        return []
    out = []
    for i, (small, large) in enumerate(combinations(branches, 2)):
        ps = [per_dataset[k][i] for k in complete]
        comp = mean_comparison([p.comparison for p in ps])
        sv = sum(p.small_value for p in ps) / len(ps)
        lv = sum(p.large_value for p in ps) / len(ps)
        out.append(_Pair(small, large, sv, lv, comp))
    return out


def _inversions(family: str, key: str, pairs: list[_Pair], alpha: float) -> list[Inversion]:
    adjusted = holm([p.comparison.p_value for p in pairs])
    out = []
    for p, adj in zip(pairs, adjusted, strict=True):
        if p.large_value >= p.small_value:
            continue
        method = p.comparison.method + (", Holm" if adj is not None else "")
        if not p.comparison.paired and key != AVERAGE:
            method += " (aggregates only)"
        out.append(
            Inversion(
                family=family,
                dataset=key,
                from_=p.small.label,
                to=p.large.label,
                from_value=p.small_value,
                to_value=p.large_value,
                delta=p.large_value - p.small_value,
                p_value=adj,
                p_raw=p.comparison.p_value,
                # The test must point the same way as the scores (it can differ when only some items are common).
                significant=adj is not None and adj < alpha and p.comparison.delta < 0,
                method=method,
            )
        )
    return out
