"""OpenCompass result files -> scores: per-item outcomes, and OpenCompass's group-averaging convention."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit import EvalkitError
from evalkit.oc.collect import collect_scores


def _write(root: Path, model: str, abbr: str, accuracy: float, outcomes: list[bool]) -> None:
    details = {"type": "GEN"}
    for i, ok in enumerate(outcomes):
        details[str(i)] = {"predictions": "A", "references": "A" if ok else "B"}
    path = root / "results" / model / f"{abbr}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"accuracy": accuracy, "details": details}))


def test_grouped_dataset_is_the_unweighted_mean_of_its_groups(tmp_path):
    # astronomy 1/1 correct, geography 1/3 correct: items say 50.0, OpenCompass's summary group says 66.67.
    _write(tmp_path, "m", "lukaemon_mmlu_astronomy", 100.0, [True])
    _write(tmp_path, "m", "lukaemon_mmlu_high_school_geography", 100 / 3, [True, False, False])
    [score] = collect_scores(tmp_path, ["m"], ["lukaemon_mmlu_astronomy", "lukaemon_mmlu_high_school_geography"])
    assert score.dataset == "mmlu" and score.n == 4
    assert score.value == pytest.approx((100 + 100 / 3) / 2)
    assert [(i.id, i.group, i.score) for i in score.items][:2] == [
        ("astronomy/0", "astronomy", 1.0),
        ("high_school_geography/0", "high_school_geography", 1.0),
    ]


def test_inconsistent_results_file_is_refused(tmp_path):
    _write(tmp_path, "m", "ARC-c", 75.0, [True, False])
    with pytest.raises(EvalkitError, match="per-item outcomes average 50.0000 but OpenCompass reports 75.0000"):
        collect_scores(tmp_path, ["m"], ["ARC-c"])


def test_missing_result_files_are_skipped(tmp_path):
    _write(tmp_path, "m", "ARC-c", 50.0, [True, False])
    assert [s.dataset for s in collect_scores(tmp_path, ["m", "other"], ["ARC-c", "hellaswag"])] == ["arc_c"]
