"""Standard errors and tests against closed forms and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from evalkit.results import Item, Score
from evalkit.stats import binomial_se, compare, holm, mcnemar_exact, mean_comparison, standard_error


def _score(dataset: str, outcomes, groups=None, model: str = "m") -> Score:
    items = tuple(Item(f"q{i}", float(o), None if groups is None else groups[i]) for i, o in enumerate(outcomes))
    return Score(model, dataset, "accuracy", 100 * float(np.mean(outcomes)), len(outcomes), items)


def test_binomial_se_from_n_and_unknown_n():
    assert binomial_se(70.0, 100) == pytest.approx(100 * math.sqrt(0.7 * 0.3 / 100))
    assert binomial_se(70.0, 0) is None
    assert standard_error(Score("m", "arc_c", "accuracy", 70.0, 0)) is None


def test_item_se_without_clusters_equals_binomial_for_0_1_outcomes():
    s = _score("arc_c", [1, 1, 1, 0, 1, 0, 1, 1, 0, 1])
    assert standard_error(s) == pytest.approx(binomial_se(70.0, 10))


def test_clustered_se_follows_miller_eq4():
    rng = np.random.default_rng(0)
    x = (rng.random(60) < 0.6).astype(float)
    groups = [f"g{i // 10}" for i in range(60)]
    resid = x - x.mean()
    by_cluster = [resid[i * 10:(i + 1) * 10].sum() for i in range(6)]
    expected = 100 * math.sqrt(sum(c * c for c in by_cluster)) / 60
    assert standard_error(_score("mmlu", x, groups)) == pytest.approx(expected)
    # The same items on a dataset without subjects get the plain SE.
    assert standard_error(_score("gsm8k", x, groups)) == pytest.approx(100 * x.std() / math.sqrt(60))


@pytest.mark.parametrize("b, c", [(3, 7), (0, 5), (10, 10), (1, 20), (40, 62)])
def test_mcnemar_exact_matches_scipy_binomtest(b, c):
    a = np.array([1] * b + [0] * c + [1, 0, 1])
    d = np.array([0] * b + [1] * c + [1, 0, 1])
    assert mcnemar_exact(a, d) == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue)


def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, 0.03, None, 0.5]
    # sorted: 0.01*4=0.04, 0.03*3=0.09, 0.04*2=0.08 -> max-accumulated 0.09, 0.5*1 -> 0.5
    assert holm(p) == pytest.approx([0.04, 0.09, 0.09, None, 0.5])
    assert holm([]) == []


def test_paired_compare_uses_common_items_only():
    a = _score("gsm8k", [1, 1, 0, 0, 1, 1])
    b_items = tuple(Item(f"q{i}", float(o)) for i, o in enumerate([0, 1, 0, 1, 1, 1])) + (Item("extra", 1.0),)
    b = Score("n", "gsm8k", "accuracy", 100 * 5 / 7, 7, b_items)
    c = compare(a, b)
    assert c.paired and c.n == 6 and c.method == "paired: exact McNemar"
    assert c.delta == pytest.approx(0.0)
    assert c.p_value == pytest.approx(stats.binomtest(1, 2, 0.5).pvalue)
    diff = np.array([-1, 0, 0, 1, 0, 0], dtype=float)
    half = 1.959963984540054 * 100 * diff.std() / math.sqrt(6)
    assert c.ci == pytest.approx((-half, half))


def test_fractional_outcomes_use_a_seeded_paired_bootstrap():
    a = _score("humaneval", [0.2, 0.4, 0.6, 0.8] * 10)
    b = _score("humaneval", [0.9, 0.9, 0.9, 0.9] * 10)
    c1, c2 = compare(a, b), compare(a, b)
    assert c1.method == "paired: bootstrap" and c1.p_value == c2.p_value
    assert c1.p_value < 0.01 and c1.delta == pytest.approx(40.0)


def test_unpaired_two_proportion_and_fixed_reference():
    a = Score("m", "arc_c", "accuracy", 60.0, 500)
    b = Score("n", "arc_c", "accuracy", 55.0, 400)
    c = compare(a, b)
    pooled = (0.6 * 500 + 0.55 * 400) / 900
    z = (0.55 - 0.60) / math.sqrt(pooled * (1 - pooled) * (1 / 500 + 1 / 400))
    assert not c.paired and c.method == "unpaired: two-proportion z"
    assert c.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))
    published = Score("m", "arc_c", "accuracy", 60.0, 0)  # n unknown: held fixed
    c2 = compare(published, b)
    assert c2.p_value == pytest.approx(stats.binomtest(220, 400, 0.6).pvalue)
    assert compare(published, Score("n", "arc_c", "accuracy", 55.0, 0)).p_value is None


def test_mean_comparison_combines_independent_ses():
    a = Score("m", "arc_c", "accuracy", 60.0, 1000)
    b = Score("n", "arc_c", "accuracy", 62.0, 1000)
    one = compare(a, b)
    two = mean_comparison([one, one])
    assert two.delta == pytest.approx(one.delta)
    half = (one.ci[1] - one.ci[0]) / 2
    assert (two.ci[1] - two.ci[0]) / 2 == pytest.approx(half / math.sqrt(2))
