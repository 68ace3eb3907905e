"""Plots say what they know: intervals within 0..100, "n unknown" where it is, notes on empty plots.

SVGs keep their text as text, so what a plot says can be read back from the file.
"""

from __future__ import annotations

import pytest

from evalkit.analysis.stats import clipped_interval, score_interval
from evalkit.records.results import Item, Score
from evalkit.reporting.plots import Point, agreement_grid, monotonicity_plot, pareto_plot


def _score(dataset: str, outcomes: list[float], groups: list[str | None] | None = None) -> Score:
    groups = groups or [None] * len(outcomes)
    items = tuple(Item(id=str(i), score=s, group=g) for i, (s, g) in enumerate(zip(outcomes, groups, strict=True)))
    from evalkit.records.estimator import score_value

    return Score("m", dataset, "accuracy", score_value(dataset, outcomes, groups), len(items), items)


@pytest.mark.parametrize("outcomes", [[0.0] * 4, [1.0] * 4, [1.0, 0.0, 0.0, 0.0], [0.0] * 200 + [1.0]])
def test_score_intervals_are_wilson_and_stay_within_0_and_100(outcomes):
    low, high = score_interval(_score("arc_c", outcomes))
    value = 100 * sum(outcomes) / len(outcomes)
    assert 0.0 <= low <= value <= high <= 100.0
    assert high - low > 0  # never the zero-width interval of an SE at 0 or 100


def test_all_wrong_on_four_items_is_not_certainty():
    low, high = score_interval(_score("arc_c", [0.0] * 4))
    assert low == 0.0 and high == pytest.approx(48.99, abs=0.01)  # Wilson's 95% upper bound at 0 of 4


def test_a_grouped_score_counts_its_effective_items():
    even = score_interval(_score("mmlu", [1.0, 0.0] * 4, ["a", "a", "b", "b"] * 2))
    uneven = score_interval(_score("mmlu", [1.0, 0.0] * 4, ["a"] * 7 + ["b"]))
    assert even[1] - even[0] < uneven[1] - uneven[0]  # one item alone in its group weighs half the score


def test_an_unknown_n_has_no_interval_and_a_mean_is_cut_to_the_range():
    assert score_interval(Score("m", "arc_c", "accuracy", 40.0, 0, None)) is None
    assert clipped_interval(2.0, 3.0) == (0.0, pytest.approx(2.0 + 1.96 * 3.0, abs=0.01))
    assert clipped_interval(2.0, None) is None


def test_the_plot_says_n_unknown_and_notes_an_all_zero_dataset(tmp_path):
    points = [Point("E3B", 3e9, 40.0, None), Point("E7B", 7e9, 60.0, (50.0, 70.0))]
    _, svg = monotonicity_plot(points, {}, title="published", stem=tmp_path / "p")
    text = svg.read_text()
    assert "40.0 (n unknown)" in text and "60.0 (n unknown)" not in text
    assert "scores 0" not in text
    zeros = [Point("E3B", 3e9, 0.0, (0.0, 49.0)), Point("E7B", 7e9, 0.0, (0.0, 49.0))]
    _, svg = monotonicity_plot(zeros, {}, title="nothing right", stem=tmp_path / "z")
    assert "every model scores 0 here" in svg.read_text()


def test_the_pareto_legend_names_a_frontier_only_when_there_is_one(tmp_path):
    _, svg = pareto_plot({"E3B": 30.0, "E7B": 70.0}, {"E3B": 500.0, "E7B": 200.0}, title="t", stem=tmp_path / "a")
    assert "Pareto frontier" in svg.read_text()
    _, svg = pareto_plot({"E3B": 80.0, "E7B": 70.0}, {"E3B": 500.0, "E7B": 200.0}, title="t", stem=tmp_path / "b")
    text = svg.read_text()
    assert "Pareto frontier" not in text and "E3B is fastest and most accurate: no trade-off" in text


def test_the_agreement_grid_writes_every_value(tmp_path):
    import numpy as np
    from matplotlib.text import Text

    from evalkit.reporting import plots

    mats = {f"D{i}": np.full((2, 2), 0.5 + i / 20) for i in range(5)}  # 5 tiles: a 4-wide grid, one short row
    figures = plots.Figures()
    agreement_grid(mats, ["E3B", "E7B"], stem=tmp_path / "g", figures=figures)
    (fig,) = figures._by_size.values()
    texts = [t.get_text() for t in fig.findobj(Text) if t.get_visible()]
    for i in range(5):
        assert texts.count(f"{0.5 + i / 20:.2f}") >= 4  # every cell of every tile carries its value
    # branch names under the last tile of each column only: 4 columns x 2 names, none under an empty slot
    assert texts.count("E3B") == 4 + 2  # 4 under columns, 2 on the left edge (two rows)


def test_error_bar_lengths_are_never_negative():
    from evalkit.reporting.plots import bar_lengths

    lengths = bar_lengths([50.0, 100.00000000000003, 0.0], [40.0, 90.0, 0.0], [60.0, 100.0, 5.0])
    assert lengths[1].tolist() == [10.0, 0.0, 5.0]  # the arm above 100 would be -3e-14: zero instead
    assert lengths[0] == pytest.approx([10.0, 10.0, 0.0])
