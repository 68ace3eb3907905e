"""The estimator behind a score's value: how per-item outcomes become the number a record states.

A grouped dataset (MMLU, MMLU-Pro, CMMLU, BBH: the catalog's `grouped`, items carrying `group`)
reports the unweighted mean of its group means, OpenCompass's summary convention; that is a mean of
its items weighted 1 / (groups x items in the group). Every other dataset, and a grouped one whose
items do not all carry a group, reports the plain mean. A record's value is checked against this on
load, and `evalkit.analysis.stats` takes its weights from here, so standard errors and paired
differences are always of the number the record states.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from evalkit.catalog.datasets import BY_KEY

# How far (in points) a stated value may sit from the value its items give. Only float rounding is
# allowed: the same mean summed in another order (OpenCompass's group scores, then their mean) moves
# by about 1e-12 points over 10^5 items; a value rounded for display (0.01) is a different number.
VALUE_TOLERANCE = 1e-6


def is_grouped(dataset: str) -> bool:
    """Whether a dataset's score is a mean of group means (MMLU, MMLU-Pro, CMMLU, BBH)."""
    d = BY_KEY.get(dataset)
    return bool(d and d.grouped)


def item_weights(groups: Sequence[str | None] | None) -> list[float] | None:
    """Weights that make the weighted item mean the unweighted mean of group means; None when they
    would all be equal (no groups, an item without one, or groups of one size): the plain mean."""
    if not groups or any(g is None for g in groups):
        return None
    sizes = Counter(groups)
    if len(set(sizes.values())) == 1:
        return None
    return [1.0 / (len(sizes) * sizes[g]) for g in groups]


def score_value(dataset: str, scores: Sequence[float], groups: Sequence[str | None]) -> float:
    """The value in points (0..100) that items with these scores (0..1) and groups give on `dataset`."""
    if not scores:
        return math.nan
    weights = item_weights(groups) if is_grouped(dataset) else None
    if weights is None:
        return 100.0 * math.fsum(scores) / len(scores)
    return 100.0 * math.fsum(w * x for w, x in zip(weights, scores, strict=True))
