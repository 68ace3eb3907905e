"""import-table on model-card markdown with its quirks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit._errors import EvalkitError
from evalkit.cli import main
from evalkit.import_table import import_table, model_info, parse_table_numbers
from evalkit.results import load_record

CARD = Path(__file__).parent / "records" / "ruyi_tables.md"


def test_imports_every_score_table_and_skips_others():
    result = import_table(CARD, n={"ARC-c": 1172})
    r = result.record
    assert r.kind == "published" and r.run_id == "published-ruyi_tables"
    assert result.tables == (1, 2, 3)  # the branch-layout table is not a score table
    names = [m.name for m in r.models]
    assert names == ["Qwen2.5-7B-Instruct", "Llama3.1-8B-Instruct", "AI-Flow-Ruyi-7B-E7B-0725",
                     "AI-Flow-Ruyi-7B-E3B-0725", "AI-Flow-Ruyi-7B-E5B-0725"]
    assert {s.dataset for s in r.scores} == {"mmlu", "arc_c", "winogrande", "gpqa", "math", "gsm8k"}
    assert all(s.items is None for s in r.scores)
    assert r.score("qwen2.5-7b-instruct", "winogrande").value == 68.30
    assert r.score("qwen2.5-7b-instruct", "arc_c").n == 1172
    assert r.score("qwen2.5-7b-instruct", "mmlu").n == 0  # unknown
    assert r.score("ai-flow-ruyi-7b-e7b-0725", "gsm8k").metric == "accuracy"


def test_branch_names_markup_and_ours():
    m = model_info("AI-Flow-Ruyi-7B-E3B-0725<b>(ours)</b>")
    assert (m.name, m.role, m.family, m.branch, m.num_params) == (
        "AI-Flow-Ruyi-7B-E3B-0725", "ours", "ai-flow-ruyi-7b", "E3B", None)
    assert model_info("**Llama3.1-8B-Instruct**").name == "Llama3.1-8B-Instruct"
    assert model_info("Qwen3-8B(think)").abbr == "qwen3-8b-think"
    other = model_info("MyModel **(ours)**")
    assert (other.role, other.branch) == ("ours", None)


def test_average_mismatch_is_reported_and_kept():
    result = import_table(CARD)
    assert len(result.warnings) == 1
    assert "AI-Flow-Ruyi-7B-E5B-0725: published average 68.91, recomputed 68.19" in result.warnings[0]
    info = result.record.provenance.configs["import_table"]
    assert info["average_mismatches"] == 1
    bad = [a for a in info["averages"] if a["mismatch"]]
    assert bad == [{"table": 3, "line": 26, "model": "ai-flow-ruyi-7b-e5b-0725", "published": 68.91,
                    "recomputed": 68.1933, "mismatch": True}]


def test_table_selection():
    assert parse_table_numbers("1-3,5") == [1, 2, 3, 5]
    r = import_table(CARD, tables="2").record
    assert {s.dataset for s in r.scores} == {"gpqa", "math", "gsm8k"}
    with pytest.raises(EvalkitError, match="no score table 9; this file has 3"):
        import_table(CARD, tables=[9])


def test_conflicting_tables_ask_for_one_release(tmp_path):
    text = CARD.read_text(encoding="utf-8") + "\n|Model|MMLU|\n|-|-|\n|Qwen2.5-7B-Instruct|71.00|\n"
    (tmp_path / "card.md").write_text(text, encoding="utf-8")
    with pytest.raises(EvalkitError, match="MMLU is 70.88 at line 12 but 71.00 at line 31; import one release"):
        import_table(tmp_path / "card.md")


def test_two_releases_of_one_branch_are_refused(tmp_path):
    text = "|Model|MMLU|\n|-|-|\n|AI-Flow-Ruyi-7B-E7B-0725|64.78|\n|AI-Flow-Ruyi-7B-E7B|87.19|\n"
    (tmp_path / "card.md").write_text(text, encoding="utf-8")
    with pytest.raises(EvalkitError, match="both branch E7B of ai-flow-ruyi-7b"):
        import_table(tmp_path / "card.md")


def test_no_score_table_is_a_clear_error(tmp_path):
    (tmp_path / "x.md").write_text("|a|b|\n|-|-|\n|1|2|\n", encoding="utf-8")
    with pytest.raises(EvalkitError, match="holds no score table"):
        import_table(tmp_path / "x.md")


def test_cli_writes_a_loadable_record_and_prints_warnings(tmp_path):
    out = tmp_path / "pub.json"
    res = CliRunner().invoke(main, ["import-table", str(CARD), "--out", str(out), "--n", "arc-c=1172",
                                    "--source", "AI-Flow-Ruyi README, 2025-07-25"])
    assert res.exit_code == 0, res.output
    assert "warning: ruyi_tables.md line 26" in res.output
    assert "wrote" in res.output and "5 models, 21 scores from tables 1, 2, 3" in res.output
    r = load_record(out)
    assert r.provenance.source == "AI-Flow-Ruyi README, 2025-07-25"
    assert json.loads(out.read_text())["kind"] == "published"
    bad = CliRunner().invoke(main, ["import-table", str(CARD), "--out", str(out), "--n", "MMLU"])
    assert bad.exit_code == 2 and "is not DATASET=N" in bad.output
