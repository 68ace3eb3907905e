"""Measuring conditions against each other: interleaved rounds, ratios of medians, bootstrap intervals.

`interleave(conditions, ratios, stopping=...)` is the one way a benchmark compares things. Each
condition is a named callable that does the work once and returns what it measured. Every round runs
every condition once, in a seeded random order, so drift and background load hit each condition
alike; rounds repeat until every ratio's 95% interval is narrow enough or the time budget is spent.
A ratio compares the sum of some conditions with the sum of others (so "each branch alone, summed,
over the last alone" is one ratio) within each round, where the conditions ran back to back and a
load or drift the round shared cancels; its estimate is the median of those per-round ratios and
its interval a percentile bootstrap over the rounds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from evalkit.records.bench import Comparison, RatioEstimate, Series

Measured = float | Mapping[str, float]  # what a condition returns: seconds, or several named measures
SECONDS = "s"  # the measure of a condition that returns a bare number
CONFIDENCE = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class RatioSpec:
    """sum of `numerator`'s medians / sum of `denominator`'s, of one measure."""

    name: str
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]
    measure: str = SECONDS


@dataclass(frozen=True)
class Stopping:
    """When the rounds stop: never before `min_rounds`; then as soon as every ratio's interval has a
    half-width under `target` of the ratio ("converged"), or when another round would overrun
    `budget_s` ("budget"), or at `max_rounds` ("max-rounds"). With no ratio: after `min_rounds`."""

    min_rounds: int
    budget_s: float
    max_rounds: int = 500
    target: float = 0.05

    def __post_init__(self) -> None:
        if not 1 <= self.min_rounds <= self.max_rounds or self.budget_s <= 0 or not 0 < self.target < 1:
            raise ValueError(f"bad stopping rule {self}")


@dataclass(frozen=True)
class SoFar:
    """Where a comparison stands after a round: what a progress line shows."""

    name: str
    rounds: int
    elapsed_s: float
    ratios: tuple[RatioEstimate, ...]  # as of the latest check (after the fewest rounds, then every ~10%); () before
    stopping: Stopping

    @property
    def widest(self) -> float | None:
        """The largest relative half-width among the ratios; None before any interval."""
        return max((r.half_width for r in self.ratios), default=None)


def interleave(
    conditions: Mapping[str, Callable[[], Measured]],
    ratios: Sequence[RatioSpec] = (),
    *,
    stopping: Stopping,
    name: str = "",
    warmup: int = 1,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
    on_round: Callable[[SoFar], None] | None = None,
) -> Comparison:
    """Measure `conditions` in interleaved rounds and estimate `ratios` with 95% intervals.

    - conditions: name -> a callable that runs the work once and returns seconds, or a mapping of
      named measures (e.g. {"ttft_s": ..., "e2e_s": ...}); the callable does its own timing, so a GPU
      caller can use CUDA events. It is never called concurrently.
    - ratios: which medians to compare (`RatioSpec`); a name in a spec must be a condition.
    - warm-up: each condition runs `warmup` times, untimed, in interleaved order, before round 1.
    - order: round r runs the conditions in `random.Random(f"{seed}:{r}")`'s shuffle of them.
    - stopping: see `Stopping`; `clock` measures the budget (wall time by default).
    - on_round: called after every round with a `SoFar` (progress, live tables).

    Returns a `Comparison` record: the order of every round, every raw value, each ratio as the
    median over rounds of the round's ratio (`ratio_estimate`) with a percentile interval from
    `RESAMPLES` bootstrap resamples of the rounds (seeded), and why the rounds stopped.

    Example (what `bench --shared-trunk` does for scoring)::

        c = interleave(
            {"shared": score_all, "E3B": score_e3b, "E7B": score_e7b},
            [RatioSpec("shared/last", ("shared",), ("E7B",)), RatioSpec("separate/last", ("E3B", "E7B"), ("E7B",))],
            stopping=Stopping(min_rounds=10, budget_s=60),
        )
        ratio_of(c, "shared/last").value, ratio_of(c, "shared/last").ci, c.stopped
    """
    names = tuple(conditions)
    for spec in ratios:
        unknown = [c for c in (*spec.numerator, *spec.denominator) if c not in conditions]
        if unknown or not spec.numerator or not spec.denominator:
            raise ValueError(f"ratio {spec.name} names conditions {unknown} that are not among {list(names)}")
    for i in range(warmup):
        for c in round_order(names, seed, -1 - i):
            conditions[c]()
    start = clock()
    orders: list[tuple[str, ...]] = []
    values: dict[tuple[str, str], list[float]] = {}
    stopped, checked = "", 0
    latest: tuple[RatioEstimate, ...] = ()
    while not stopped:
        order = round_order(names, seed, len(orders))
        measured = {c: _as_measures(conditions[c]()) for c in order}
        _append(values, measured, names, len(orders))
        orders.append(order)
        elapsed = clock() - start
        n = len(orders)
        # Each interval costs a bootstrap: computed after the fewest rounds, then every ~10% more rounds.
        if n >= stopping.min_rounds and n - checked >= max(1, checked // 10):
            so_far = _comparison(name, names, orders, values, ratios, stopping, warmup, seed, elapsed, "")
            latest, checked = so_far.ratios, n
            stopped = _stop(so_far, stopping, elapsed)
        if not stopped:
            stopped = _out_of_rounds(n, stopping, elapsed)
        if on_round is not None:
            on_round(SoFar(name, n, elapsed, latest, stopping))
    return _comparison(name, names, orders, values, ratios, stopping, warmup, seed, clock() - start, stopped)


def round_order(names: Sequence[str], seed: int, index: int) -> tuple[str, ...]:
    """The order of round `index` (negative: the warm-up rounds): a seeded shuffle of `names`."""
    order = list(names)
    random.Random(f"{seed}:{index}").shuffle(order)
    return tuple(order)


def ratio_estimate(spec: RatioSpec, values: Mapping[str, Sequence[float]], seed: int = 0) -> RatioEstimate:
    """The median over rounds of each round's ratio, and its 95% percentile bootstrap interval.

    `values[c][r]` is condition c's value in round r; every condition has the same rounds. Round r's
    ratio is sum(values[c][r] for c in numerator) / sum(... denominator): the conditions of one round
    ran back to back, so a load or clock drift the round shared cancels in it. The bootstrap resamples
    the per-round ratios (seeded), so the interval reflects only the spread the conditions did not share.
    """
    num = np.array([values[c] for c in spec.numerator], dtype=np.float64).sum(axis=0)
    den = np.array([values[c] for c in spec.denominator], dtype=np.float64).sum(axis=0)
    per_round = num / den
    value = float(np.median(per_round))
    low = high = value
    if per_round.size >= 2 and np.ptp(per_round) > 0:
        from scipy.stats import bootstrap

        res = bootstrap(
            (per_round,),
            np.median,
            vectorized=True,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            **_seeded(seed),
        )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        low, high = min(low, value), max(high, value)  # a percentile interval may miss a skewed point
    half = (high - low) / 2 / value if value > 0 else float("inf")
    return RatioEstimate(
        name=spec.name,
        measure=spec.measure,
        numerator=spec.numerator,
        denominator=spec.denominator,
        value=value,
        ci=(low, high),
        half_width=half,
    )


def _seeded(seed: int) -> dict[str, np.random.Generator]:
    """scipy's seed argument: `rng` since 1.15, `random_state` before."""
    import inspect

    from scipy.stats import bootstrap

    key = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
    return {key: np.random.default_rng(seed)}


def medians(c: Comparison, measure: str = SECONDS) -> dict[str, float]:
    """Each condition's median of one measure."""
    return {s.condition: float(np.median(s.values)) for s in c.series if s.measure == measure}


def values_of(c: Comparison, condition: str, measure: str = SECONDS) -> tuple[float, ...]:
    """One condition's values of one measure, in round order."""
    for s in c.series:
        if s.condition == condition and s.measure == measure:
            return s.values
    raise KeyError(f"{c.name} has no {measure} values for {condition}")


def ratio_of(c: Comparison, name: str) -> RatioEstimate:
    for r in c.ratios:
        if r.name == name:
            return r
    raise KeyError(f"{c.name} has no ratio {name}")


def _as_measures(result: Measured) -> dict[str, float]:
    if isinstance(result, Mapping):
        return {k: float(v) for k, v in result.items()}
    return {SECONDS: float(result)}


def _append(
    values: dict[tuple[str, str], list[float]],
    measured: Mapping[str, Mapping[str, float]],
    names: Sequence[str],
    n: int,
) -> None:
    for c in names:
        for m, v in measured[c].items():
            series = values.setdefault((c, m), [])
            if len(series) != n:
                raise ValueError(f"condition {c} returned {m!r} in some rounds and not in others")
            series.append(v)
    if any(len(s) != n + 1 for s in values.values()):
        raise ValueError("every condition must return the same measures in every round")


def _comparison(
    name: str,
    names: tuple[str, ...],
    orders: list[tuple[str, ...]],
    values: Mapping[tuple[str, str], list[float]],
    ratios: Sequence[RatioSpec],
    stopping: Stopping,
    warmup: int,
    seed: int,
    elapsed: float,
    stopped: str,
) -> Comparison:
    estimates = tuple(
        ratio_estimate(spec, {c: values[(c, spec.measure)] for c in names if (c, spec.measure) in values}, seed)
        for spec in ratios
    )
    return Comparison(
        name=name,
        conditions=names,
        orders=tuple(orders),
        series=tuple(Series(c, m, tuple(v)) for (c, m), v in values.items()),
        ratios=estimates,
        rounds=len(orders),
        warmup=warmup,
        stopped=stopped or "converged",
        elapsed_s=elapsed,
        budget_s=stopping.budget_s,
        target=stopping.target,
        seed=seed,
    )


def _stop(c: Comparison, stopping: Stopping, elapsed: float) -> str:
    """Whether this round's intervals end the rounds: "converged", "no-ratio", or "" to run another."""
    if c.rounds < stopping.min_rounds:
        return ""
    if not c.ratios:
        return "no-ratio"
    return "converged" if all(r.half_width < stopping.target for r in c.ratios) else ""


def _out_of_rounds(n: int, stopping: Stopping, elapsed: float) -> str:
    """Whether the budget or the round cap ends the rounds after `n` of them, the fewest once run."""
    if n < stopping.min_rounds:
        return ""
    if elapsed + elapsed / n > stopping.budget_s:  # another round of the mean length would overrun
        return "budget"
    return "max-rounds" if n >= stopping.max_rounds else ""
