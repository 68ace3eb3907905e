"""Standard errors and tests against closed forms and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from evalkit.analysis.stats import (
    binomial_se,
    compare,
    format_p,
    holm,
    mcnemar_exact,
    mean_comparison,
    mean_se,
    standard_error,
)
from evalkit.records.results import Item, Score


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


def _grouped(dataset, sizes, correct, model="m"):
    """Items in groups of `sizes`, the first `correct[g]` of group g right; value = mean of group means."""
    items = tuple(
        Item(f"g{g}/{i}", float(i < k), f"g{g}")
        for g, (n, k) in enumerate(zip(sizes, correct, strict=True))
        for i in range(n)
    )
    value = 100 * float(np.mean([k / n for n, k in zip(sizes, correct, strict=True)]))
    return Score(model, dataset, "accuracy", value, len(items), items)


def test_grouped_se_is_that_of_the_mean_of_group_means():
    s = _grouped("mmlu", [10, 40], [6, 10])
    x = np.array([i.score for i in s.items])
    w = np.array([1 / (2 * 10)] * 10 + [1 / (2 * 40)] * 40)
    mean = float(w @ x)
    assert 100 * mean == pytest.approx(s.value)  # 0.5 * 0.6 + 0.5 * 0.25
    assert standard_error(s) == pytest.approx(100 * math.sqrt(float(np.sum((w * (x - mean)) ** 2))))
    # Groups of one size: the plain SE of the mean; a dataset without subjects ignores groups.
    equal = _grouped("mmlu", [25, 25], [15, 5])
    x = np.array([i.score for i in equal.items])
    assert standard_error(equal) == pytest.approx(100 * x.std() / math.sqrt(50))
    assert standard_error(_grouped("gsm8k", [10, 40], [6, 10])) == pytest.approx(
        100 * np.std([1] * 16 + [0] * 34) / math.sqrt(50)
    )


def test_grouped_se_does_not_collapse_with_few_groups():
    # Both groups' means equal the overall mean: a cluster-robust SE over subjects would be exactly 0.
    s = _grouped("mmlu", [4, 4], [3, 3])
    assert standard_error(s) == pytest.approx(100 * math.sqrt(0.75 * 0.25 / 8))


def test_grouped_comparison_is_the_difference_of_the_reported_scores():
    # 100 + 1500 items: the small group drops 8 points, the large one is unchanged, so the reported score
    # (the mean of group means) drops 4 points while the item mean drops only 0.5.
    ref = _grouped("mmlu", [100, 1500], [80, 750], model="ref")
    cand = _grouped("mmlu", [100, 1500], [72, 750], model="cand")
    c = compare(ref, cand)
    assert c.delta == pytest.approx(cand.value - ref.value) and c.delta == pytest.approx(-4.0)
    assert c.method == "paired: z (mean of group means)" and c.p_value < 0.01
    se = (c.ci[1] - c.ci[0]) / (2 * 1.959963984540054)
    diff = np.array([0.0] * 72 + [-1.0] * 8 + [0.0] * 20 + [0.0] * 1500)
    w = np.array([1 / 200] * 100 + [1 / 3000] * 1500)
    assert se == pytest.approx(100 * math.sqrt(float(np.sum((w * (diff + 0.04)) ** 2))))
    # Equal group sizes keep the exact McNemar test on the items.
    assert compare(_grouped("mmlu", [5, 5], [4, 2]), _grouped("mmlu", [5, 5], [2, 2])).method == "paired: exact McNemar"


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


def test_mean_se_of_independent_estimates_and_unknown_ones():
    assert mean_se([3.0, 4.0]) == pytest.approx(2.5)  # sqrt(9 + 16) / 2
    assert mean_se([0.0, 0.0]) == 0.0
    assert mean_se([3.0, None]) is None and mean_se([]) is None


def test_p_values_as_text():
    assert [format_p(p) for p in (None, 0.0004, 0.001, 0.04567)] == ["n/a", "<0.001", "0.001", "0.046"]


def test_mean_comparison_combines_independent_ses():
    a = Score("m", "arc_c", "accuracy", 60.0, 1000)
    b = Score("n", "arc_c", "accuracy", 62.0, 1000)
    one = compare(a, b)
    two = mean_comparison([one, one])
    assert two.delta == pytest.approx(one.delta)
    half = (one.ci[1] - one.ci[0]) / 2
    assert (two.ci[1] - two.ci[0]) / 2 == pytest.approx(half / math.sqrt(2))
