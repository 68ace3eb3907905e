"""Every point the report's Cascade section and routing.json show, per family, per dataset and overall.

Per dataset: each fixed branch, the oracle (the smallest branch with the item's best outcome, a bound no
realisable policy beats), and one out-of-sample cascade curve per confidence signal the record has
(`evalkit.analysis.cascade`). The headline signal is the choice margin where the dataset has one, else
the answer's mean token log-probability; it is fixed before any result is seen, so picking it tests
nothing on the held-out items. Overall points weigh datasets equally, at the same budgets (fractions
of the last branch's cost); their CIs combine each dataset's bootstrap draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from evalkit.analysis.cascade import (
    DEFAULT_FOLDS,
    DEFAULT_SEED,
    CostModel,
    Data,
    Point,
    Timing,
    available_signals,
    bootstrap_counts,
    cascadable,
    ci95,
    cross_validate,
    dataset_data,
    point,
)
from evalkit.analysis.family_view import Sized, all_dataset_keys, families
from evalkit.records.estimator import score_value
from evalkit.records.results import Item, ResultsRecord, Score

HEADLINE_SIGNALS = ("margin", "mean_logprob")


@dataclass(frozen=True)
class Headline:
    """The cascade matched to the last branch's accuracy: in each fold, the cheapest thresholds whose training
    accuracy reaches the last branch's, applied to the held-out fold (chosen without its items, like every
    other point). `reached`: its out-of-sample accuracy lies within or above the last branch's 95% CI."""

    target: float  # the last branch's accuracy
    target_ci: tuple[float, float]
    point: Point | None  # None: nothing to match
    fraction: float | None  # the point's cost over the last branch's
    trivial: bool = False  # the last branch answers nothing correctly: there is nothing to match

    @property
    def reached(self) -> bool:
        return self.point is not None and self.point.accuracy >= self.target_ci[0] - 1e-9


@dataclass(frozen=True)
class DatasetCascade:
    dataset: str
    n: int
    signal: str | None  # the headline signal; None when the items carry none
    fixed: tuple[Point, ...]
    oracle: Point
    curves: dict[str, tuple[Point, ...]]  # signal -> out-of-sample points, one per budget
    headline: Headline | None
    matched: dict[str, Point] = field(default_factory=dict)  # signal -> the cascade matched to the last branch


@dataclass(frozen=True)
class FamilyCascade:
    family: str
    branches: tuple[Sized, ...]
    cost: CostModel
    folds: int
    seed: int
    datasets: tuple[DatasetCascade, ...]
    overall: DatasetCascade | None  # datasets weighted equally; None without two datasets with a curve

    @property
    def missing_signals(self) -> list[str]:
        return [d.dataset for d in self.datasets if d.signal is None]


def cascades(
    record: ResultsRecord,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = DEFAULT_SEED,
    head: float = 0.0,
    timings: dict[str, Timing] | None = None,
) -> list[FamilyCascade]:
    """One FamilyCascade per family of two or more branches whose exit layers the record knows; `timings`
    (family -> measured seconds per branch) adds seconds per item to the points of generated datasets."""
    out = []
    for name, branches in families(record).items():
        exits = [b.model.exit_layer for b in branches]
        if not cascadable(exits):
            continue
        cost = CostModel(tuple(int(e) for e in exits if e is not None), head=head)
        timing = (timings or {}).get(name)
        per = [_dataset(record, branches, k, cost, folds, seed, timing) for k in all_dataset_keys(record)]
        done = tuple(d for d in per if d is not None)
        if done:
            out.append(FamilyCascade(name, tuple(branches), cost, folds, seed, done, _overall(done)))
    return out


def _dataset(
    record: ResultsRecord,
    branches: Sequence[Sized],
    key: str,
    cost: CostModel,
    folds: int,
    seed: int,
    timing: Timing | None = None,
) -> DatasetCascade | None:
    signals = available_signals(record, branches, key)
    base = dataset_data(record, branches, key, signals[0] if signals else "margin", cost, timing)
    if base is None or base.outcomes.shape[1] < 2:  # cross-validation needs an item to train on
        return None
    n = base.outcomes.shape[1]
    resamples = bootstrap_counts(n, seed)
    sep_s = None if base.seconds is None else base.seconds[1]
    fixed = tuple(
        point(
            label,
            base.outcomes[k],
            base.separate[k],
            base,
            resamples,
            stop=np.full(n, k),
            seconds=None if sep_s is None else sep_s[k],
        )
        for k, label in enumerate(base.labels)
    )
    oracle = _oracle(base, resamples)
    curves: dict[str, tuple[Point, ...]] = {}
    matched: dict[str, Point] = {}
    for name in signals:
        data = dataset_data(record, branches, key, name, cost, timing)
        if data is not None and data.signal is not None:
            points = _curve(data, resamples, folds, seed)
            curves[name], matched[name] = points[:-1], points[-1]
    headline_signal = next((s for s in HEADLINE_SIGNALS if s in curves), next(iter(curves), None))
    headline = _headline(fixed[-1], matched[headline_signal]) if headline_signal else None
    return DatasetCascade(key, n, headline_signal, fixed, oracle, curves, headline, matched)


def _oracle(data: Data, resamples: np.ndarray) -> Point:
    best = data.outcomes.max(axis=0)
    hits = data.outcomes == best[None, :]
    chosen = np.where(best > 0, hits.argmax(axis=0), len(data.labels) - 1)
    cols = np.arange(len(best))
    seconds = None if data.seconds is None else data.seconds[1][chosen, cols]
    return point("oracle", best, data.separate[chosen, cols], data, resamples, stop=chosen, seconds=seconds)


def _curve(data: Data, resamples: np.ndarray, folds: int, seed: int) -> tuple[Point, ...]:
    cv = cross_validate(data, folds=folds, seed=seed)
    cols = np.arange(data.outcomes.shape[1])
    fam_s = None if data.seconds is None else np.cumsum(data.seconds[0], axis=0)
    budgets = [float(b) for b in cv.budgets] + [None]  # the last row: matched to the last branch's accuracy
    return tuple(
        point(
            "cascade" if b is not None else "cascade matched to the last branch",
            cv.outcome[j],
            cv.familial[j],
            data,
            resamples,
            separate=cv.separate[j],
            budget=b,
            stop=cv.stop[j],
            seconds=None if fam_s is None else fam_s[cv.stop[j], cols],
        )
        for j, b in enumerate(budgets)
    )


def _headline(last: Point, matched: Point) -> Headline:
    if last.accuracy <= 0.0:
        return Headline(last.accuracy, last.accuracy_ci, None, None, trivial=True)
    return Headline(last.accuracy, last.accuracy_ci, matched, matched.cost / last.cost)


def _overall(datasets: Sequence[DatasetCascade]) -> DatasetCascade | None:
    """Datasets weighted equally, each curve point at the same budget index; CIs from the averaged draws."""
    with_curve = [d for d in datasets if d.signal is not None]
    if len(with_curve) < 2:
        return None
    fixed = tuple(_mean_point([d.fixed[k] for d in with_curve]) for k in range(len(with_curve[0].fixed)))
    oracle = _mean_point([d.oracle for d in with_curve])
    curve = tuple(
        _mean_point([d.curves[d.signal][j] for d in with_curve if d.signal is not None])
        for j in range(len(with_curve[0].curves[with_curve[0].signal or ""]))
    )
    n = sum(d.n for d in with_curve)
    matched = _mean_point([d.matched[d.signal] for d in with_curve if d.signal is not None])
    headline = _headline(fixed[-1], matched)
    return DatasetCascade(
        "overall",
        n,
        "headline signal of each dataset",
        fixed,
        oracle,
        {"headline": curve},
        headline,
        {"headline": matched},
    )


def _mean_point(points: Sequence[Point]) -> Point:
    draws = np.mean([p.draws for p in points if p.draws is not None], axis=0)
    separate = [p.separate_cost for p in points]
    budgets = [p.budget for p in points]
    seconds = [p.seconds for p in points]
    labels = {lab for p in points for lab in p.share}
    return Point(
        points[0].label,
        float(np.mean([p.accuracy for p in points])),
        ci95(draws[:, 0]),
        float(np.mean([p.cost for p in points])),
        ci95(draws[:, 1]),
        None if any(s is None for s in separate) else float(np.mean([s for s in separate if s is not None])),
        None if any(b is None for b in budgets) else float(np.mean([b for b in budgets if b is not None])),
        {lab: float(np.mean([p.share.get(lab, 0.0) for p in points])) for lab in sorted(labels)},
        None if any(x is None for x in seconds) else float(np.mean([x for x in seconds if x is not None])),
        draws,
    )


# --- the cascade as a score, for regress ------------------------------------------------------------


def cascade_scores(
    record: ResultsRecord, budget: float, *, folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED
) -> dict[str, Score]:
    """dataset -> the headline-signal cascade's out-of-sample per-item outcomes at `budget` (a fraction of the
    last branch's cost), as a Score, for the record's first family with signals; {} when there is none."""
    for name, branches in families(record).items():
        exits = [b.model.exit_layer for b in branches]
        if not cascadable(exits):
            continue
        cost = CostModel(tuple(int(e) for e in exits if e is not None))
        out = {}
        for key in all_dataset_keys(record):
            signals = [s for s in HEADLINE_SIGNALS if s in available_signals(record, branches, key)]
            data = dataset_data(record, branches, key, signals[0], cost) if signals else None
            if data is None:
                continue
            cv = cross_validate(data, folds=folds, seed=seed, budgets=np.array([budget]))
            out[key] = _as_score(data, cv.outcome[0], name, record.score(branches[0].model.abbr, key))
        if out:
            return out
    return {}


def _as_score(data: Data, outcome: np.ndarray, family: str, like: Score | None) -> Score:
    items = tuple(Item(i, float(o), g) for i, o, g in zip(data.ids, outcome, data.groups, strict=True))
    value = score_value(data.dataset, [i.score for i in items], [i.group for i in items])
    metric = like.metric if like is not None else "accuracy"
    return Score(f"{family}-cascade", data.dataset, metric, value, len(items), items)
