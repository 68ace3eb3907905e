"""Run ids name folders, so every entry point refuses one that is not a single safe path component."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.records.bench import load_bench
from evalkit.records.published import import_table
from evalkit.records.results import load_record
from evalkit.records.run_ids import check_run_id, run_id_from

DATA = Path(__file__).resolve().parents[1] / "data" / "records"
SMALL = DATA / "small.json"
CARD = DATA / "ruyi_tables.md"

BAD = ["../x", "../../x", "/abs", "/tmp/abs", "a/b", "", ".", "..", ".hidden", "-flag", "a b", "x" * 129, "a\nb"]
GOOD = ["20261124-050744-ee3b", "published-ruyi-readme", "small", "a.b_c-1", "x" * 128]


@pytest.mark.parametrize("run_id", GOOD)
def test_valid_run_ids_pass(run_id):
    assert check_run_id(run_id, "run id", "fix it") == run_id


@pytest.mark.parametrize("run_id", BAD)
def test_the_rule_refuses_anything_but_one_plain_component(run_id):
    with pytest.raises(EvalkitError, match=r"run id .* is not a valid run id \(1 to 128 letters, digits"):
        check_run_id(run_id, "run id", "fix it")


def _one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


@pytest.mark.parametrize("run_id", BAD)
def test_a_record_with_a_bad_run_id_is_refused_and_report_writes_nothing(tmp_path, monkeypatch, run_id):
    """`report` without --out would write to reports/<run id>: `../../x` or `/abs` must never get there."""
    data = json.loads(SMALL.read_text(encoding="utf-8"))
    data["run_id"] = run_id
    record = tmp_path / "rec.json"
    record.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(EvalkitError, match=r"results record .*rec\.json: run_id .* is not a valid run id"):
        load_record(record)
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    line = _one_line_error(CliRunner().invoke(main, ["report", str(record)]))
    assert "is not a valid run id" in line and line.endswith("fix the record's run_id or rerun what wrote it")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/b", "rec.json"]
    (tmp_path / "R.md").write_text("<!-- evalkit:table general -->\n<!-- /evalkit:table -->\n")
    readme = CliRunner().invoke(main, ["readme", str(tmp_path / "R.md"), "--results", str(record)])
    assert "is not a valid run id" in _one_line_error(readme)


@pytest.mark.parametrize("run_id", BAD)
def test_a_bench_record_with_a_bad_run_id_is_refused(tmp_path, run_id):
    from evalkit.records.bench import BenchRecord, Environment, save_bench

    env = Environment("cpu", "cpu", None, None, "2", "5", "3.12", None)
    record = BenchRecord("ok", "2026-01-01T00:00:00+00:00", "evalkit bench", env, "bf16", {}, {}, None, "unknown")
    path = tmp_path / "bench.json"
    save_bench(record, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["run_id"] = run_id
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(EvalkitError, match=r"bench record .*bench\.json: run_id .* is not a valid run id"):
        load_bench(path)
    line = _one_line_error(CliRunner().invoke(main, ["report", str(SMALL), "--bench", str(path), "--out", "r"]))
    assert "is not a valid run id" in line


@pytest.mark.parametrize("run_id", BAD)
def test_import_table_refuses_a_bad_run_id(tmp_path, run_id):
    with pytest.raises(EvalkitError, match=r"--run-id .* is not a valid run id"):
        import_table(CARD, run_id=run_id)
    out = tmp_path / "pub.json"
    line = _one_line_error(CliRunner().invoke(main, ["import-table", str(CARD), "--out", str(out), "--run-id", run_id]))
    assert "--run-id" in line and "is not a valid run id" in line
    assert not out.exists()


def test_import_table_makes_a_valid_default_run_id_from_any_file_name(tmp_path):
    card = tmp_path / "the model card (v2)!.md"
    card.write_bytes(CARD.read_bytes())
    assert import_table(card).record.run_id == "published-the-model-card-v2-"
    assert run_id_from("../..") == "run" and run_id_from(".a/b") == "a-b"


@pytest.mark.parametrize("run_id", BAD)
def test_resume_refuses_a_bad_run_id_before_reading_anything(tmp_path, run_id):
    import evalkit

    (tmp_path / "out" / "results").mkdir(parents=True)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "run_config.json").write_text("{}")  # what '../x' would reach
    with pytest.raises(EvalkitError, match=r"--resume .* is not a valid run id"):
        evalkit.run(resume=run_id, out=str(tmp_path / "out"), echo=lambda line: None)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        line = _one_line_error(CliRunner().invoke(main, ["run", "--out", "out", "--resume", run_id]))
    finally:
        os.chdir(cwd)
    assert "--resume" in line and "is not a valid run id" in line
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "out",
        "out/results",
        "x",
        "x/run_config.json",
    ]


def test_report_default_folder_is_directly_inside_reports(tmp_path, monkeypatch):
    from evalkit.records.results import save_record

    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other.json"
    save_record(replace(load_record(SMALL), run_id="other"), other)
    res = CliRunner().invoke(main, ["report", str(SMALL), str(other)])
    assert res.exit_code == 0, res.output
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["small+other"]
