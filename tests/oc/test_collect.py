"""OpenCompass result files -> scores: per-item outcomes, and OpenCompass's group-averaging convention."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from opencompass.utils.prompt import PromptList

from evalkit import EvalkitError
from evalkit.oc.collect import collect_scores
from evalkit.oc.signals import record_signals, recording, signals_path
from evalkit.records.results import Signals


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


def _predictions(root: Path, model: str, abbr: str, entries: dict) -> None:
    path = root / "predictions" / model / f"{abbr}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries))


def test_choice_items_carry_the_margin_of_their_candidates_scores(tmp_path):
    _write(tmp_path, "m", "ARC-c", 50.0, [True, False])
    # PPL: probabilities are the softmax of -PPL; LL: of the loglikelihood.
    _predictions(
        tmp_path,
        "m",
        "ARC-c",
        {
            "0": {"origin_prompt": "q0", "label: A": {"PPL": 1.0}, "label: B": {"PPL": 1.0 + math.log(3)}},
            "1": {"origin_prompt": "q1", "label: A": {"Loglikelihood": -2.0}, "label: B": {"Loglikelihood": -2.0}},
        },
    )
    [score] = collect_scores(tmp_path, ["m"], ["ARC-c"])
    assert score.items[0].signals.margin == pytest.approx(0.75 - 0.25)
    assert score.items[1].signals.margin == pytest.approx(0.0)
    assert score.items[0].signals.mean_logprob is None


def test_generated_items_find_their_signals_by_the_prompt_the_model_was_given(tmp_path):
    _write(tmp_path, "m", "gsm8k", 50.0, [True, False])
    chat = [{"role": "HUMAN", "prompt": "2+2?"}]
    _predictions(
        tmp_path,
        "m",
        "gsm8k",
        {"0": {"origin_prompt": chat, "prediction": "4"}, "1": {"origin_prompt": "plain", "prediction": "5"}},
    )
    with recording(signals_path(tmp_path, "m", "gsm8k")):
        record_signals(PromptList(chat), Signals(mean_logprob=-0.5, agreement=0.25, answer_tokens=3))
    with recording(signals_path(tmp_path, "m", "gsm8k")):  # a resumed task adds to what the first wrote
        record_signals("plain", Signals(mean_logprob=-2.0))
    record_signals("plain", Signals(mean_logprob=-9.0))  # no task running: nowhere to go, nothing kept
    [score] = collect_scores(tmp_path, ["m"], ["gsm8k"])
    assert score.items[0].signals == Signals(mean_logprob=-0.5, agreement=0.25, answer_tokens=3)
    assert score.items[1].signals == Signals(mean_logprob=-2.0)


def test_an_item_without_signals_has_none(tmp_path):
    _write(tmp_path, "m", "gsm8k", 50.0, [True, False])
    _predictions(tmp_path, "m", "gsm8k", {"0": {"origin_prompt": "a"}, "1": {"origin_prompt": "b"}})
    [score] = collect_scores(tmp_path, ["m"], ["gsm8k"])
    assert [i.signals for i in score.items] == [None, None]


def test_a_corrupt_signals_file_is_one_line_naming_it(tmp_path):
    _write(tmp_path, "m", "gsm8k", 0.0, [False])
    _predictions(tmp_path, "m", "gsm8k", {"0": {"origin_prompt": "a"}})
    path = signals_path(tmp_path, "m", "gsm8k")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"signals": {"x": {"mean_logprob": 3.0}}}))
    with pytest.raises(EvalkitError, match="mean_logprob is 3.0, expected a number <= 0"):
        collect_scores(tmp_path, ["m"], ["gsm8k"])
