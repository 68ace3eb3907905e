"""Schema version 2: items may carry signals; version 1 records still load, and write back as they were."""

from __future__ import annotations

import json

import pytest

from evalkit import EvalkitError
from evalkit.records.results import Item, ModelInfo, ResultsRecord, Score, Signals, load_record, save_record


def _record(signals, version=2):
    items = (Item("0", 1.0, signals=signals), Item("1", 0.0))
    return ResultsRecord(
        run_id="r",
        kind="measured",
        models=(ModelInfo("m", "M"),),
        scores=(Score("m", "gsm8k", "accuracy", 50.0, 2, items),),
        schema_version=version,
    )


def test_signals_round_trip_and_only_measured_ones_are_written(tmp_path):
    sig = Signals(mean_logprob=-0.25, min_logprob=-1.5, first_entropy=0.5, agreement=0.75, answer_tokens=4)
    path = save_record(_record(sig), tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == 2
    assert data["scores"][0]["items"][0]["signals"] == {
        "mean_logprob": -0.25,
        "min_logprob": -1.5,
        "first_entropy": 0.5,
        "agreement": 0.75,
        "answer_tokens": 4,
    }
    assert "signals" not in data["scores"][0]["items"][1]
    back = load_record(path)
    assert back.scores[0].items[0].signals == sig and back.scores[0].items[1].signals is None
    assert back.has_signals


def test_a_version_1_record_loads_without_signals_and_stays_version_1(tmp_path):
    path = save_record(_record(None, version=1), tmp_path / "r.json")
    back = load_record(path)
    assert back.schema_version == 1 and not back.has_signals
    assert save_record(back, tmp_path / "again.json").read_text() == path.read_text()


def test_a_version_1_record_with_signals_is_refused(tmp_path):
    path = save_record(_record(Signals(margin=0.5)), tmp_path / "r.json")
    data = json.loads(path.read_text())
    data["schema_version"] = 1
    path.write_text(json.dumps(data))
    with pytest.raises(EvalkitError, match=r"has 'signals', which this evalkit does not know"):
        load_record(path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mean_logprob", 0.5, "mean_logprob is 0.5, expected a number <= 0"),
        ("first_entropy", -1.0, "first_entropy is -1.0, expected a number >= 0"),
        ("margin", 1.5, "margin is 1.5, expected a number from 0 to 1"),
        ("agreement", "high", "agreement is 'high', expected a number"),
        ("answer_tokens", 2.5, "answer_tokens is 2.5, expected a whole number"),
        ("confidence", 0.5, "has 'confidence', which this evalkit does not know"),
    ],
)
def test_a_bad_signal_names_the_item_and_field(tmp_path, field, value, message):
    path = save_record(_record(Signals(margin=0.5)), tmp_path / "r.json")
    data = json.loads(path.read_text())
    data["scores"][0]["items"][0]["signals"] = {field: value}
    path.write_text(json.dumps(data))
    with pytest.raises(EvalkitError, match=message):
        load_record(path)
