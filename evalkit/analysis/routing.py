"""Routing headroom: how well an oracle router over a family's branches could do, and how alike they are.

The oracle sends each item to the smallest branch that gets the item's best outcome across the
branches (for 0/1 outcomes: the smallest branch that answers it correctly); an item that no branch
answers goes to the largest branch and counts as wrong. Only items every branch has are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalkit.analysis.family_view import Sized
from evalkit.records.results import ResultsRecord


@dataclass(frozen=True)
class Headroom:
    dataset: str
    n: int  # items every branch has
    largest_accuracy: float  # points
    oracle_accuracy: float  # points
    oracle_mean_params: float | None  # None when a branch size is unknown
    largest_params: int | None
    share: dict[str, float]  # fraction of items the oracle sends to each branch


def outcome_matrix(record: ResultsRecord, branches: list[Sized], key: str) -> np.ndarray | None:
    """branches x items outcomes on the item ids every branch has, or None without per-item outcomes."""
    scores = [record.score(b.model.abbr, key) for b in branches]
    if any(s is None or not s.items for s in scores):
        return None
    maps = [{i.id: i.score for i in s.items} for s in scores if s is not None and s.items]
    ids = [i for i in maps[0] if all(i in m for m in maps[1:])]
    if not ids:
        return None
    return np.array([[m[i] for i in ids] for m in maps], dtype=float)


def headroom(record: ResultsRecord, branches: list[Sized], key: str) -> Headroom | None:
    x = outcome_matrix(record, branches, key)
    if x is None or len(branches) < 2:
        return None
    best = x.max(axis=0)
    hits = x == best[None, :]
    chosen = np.where(best > 0, hits.argmax(axis=0), len(branches) - 1)
    params = [b.params for b in branches]
    mean_params = None
    if all(p is not None for p in params):
        mean_params = float(np.mean(np.array(params, dtype=float)[chosen]))
    share = {b.label: float(np.mean(chosen == i)) for i, b in enumerate(branches)}
    return Headroom(
        dataset=key,
        n=x.shape[1],
        largest_accuracy=100.0 * float(x[-1].mean()),
        oracle_accuracy=100.0 * float(best.mean()),
        oracle_mean_params=mean_params,
        largest_params=branches[-1].params,
        share=share,
    )


def agreement(x: np.ndarray) -> np.ndarray:
    """branches x branches: the fraction of items on which two branches have the same outcome."""
    return (x[:, None, :] == x[None, :, :]).mean(axis=2)
