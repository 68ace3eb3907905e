"""Standard errors and comparisons of scores, from per-item outcomes where a record has them.

Conventions (all values in points, 0..100):

- Standard error of a score. A grouped dataset (MMLU, MMLU-Pro, CMMLU, BBH; items carry `group`)
  reports the unweighted mean of its group means (OpenCompass's summary convention), i.e. a mean of
  its items weighted 1 / (groups x items in the group); every other dataset the plain mean
  (`evalkit.records.estimator`, which also checks each record's values on load). With
  per-item outcomes the SE is that of the estimator actually reported, items as independent draws:
  sqrt(sum of w_i^2 (x_i - mean)^2), the plain SE of the mean when the weights are equal. It never
  collapses to 0 with few groups, as a cluster-robust SE over a handful of subjects would. With an
  aggregate only, it is the binomial SE sqrt(p(1-p)/n); with n unknown (n == 0) there is none.
- A comparison of two scores (b - a). Paired when both have outcomes on common item ids: the
  difference is the same estimator on per-item differences (so it equals b - a as reported), its CI
  +- z * SE as above; the p-value is the exact McNemar test (binomial on the discordant pairs) for
  0/1 outcomes with equal weights, a z-test on the weighted difference for unequal group sizes, a
  paired bootstrap otherwise. Unpaired otherwise: a two-proportion z-test on the aggregates, or an
  exact binomial test of one score against the other held fixed when only one side has a known n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special as _special  # scipy.stats costs about a second to import; special is enough

from evalkit.records import estimator
from evalkit.records.estimator import is_grouped
from evalkit.records.results import Score

Z95 = float(_special.ndtri(0.975))
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Comparison:
    """b - a for two scores on one dataset."""

    delta: float  # points
    ci: tuple[float, float] | None  # 95% CI of delta, points; None when n is unknown
    p_value: float | None  # two-sided; None when it cannot be computed (n unknown)
    method: str
    paired: bool
    n: int  # items behind the comparison (the common items when paired)


# --- standard errors ---------------------------------------------------------------------------


def item_weights(groups: Sequence[str | None] | None) -> np.ndarray | None:
    """The estimator's item weights (`evalkit.records.estimator.item_weights`) as an array; None for
    the plain mean."""
    weights = estimator.item_weights(groups)
    return None if weights is None else np.asarray(weights)


def mean_and_se(values: np.ndarray, weights: np.ndarray | None) -> tuple[float, float]:
    """The (weighted) mean of item values and its SE, sqrt(sum of w_i^2 (x_i - mean)^2)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    w = np.full(n, 1.0 / n) if weights is None else weights
    mean = float(np.dot(w, values))
    return mean, float(math.sqrt(float(np.sum((w * (values - mean)) ** 2))))


def binomial_se(value: float, n: int) -> float | None:
    """SE in points of a proportion given in points; None when n is unknown (0)."""
    if n <= 0:
        return None
    p = value / 100.0
    return 100.0 * math.sqrt(max(p * (1.0 - p), 0.0) / n)


def mean_se(ses: Sequence[float | None]) -> float | None:
    """The SE of the unweighted mean of n independent estimates (over datasets, say) with standard
    errors `ses`: sqrt(sum of se_i^2) / n. None when any of them is unknown, or there are none."""
    if not ses or any(se is None for se in ses):
        return None
    return math.sqrt(sum(se * se for se in ses if se is not None)) / len(ses)


def standard_error(score: Score) -> float | None:
    """The SE of a score in points (see the module docstring for which estimator applies)."""
    if score.items:
        values = np.array([i.score for i in score.items], dtype=float)
        groups = [i.group for i in score.items] if is_grouped(score.dataset) else None
        return 100.0 * mean_and_se(values, item_weights(groups))[1]
    return binomial_se(score.value, score.n)


def score_interval(score: Score, level: float = 0.95) -> tuple[float, float] | None:
    """The score's confidence interval in points, within 0..100; None when n is unknown (0).

    The Wilson score interval (scipy's `binomtest(...).proportion_ci`) of a proportion: a plain
    dataset's k of n, an aggregate-only score's value of n. A grouped dataset's score, a mean of group
    means, counts as a proportion of its effective number of items (Kish: 1 / sum of the squared
    item weights, which is n when the groups are the same size).
    """
    from scipy.stats import binomtest

    n = score.n
    if score.items and is_grouped(score.dataset):
        w = item_weights([i.group for i in score.items])
        n = int(round(1.0 / float(np.sum(w**2)))) if w is not None else len(score.items)
    if n <= 0:
        return None
    k = min(n, max(0, int(round(score.value / 100.0 * n))))
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return 100.0 * float(ci.low), 100.0 * float(ci.high)


def clipped_interval(value: float, se: float | None, z: float = Z95) -> tuple[float, float] | None:
    """value ± z·se, cut to 0..100 (for a mean of scores, which cannot leave that range); None without an SE."""
    if se is None:
        return None
    return max(0.0, value - z * se), min(100.0, value + z * se)


# --- multiple comparisons ----------------------------------------------------------------------


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values, in input order; None entries are skipped and kept None."""
    known = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(known)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(known)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


# --- tests -------------------------------------------------------------------------------------


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value for paired 0/1 outcomes."""
    n01 = int(np.sum((a == 1) & (b == 0)))
    n10 = int(np.sum((a == 0) & (b == 1)))
    if n01 + n10 == 0:
        return 1.0
    # Two-sided exact binomial test at p = 1/2 (what scipy.stats.binomtest computes), in closed form.
    return float(min(1.0, 2.0 * _special.bdtr(min(n01, n10), n01 + n10, 0.5)))


def paired_bootstrap_p(diff: np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> float:
    """Two-sided p-value of mean(diff) == 0 by resampling items (null: diffs re-centred at 0)."""
    n = len(diff)
    if n == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    centred = diff - diff.mean()
    idx = rng.integers(0, n, size=(resamples, n))
    boot = centred[idx].mean(axis=1)
    extreme = np.sum(np.abs(boot) >= abs(diff.mean()) - 1e-12)
    return float((extreme + 1) / (resamples + 1))


def _is_binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0.0) | (x == 1.0)))


def common_items(a: Score, b: Score) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Outcomes of a and b on their common item ids (in a's order) and the items' groups."""
    if not a.items or not b.items:
        return np.empty(0), np.empty(0), []
    by_id = {i.id: i for i in b.items}
    pairs = [(i, by_id[i.id]) for i in a.items if i.id in by_id]
    xa = np.array([p[0].score for p in pairs], dtype=float)
    xb = np.array([p[1].score for p in pairs], dtype=float)
    groups = [p[0].group if p[0].group is not None else p[1].group for p in pairs]
    return xa, xb, groups


def compare(a: Score, b: Score, *, seed: int = 0) -> Comparison:
    """b - a, paired on common item ids where both have outcomes, unpaired otherwise."""
    xa, xb, groups = common_items(a, b)
    if len(xa):
        return _paired(xa, xb, groups if is_grouped(a.dataset) else None, seed)
    return _unpaired(a, b)


def _paired(xa: np.ndarray, xb: np.ndarray, groups: list[str | None] | None, seed: int) -> Comparison:
    diff = xb - xa
    weights = item_weights(groups)
    mean, se_items = mean_and_se(diff, weights)
    delta, se = 100.0 * mean, 100.0 * se_items
    if weights is not None:
        p, method = _z_p(delta, se), "paired: z (mean of group means)"
    elif _is_binary(xa) and _is_binary(xb):
        p, method = mcnemar_exact(xa, xb), "paired: exact McNemar"
    else:
        p, method = paired_bootstrap_p(diff, seed), "paired: bootstrap"
    return Comparison(delta, (delta - Z95 * se, delta + Z95 * se), p, method, True, len(diff))


def _unpaired(a: Score, b: Score) -> Comparison:
    delta = b.value - a.value
    se_a, se_b = standard_error(a), standard_error(b)
    if se_a is not None and se_b is not None:
        se = math.sqrt(se_a**2 + se_b**2)
        p = _two_proportion_p(a, b) if not (a.items or b.items) else _z_p(delta, se)
        method = "unpaired: two-proportion z" if not (a.items or b.items) else "unpaired: z"
        return Comparison(delta, (delta - Z95 * se, delta + Z95 * se), p, method, False, min(a.n, b.n))
    known = b if se_b is not None else a if se_a is not None else None
    if known is None:
        return Comparison(delta, None, None, "unpaired: n unknown", False, 0)
    fixed = a if known is b else b
    se = standard_error(known) or 0.0
    k = round(known.value / 100.0 * known.n)
    from scipy.stats import binomtest  # only for aggregate-only scores against a fixed value

    p = float(binomtest(k, known.n, min(max(fixed.value / 100.0, 0.0), 1.0)).pvalue)
    ci = (delta - Z95 * se, delta + Z95 * se)
    return Comparison(delta, ci, p, "unpaired: binomial vs fixed value (other n unknown)", False, known.n)


def _z_p(delta: float, se: float) -> float:
    if se == 0.0:
        return 1.0 if delta == 0.0 else 0.0
    return float(2.0 * _special.ndtr(-abs(delta) / se))


def _two_proportion_p(a: Score, b: Score) -> float:
    """Pooled two-proportion z-test."""
    p1, p2 = a.value / 100.0, b.value / 100.0
    pooled = (p1 * a.n + p2 * b.n) / (a.n + b.n)
    se = math.sqrt(max(pooled * (1 - pooled), 0.0) * (1 / a.n + 1 / b.n))
    return _z_p(p2 - p1, se)


def format_p(p: float | None) -> str:
    """A p-value as tables show it: three decimals, "<0.001" below that, "n/a" when unknown."""
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def z_test(delta: float, se: float | None) -> float | None:
    """Two-sided normal p-value of delta with standard error se (None when se is unknown)."""
    return None if se is None else _z_p(delta, se)


def mean_comparison(comps: Sequence[Comparison]) -> Comparison:
    """The mean of several differences (e.g. over datasets), their SEs combined as independent."""
    delta = sum(c.delta for c in comps) / len(comps)
    se = mean_se([None if c.ci is None else (c.ci[1] - c.ci[0]) / (2 * Z95) for c in comps])
    ci = None if se is None else (delta - Z95 * se, delta + Z95 * se)
    method = f"z-test on the mean of {len(comps)} per-dataset differences"
    paired = all(c.paired for c in comps)
    return Comparison(delta, ci, z_test(delta, se), method, paired, sum(c.n for c in comps))
