"""Sizes read as people read them: a tiny family's branches are K-sized, not 0.00B."""

from __future__ import annotations

import pytest

from evalkit.records.results import Item, ModelInfo, ResultsRecord, Score, save_record
from evalkit.reporting import report
from evalkit.reporting.units import axis_scale, format_bytes, format_params


@pytest.mark.parametrize(
    "n, text",
    [(7_615_616_512, "7.62B"), (283_970_000, "283.97M"), (111_040, "111.04K"), (999, "999"), (0, "0")],
)
def test_parameter_counts(n, text):
    assert format_params(n) == text


def test_byte_counts_and_axis_scales():
    assert format_bytes(6_700_000_000) == "6.70 GB"
    assert format_bytes(512) == "512 B"
    assert axis_scale(297_000) == (1e3, "K", "thousands")
    assert axis_scale(7.6e9) == (1e9, "B", "billions")
    assert axis_scale(12) == (1.0, "", "count")


def test_a_tiny_family_s_report_shows_its_sizes(tmp_path):
    sizes = {"E111K": 111_040, "E186K": 186_432, "E297K": 297_024}
    outcomes = {"E111K": [1, 0, 0, 0], "E186K": [1, 1, 0, 0], "E297K": [1, 1, 1, 0]}
    models, scores = [], []
    for name, out in outcomes.items():
        models.append(ModelInfo(name.lower(), f"tiny-{name}", "ours", "tiny", name, num_params=sizes[name]))
        items = tuple(Item(f"q{i}", float(o)) for i, o in enumerate(out))
        scores.append(Score(name.lower(), "gsm8k", "accuracy", 100 * sum(out) / len(out), len(out), items))
    path = save_record(ResultsRecord("tiny", "measured", tuple(models), tuple(scores)), tmp_path / "r.json")
    text = report([path], tmp_path / "report").read_text(encoding="utf-8")
    assert "0.00B" not in text
    headroom = text[text.index("## Routing headroom") :]
    assert "K |" in headroom  # the oracle's mean size, in thousands
