"""A results record loads only when every field holds what it must and its numbers agree with each other.

Each hostile value is written into a copy of tests/data/records/small.json and given to `regress` at the
command line, which must answer with one line naming the field and exit 2, never a traceback and never
a silent acceptance.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.records.checks import RecordError
from evalkit.records.results import Item, ResultsRecord, Score, load_record

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "data" / "records" / "small.json"
PUBLISHED = sorted((ROOT / "docs" / "published").glob("*.json"))
NAN, INF = float("nan"), float("inf")


def _small() -> dict:
    return json.loads(SMALL.read_text(encoding="utf-8"))


def _set(path: str, value: object):
    """An edit that sets the field at a dotted path ("scores.3.n") to `value`; `...` deletes it."""

    def edit(data: dict) -> None:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key = int(last) if isinstance(node, list) else last
        if value is ...:
            del node[key]
        else:
            node[key] = value

    return edit


def _gate(tmp_path: Path, data: dict | str | bytes, name: str = "bad.json"):
    """`regress` with the damaged record as reference: (exit code, stderr lines)."""
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    res = CliRunner().invoke(main, ["regress", "--reference", str(path), "--candidate", str(SMALL)])
    return res.exit_code, res.stderr.strip().splitlines(), path


HOSTILE = [
    # the record itself
    ("run_id", None, "run_id is null, expected text"),
    ("run_id", 7, "run_id is 7, expected text"),
    ("run_id", "", "run_id '' is not a valid run id"),
    ("kind", "draft", "kind is 'draft', expected 'measured' or 'published'"),
    ("schema_version", True, "schema_version is True, expected a whole number"),
    ("schema_version", 1.0, "schema_version is 1.0, expected a whole number"),
    ("schema_version", 3, "schema_version 3 is not supported"),
    ("models", {}, "models is an object, expected a list"),
    ("scores", "none", "scores is 'none', expected a list"),
    ("extra", 1, "record has 'extra', which this evalkit does not know"),
    # a model
    ("models.1.abbr", 3, r"models\[1\].abbr is 3, expected non-empty text"),
    ("models.1.abbr", "", r"models\[1\].abbr is '', expected non-empty text"),
    ("models.1.name", None, r"models\[1\].name is null"),
    ("models.1.role", "admin", r"models\[1\].role is 'admin', expected 'ours' or 'baseline'"),
    ("models.1.family", 3, r"models\[1\].family is 3, expected non-empty text or null"),
    ("models.1.branch", True, r"models\[1\].branch is True"),
    ("models.1.exit_layer", True, r"models\[1\].exit_layer is True, expected a whole number or null"),
    ("models.1.exit_layer", -1, r"models\[1\].exit_layer is -1, expected a whole number >= 0"),
    ("models.1.exit_layer", 1.5, r"models\[1\].exit_layer is 1.5"),
    ("models.1.num_params", INF, r"models\[1\].num_params is Infinity, expected a whole number or null"),
    ("models.1.num_params", 0, r"models\[1\].num_params is 0, expected a whole number >= 1"),
    ("models.1.num_params", "7B", r"models\[1\].num_params is '7B'"),
    ("models.1.path", [], r"models\[1\].path is a list, expected text or null"),
    ("models.1.size", 7, r"models\[1\] has 'size', which this evalkit does not know"),
    ("models.1.abbr", ..., r"models\[1\] lacks 'abbr'"),
    # a score
    ("scores.3.model", 3, r"scores\[3\].model is 3, expected non-empty text"),
    ("scores.3.model", "ghost", r"score ghost/gsm8k is for model 'ghost', which the record's models do not list"),
    ("scores.3.dataset", "gsm9k", r"unknown dataset 'gsm9k'; valid datasets are: mmlu, mmlu_pro"),
    ("scores.3.metric", "pass@1", r"score qwen2.5-7b-instruct/gsm8k has metric 'pass@1', but GSM8K is scored by"),
    ("scores.1.value", True, r"scores\[1\] \(qwen2.5-7b-instruct/arc_c\).value is True, expected a number"),
    ("scores.1.value", "86.44", r"scores\[1\] \(qwen2.5-7b-instruct/arc_c\).value is '86.44'"),
    ("scores.1.value", NAN, r"scores\[1\] \(qwen2.5-7b-instruct/arc_c\).value is NaN, expected a number"),
    ("scores.1.value", INF, r"scores\[1\] \(qwen2.5-7b-instruct/arc_c\).value is Infinity"),
    ("scores.1.value", 1e999, r"scores\[1\] \(qwen2.5-7b-instruct/arc_c\).value is Infinity"),
    ("scores.1.value", 100.5, r"qwen2.5-7b-instruct/arc_c value is 100.5, expected a number from 0 to 100"),
    ("scores.1.value", -1, r"qwen2.5-7b-instruct/arc_c value is -1.0, expected a number from 0 to 100"),
    ("scores.1.n", INF, r"scores\[1\] \(qwen2.5-7b-instruct/arc_c\).n is Infinity, expected a whole number"),
    ("scores.1.n", -3, r"qwen2.5-7b-instruct/arc_c n is -3, expected a whole number >= 0"),
    ("scores.1.n", True, r"\.n is True, expected a whole number"),
    ("scores.1.n", 1172.0, r"\.n is 1172.0, expected a whole number"),
    ("scores.1.n", None, r"\.n is null, expected a whole number"),
    ("scores.1.n", 10**400, r"\.n is 1000000000.*\.\.\., expected a whole number of at most 2\*\*53"),
    ("models.1.num_params", 2**53 + 1, r"models\[1\].num_params is 9007199254740993, expected a whole number of at"),
    ("scores.3.items", {}, r"scores\[3\] \(qwen2.5-7b-instruct/gsm8k\).items is an object, expected a list"),
    ("scores.3.items", [], r"qwen2.5-7b-instruct/gsm8k has an empty list of items; a score without per-item"),
    ("scores.3.n", 9, r"qwen2.5-7b-instruct/gsm8k has n 9 but 8 items"),
    ("scores.3.weight", 1, r"scores\[3\] \(qwen2.5-7b-instruct/gsm8k\) has 'weight'"),
    # an item
    ("scores.3.items.0.id", 0, r"\(qwen2.5-7b-instruct/gsm8k\).items\[0\].id is 0, expected non-empty text"),
    ("scores.3.items.0.id", "", r"items\[0\].id is '', expected non-empty text"),
    ("scores.3.items.1.id", "gsm8k/0", r"item id 'gsm8k/0' appears twice in score qwen2.5-7b-instruct/gsm8k"),
    ("scores.3.items.0.score", True, r"item 'gsm8k/0' of score qwen2.5-7b-instruct/gsm8k has score True"),
    ("scores.3.items.0.score", NAN, r"item 'gsm8k/0' of score qwen2.5-7b-instruct/gsm8k has score NaN"),
    ("scores.3.items.0.score", "1", r"has score '1'; item scores are numbers from 0 to 1"),
    ("scores.3.items.0.score", 2, r"has score 2.0; item scores are numbers from 0 to 1"),
    ("scores.3.items.0.group", 3, r"items\[0\].group is 3, expected non-empty text or null"),
    ("scores.3.items.0.note", "x", r"items\[0\] has 'note'"),
    # the provenance
    ("provenance", [], "provenance is a list, expected an object"),
    ("provenance.git_revision", 3, "provenance.git_revision is 3, expected text or null"),
    ("provenance.packages", [], "provenance.packages is a list, expected an object"),
    ("provenance.packages.torch", 2.6, r"provenance.packages\['torch'\] is 2.6, expected text"),
    ("provenance.duration_s", NAN, "provenance.duration_s is NaN, expected a number or null"),
    ("provenance.duration_s", -1, "provenance.duration_s is -1, expected a number >= 0"),
    ("provenance.duration_s", True, "provenance.duration_s is True"),
    ("provenance.host", "x", "provenance has 'host', which this evalkit does not know"),
    ("provenance.configs", {"run": {"limit": INF}}, r"provenance.configs.run\['limit'\] is Infinity"),
    (
        "provenance.configs",
        {"tasks": {"m/d": {"status": "ran", "seconds": INF}}},
        r"provenance.configs.tasks\['m/d'\].seconds is Infinity, expected a number or null",
    ),
    (
        "provenance.configs",
        {"sessions": [{"command": "c", "started_at": "t", "finished_at": None, "duration_s": -2}]},
        r"provenance.configs.sessions\[0\].duration_s is -2, expected a number >= 0",
    ),
]


@pytest.mark.parametrize(("field", "value", "message"), HOSTILE, ids=[f"{f}={v!r}" for f, v, _ in HOSTILE])
def test_a_hostile_field_is_one_line_naming_it_and_exit_2(tmp_path, field, value, message):
    data = _small()
    _set(field, value)(data)
    code, lines, path = _gate(tmp_path, data)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: results record {path}: "), lines[0]
    assert re.search(message, lines[0]), lines[0]


def test_a_value_that_its_items_contradict_is_refused_naming_both_numbers(tmp_path):
    # The candidate's values collapsed to 0 while its items stayed: regress once passed it, and the
    # report then showed 0.00.
    data = _small()
    for s in data["scores"]:
        s["value"] = 0.0
    code, lines, path = _gate(tmp_path, data)
    assert code == 2 and len(lines) == 1
    assert lines[0] == (
        f"error: results record {path}: score qwen2.5-7b-instruct/mmlu states value 0 but its 8 items give 75 "
        "(the mean of its 2 group means); the value and the per-item outcomes disagree; fix the record or "
        "rerun what wrote it"
    )


def test_grouped_values_are_the_mean_of_group_means_and_rounding_is_not_allowed(tmp_path):
    data = _small()
    mmlu = data["scores"][0]  # groups algebra (3 of 4 right) and law (3 of 4 right): 75 either way
    mmlu["items"] = mmlu["items"][:6]  # algebra 3/4, law 2/2: group means 75 and 100
    mmlu["n"] = 6
    mmlu["value"] = 87.5
    path = tmp_path / "grouped.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert load_record(path).score("qwen2.5-7b-instruct", "mmlu").value == 87.5
    mmlu["value"] = 5 / 6 * 100  # the plain item mean is not the estimator of a grouped dataset
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(EvalkitError, match=r"states value 83.33333333 but its 6 items give 87.5 \(the mean of its 2"):
        load_record(path)
    gsm8k = data["scores"][3]
    mmlu["value"], gsm8k["value"] = 87.5, gsm8k["value"] + 0.004  # rounded for display: another number
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(EvalkitError, match=r"qwen2.5-7b-instruct/gsm8k states value 50.004 but its 8 items give 50 "):
        load_record(path)
    gsm8k["value"] = 50.0 + 1e-9  # float rounding is
    path.write_text(json.dumps(data), encoding="utf-8")
    load_record(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["scores"].append(dict(d["scores"][1], value=10.0)),
            "score qwen2.5-7b-instruct/arc_c appears twice",
        ),
        (lambda d: d["models"].append(dict(d["models"][0])), "model 'qwen2.5-7b-instruct' is listed twice"),
    ],
)
def test_a_score_or_model_listed_twice_is_refused(tmp_path, edit, message):
    # regress read the first copy while report and readme showed the last one.
    data = _small()
    edit(data)
    code, lines, _ = _gate(tmp_path, data)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "is nested too deeply to read (more levels than the JSON parser allows)"),
        (b'{"schema": "evalkit.results", "run_id": "\xff\xfe"}', "is not UTF-8 text (byte 41 is b'\\xff')"),
        ('{"schema": "evalkit.results",', "is not valid JSON (Expecting property name"),
        ('{"n": ' + "1" * 5000 + "}", "is not valid JSON (Exceeds the limit (4300 digits) for integer string"),
        (
            SMALL.read_text(encoding="utf-8").replace('"value": 86.44', '"value": 86.44, "value": 0', 1),
            "has the key 'value' twice in one object (readers disagree on which one counts)",
        ),
        ("[1, 2]", "is not an evalkit results record (schema is None"),
        ('{"schema": "evalkit.results"}', "is not an evalkit results record (it lacks 'schema_version', 'run_id'"),
    ],
)
def test_a_file_that_is_no_record_is_one_line(tmp_path, content, message):
    code, lines, _ = _gate(tmp_path, content)
    assert code == 2 and len(lines) == 1, lines
    assert message in lines[0], lines[0]


def test_a_directory_is_not_a_record(tmp_path):
    (tmp_path / "dir.json").mkdir()
    res = CliRunner().invoke(main, ["regress", "--reference", str(tmp_path / "dir.json"), "--candidate", str(SMALL)])
    assert res.exit_code == 2 and "is a directory" in res.stderr


def test_published_records_load_without_items():
    for path in PUBLISHED:
        record = load_record(path)
        assert record.kind == "published" and record.scores
        assert all(s.items is None for s in record.scores)


def test_records_built_in_code_are_checked_too():
    record = load_record(SMALL)
    gsm8k = record.score("ruyi-7b-e3b", "gsm8k")
    with pytest.raises(RecordError, match="ruyi-7b-e3b/gsm8k states value 0 but its 8 items give 12.5"):
        replace(record, scores=tuple(replace(s, value=0.0) if s is gsm8k else s for s in record.scores))
    with pytest.raises(RecordError, match="appears twice"):
        replace(record, scores=(*record.scores, gsm8k))
    model = (replace(record.models[0], abbr="m"),)
    with pytest.raises(RecordError, match="m/arc_c n is -1"):
        ResultsRecord("r", "measured", model, (Score("m", "arc_c", "accuracy", 1.0, -1),))
    with pytest.raises(RecordError, match="item 'q' of score m/arc_c has score Infinity"):
        ResultsRecord("r", "measured", model, (Score("m", "arc_c", "accuracy", 100.0, 1, (Item("q", INF),)),))
    ResultsRecord("r", "measured", model, (Score("m", "arc_c", "accuracy", 100.0, 1, (Item("q", 1.0),)),))


def test_a_record_built_in_code_from_bad_input_is_one_line_too(tmp_path):
    table = ROOT / "tests" / "data" / "records" / "ruyi_tables.md"
    res = CliRunner().invoke(
        main, ["import-table", str(table), "--out", str(tmp_path / "t.json"), "--n", f"MMLU={2**53 + 1}"]
    )
    lines = res.stderr.strip().splitlines()
    assert (
        res.exit_code == 2
        and lines[-1].startswith("error: score ")
        and "expected a whole number of at most 2**53" in lines[-1]
    )
    assert not (tmp_path / "t.json").exists()
