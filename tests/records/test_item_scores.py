"""Item scores in a results record: numbers from 0 to 1, one per item id, read back as floats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.records.results import load_record

HERE = Path(__file__).resolve().parents[1] / "data"
SMALL = HERE / "records" / "small.json"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda items: items[0].update(score="abc"), "has score 'abc'; item scores are numbers from 0 to 1"),
        (lambda items: items[0].update(score=5.0), "has score 5.0; item scores are numbers from 0 to 1"),
        (lambda items: items[0].update(score=True), "has score True"),
        (lambda items: items[1].update(id=items[0]["id"]), "appears twice in"),
    ],
)
def test_records_with_bad_item_scores_are_refused_when_loaded(tmp_path, change, message):
    data = json.loads(SMALL.read_text(encoding="utf-8"))
    score = next(s for s in data["scores"] if s.get("items"))
    change(score["items"])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(EvalkitError, match=f"results record {path}: item .*{score['model']}/{score['dataset']}"):
        load_record(path)
    res = CliRunner().invoke(main, ["report", str(path), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 2 and res.stderr.startswith("error: results record") and message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_whole_number_item_scores_load_as_floats(tmp_path):
    data = json.loads(SMALL.read_text(encoding="utf-8"))
    score = next(s for s in data["scores"] if s.get("items"))
    for item in score["items"]:
        item["score"] = int(item["score"] >= 0.5)
    path = tmp_path / "ints.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    loaded = load_record(path).score(score["model"], score["dataset"])
    assert all(isinstance(i.score, float) for i in loaded.items)
