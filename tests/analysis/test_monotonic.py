"""Monotonicity and routing headroom over a family's branches: paired tests, Holm, the oracle router."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from evalkit.analysis.family_view import families
from evalkit.analysis.monotonic import find_inversions
from evalkit.analysis.routing import headroom
from evalkit.records.results import Item, ModelInfo, ResultsRecord, Score, load_record

HERE = Path(__file__).resolve().parents[1] / "data"
SMALL = HERE / "records" / "small.json"


@pytest.fixture
def small() -> ResultsRecord:
    return load_record(SMALL)


def test_inversion_found_with_mcnemar_and_holm(small):
    inv = find_inversions(small)
    assert [(i.dataset, i.from_, i.to) for i in inv] == [("gsm8k", "E5B", "E7B")]
    assert inv[0].delta == pytest.approx(-12.5)
    # E5B right / E7B wrong on one item, never the reverse: exact McNemar p = binomtest(1, 1).
    assert inv[0].p_raw == pytest.approx(stats.binomtest(1, 1, 0.5).pvalue)
    assert not inv[0].significant


def _paired_family(outcomes: dict[str, list[int]], key: str = "gsm8k") -> ResultsRecord:
    models, scores = [], []
    for b, out in outcomes.items():
        size = int(b[1]) * 10**9
        models.append(ModelInfo(abbr=b.lower(), name=b, role="ours", family="f", branch=b, num_params=size))
        items = tuple(Item(f"q{i}", float(o)) for i, o in enumerate(out))
        scores.append(Score(b.lower(), key, "accuracy", 100 * float(np.mean(out)), len(out), items))
    return ResultsRecord("t", "measured", tuple(models), tuple(scores))


def test_significant_inversion_matches_scipy_with_holm():
    rng = np.random.default_rng(1)
    e3 = rng.random(200) < 0.3
    e5 = e3 | (rng.random(200) < 0.5)  # E5B answers everything E3B does, and more
    e7 = e5 & (rng.random(200) < 0.6)  # E7B loses 40% of E5B's correct answers
    rec = _paired_family(
        {"E3B": e3.astype(int).tolist(), "E5B": e5.astype(int).tolist(), "E7B": e7.astype(int).tolist()}
    )
    inv = {(i.from_, i.to): i for i in find_inversions(rec) if i.dataset == "gsm8k"}
    assert set(inv) == {("E5B", "E7B")}
    b = int(np.sum(e5 & ~e7))
    c = int(np.sum(~e5 & e7))
    raw = stats.binomtest(b, b + c, 0.5).pvalue
    assert inv["E5B", "E7B"].p_raw == pytest.approx(raw)
    # Holm over the 3 pairs of the dataset: the two non-inverted pairs have p ~ 0 here, so this is
    # the largest p and its adjusted value is max(running, 1 * p).
    assert inv["E5B", "E7B"].p_value >= raw
    assert inv["E5B", "E7B"].significant


def test_aggregate_only_inversion_uses_unpaired_test_and_says_so():
    models = tuple(ModelInfo(b.lower(), b, "ours", "f", b) for b in ("E3B", "E4B"))
    scores = (Score("e3b", "arc_c", "accuracy", 60.0, 1000), Score("e4b", "arc_c", "accuracy", 50.0, 1000))
    inv = find_inversions(ResultsRecord("t", "published", models, scores))
    arc = [i for i in inv if i.dataset == "arc_c"][0]
    assert "unpaired" in arc.method and "aggregates only" in arc.method
    z = (0.5 - 0.6) / np.sqrt(0.55 * 0.45 * (2 / 1000))
    assert arc.p_raw == pytest.approx(2 * stats.norm.sf(abs(z)))


def test_oracle_router_sends_items_to_the_smallest_correct_branch():
    rec = _paired_family({"E3B": [1, 0, 0, 0], "E5B": [1, 1, 0, 0], "E7B": [0, 1, 1, 0]})
    h = headroom(rec, families(rec)["f"], "gsm8k")
    assert h.oracle_accuracy == pytest.approx(75.0)
    assert h.largest_accuracy == pytest.approx(50.0)
    # item 0 -> E3B, item 1 -> E5B, item 2 -> E7B, item 3 (nobody) -> E7B
    assert h.oracle_mean_params == pytest.approx((3 + 5 + 7 + 7) / 4 * 1e9)
    assert h.share == {"E3B": 0.25, "E5B": 0.25, "E7B": 0.5}
