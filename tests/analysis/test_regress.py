"""The CI gate: planted drops fail, identical records and rerun noise pass."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from _synth import synth_record
from click.testing import CliRunner

from evalkit.analysis.regress import regress
from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.records.results import Item, Score, load_record, save_record

HERE = Path(__file__).resolve().parents[1] / "data"
SMALL = HERE / "records" / "small.json"


@pytest.fixture(scope="module")
def reference():
    return synth_record(n_items=300, run_id="ref")


def test_identical_records_pass(reference):
    result = regress(reference, replace(reference, run_id="again"))
    assert result.passed and not result.drops and not result.new_inversions
    assert {r.verdict for r in result.rows} == {"ok"}
    assert len(result.rows) == 8 * 13
    assert result.summary().startswith("PASS")


def test_rerun_noise_passes(reference):
    noisy = synth_record(n_items=300, run_id="noisy", flip=0.05)
    result = regress(reference, noisy)
    assert any(r.comparison.delta != 0 for r in result.rows)  # the noise is real
    assert result.passed, result.table()


def _drop(record, abbr: str, dataset: str, k: int):
    """Flip the first k correct items of one score to wrong."""
    scores = []
    for s in record.scores:
        if s.model == abbr and s.dataset == dataset:
            flipped, items = 0, []
            for i in s.items:
                if i.score == 1.0 and flipped < k:
                    items.append(Item(i.id, 0.0, i.group))
                    flipped += 1
                else:
                    items.append(i)
            s = Score(s.model, s.dataset, s.metric, 100 * sum(i.score for i in items) / len(items), s.n, tuple(items))
        scores.append(s)
    return replace(record, scores=tuple(scores))


def test_planted_drop_fails(reference):
    result = regress(reference, _drop(reference, "ruyi-7b-e3b", "gsm8k", 30))
    assert not result.passed
    [row] = result.drops
    assert (row.model, row.dataset) == ("E3B", "gsm8k")
    assert row.comparison.delta == pytest.approx(-10.0) and row.comparison.method == "paired: exact McNemar"
    line = next(x for x in result.table().splitlines() if x.startswith("E3B ") and "GSM8K" in x)
    assert line.split()[-1] == "FAIL" and "-10.00" in line


def test_small_drop_within_tolerance_passes(reference):
    result = regress(reference, _drop(reference, "ruyi-7b-e3b", "gsm8k", 30), tolerance=12.0)
    assert result.passed


def test_new_significant_inversion_fails(reference):
    # E7B falls far below E6B on MATH: both a drop and a new inversion.
    result = regress(reference, _drop(reference, "ruyi-7b-e7b", "math", 60), tolerance=100.0)
    assert not result.drops
    assert [(i.dataset, i.from_, i.to) for i in result.new_inversions if i.dataset == "math"]
    assert not result.passed


def test_missing_scores_fail_unless_allowed(reference):
    fewer = replace(reference, scores=tuple(s for s in reference.scores if s.dataset != "gsm8k"))
    result = regress(reference, fewer)
    assert not result.passed and not result.drops and len(result.missing) == 8 and ("E3B", "gsm8k") in result.missing
    assert "missing from the candidate: " in result.table() and "1 of" not in result.summary()
    assert "8 reference scores missing from the candidate" in result.summary()
    assert regress(reference, fewer, allow_missing=True).passed
    # What only the candidate has is listed, never a failure.
    more = regress(fewer, reference)
    assert more.passed and not more.missing and "E3B gsm8k" in more.added


def test_a_gate_that_tested_nothing_fails(reference):
    unknown = replace(reference, scores=tuple(replace(s, items=None, n=0) for s in reference.scores))
    result = regress(unknown, replace(unknown, run_id="again"))
    assert {r.verdict for r in result.rows} == {"untested"} and result.tested == 0
    assert not result.passed and "no score could be tested" in result.summary()


def test_aggregate_only_comparison_is_binomial(reference, tmp_path):
    published = replace(reference, scores=tuple(replace(s, items=None) for s in reference.scores))
    result = regress(published, replace(published, run_id="again"))
    assert result.passed and all(r.comparison.method == "unpaired: two-proportion z" for r in result.rows)
    mixed = regress(published, reference)  # items on one side only: unpaired z on the two SEs
    assert mixed.passed and all(r.comparison.method == "unpaired: z" for r in mixed.rows)
    unknown_n = replace(published, scores=tuple(replace(s, n=0) for s in published.scores))
    rows = regress(unknown_n, reference).rows
    assert rows[0].comparison.method.startswith("unpaired: binomial vs fixed value")


def test_cli_exit_codes_junit_and_github(reference, tmp_path):
    save_record(reference, tmp_path / "ref.json")
    save_record(replace(reference, run_id="rerun"), tmp_path / "rerun.json")
    save_record(_drop(reference, "ruyi-7b-e3b", "gsm8k", 30), tmp_path / "cand.json")
    runner = CliRunner()
    ok = runner.invoke(
        main, ["regress", "--reference", str(tmp_path / "ref.json"), "--candidate", str(tmp_path / "rerun.json")]
    )
    assert ok.exit_code == 0 and "PASS" in ok.output
    bad = runner.invoke(
        main,
        [
            "regress",
            "--reference",
            str(tmp_path / "ref.json"),
            "--candidate",
            str(tmp_path / "cand.json"),
            "--junit",
            str(tmp_path / "j.xml"),
            "--github",
        ],
    )
    assert bad.exit_code == 1
    assert "::error title=evalkit regress%3A E3B GSM8K::E3B GSM8K dropped 10.00 points" in bad.output
    suite = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite.get("failures") == "1"
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [("evalkit.regress.E3B", "gsm8k")]


def test_bad_inputs_are_clear_errors(tmp_path):
    runner = CliRunner()
    corrupt = runner.invoke(
        main, ["regress", "--reference", str(HERE / "records" / "corrupt.json"), "--candidate", str(SMALL)]
    )
    assert corrupt.exit_code == 2 and "error:" in corrupt.output and "corrupt" in corrupt.output
    missing = runner.invoke(main, ["regress", "--reference", str(tmp_path / "none.json"), "--candidate", str(SMALL)])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    small = load_record(SMALL)
    other = replace(small, scores=tuple(replace(s, dataset="math") for s in small.scores if s.dataset == "gsm8k"))
    with pytest.raises(EvalkitError, match="share no"):
        regress(small, other)
    with pytest.raises(EvalkitError, match="--alpha"):
        regress(small, small, alpha=2.0)
    with pytest.raises(EvalkitError, match="--tolerance must be a number >= 0"):
        regress(small, small, tolerance=float("nan"))


def test_a_candidate_whose_values_its_items_contradict_is_refused(reference, tmp_path):
    # Values collapsed to 0 with the items unchanged: the gate decided on the items and passed it, and
    # the report then showed 0.00.
    save_record(reference, tmp_path / "ref.json")
    data = json.loads((tmp_path / "ref.json").read_text(encoding="utf-8"))
    data["run_id"] = "collapsed"
    for s in data["scores"]:
        s["value"] = 0.0
    (tmp_path / "cand.json").write_text(json.dumps(data), encoding="utf-8")
    res = CliRunner().invoke(
        main, ["regress", "--reference", str(tmp_path / "ref.json"), "--candidate", str(tmp_path / "cand.json")]
    )
    first = reference.scores[0]
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output
    assert f"score {first.model}/{first.dataset} states value 0 but its 300 items give {first.value:.10g}" in res.stderr


@pytest.mark.parametrize("how", ["same path", "link", "copy"])
def test_a_run_compared_with_itself_is_refused(reference, tmp_path, how):
    ref = save_record(reference, tmp_path / "ref.json")
    cand = ref
    if how == "link":
        cand = tmp_path / "link.json"
        cand.symlink_to(ref)
    elif how == "copy":
        cand = save_record(load_record(ref), tmp_path / "copy.json")
    res = CliRunner().invoke(
        main, ["regress", "--reference", str(ref), "--candidate", str(cand), "--junit", str(tmp_path / "j.xml")]
    )
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.output
    assert "the reference and the candidate are one run (" in res.stderr
    assert "comparing a run with itself tests nothing" in res.stderr and "point --candidate at" in res.stderr
    assert ("the same file" if how != "copy" else "the same content under run_id 'ref'") in res.stderr
    assert not (tmp_path / "j.xml").exists()
    with pytest.raises(EvalkitError, match="are one run"):
        regress(reference, reference)


def test_one_run_id_with_other_content_or_a_rerun_is_compared(reference):
    assert regress(reference, replace(reference, run_id="again")).passed
    assert not regress(reference, _drop(reference, "ruyi-7b-e3b", "gsm8k", 30)).passed  # same run_id, new content
