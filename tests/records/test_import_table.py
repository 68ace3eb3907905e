"""import-table on model-card markdown with its quirks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.records.provenance import AverageCheck
from evalkit.records.published import import_table, model_info, parse_table_numbers
from evalkit.records.results import load_record

CARD = Path(__file__).resolve().parents[1] / "data" / "records" / "ruyi_tables.md"


def test_imports_every_score_table_and_skips_others():
    result = import_table(CARD, n={"ARC-c": 1172})
    r = result.record
    assert r.kind == "published" and r.run_id == "published-ruyi_tables"
    assert result.tables == (1, 2, 3)  # the branch-layout table is not a score table
    names = [m.name for m in r.models]
    assert names == [
        "Qwen2.5-7B-Instruct",
        "Llama3.1-8B-Instruct",
        "AI-Flow-Ruyi-7B-E7B-0725",
        "AI-Flow-Ruyi-7B-E3B-0725",
        "AI-Flow-Ruyi-7B-E5B-0725",
    ]
    assert {s.dataset for s in r.scores} == {"mmlu", "arc_c", "winogrande", "gpqa", "math", "gsm8k"}
    assert all(s.items is None for s in r.scores)
    assert r.score("qwen2.5-7b-instruct", "winogrande").value == 68.30
    assert r.score("qwen2.5-7b-instruct", "arc_c").n == 1172
    assert r.score("qwen2.5-7b-instruct", "mmlu").n == 0  # unknown
    assert r.score("ai-flow-ruyi-7b-e7b-0725", "gsm8k").metric == "accuracy"


def test_branch_names_markup_and_ours():
    m = model_info("AI-Flow-Ruyi-7B-E3B-0725<b>(ours)</b>")
    assert (m.name, m.role, m.family, m.branch, m.num_params) == (
        "AI-Flow-Ruyi-7B-E3B-0725",
        "ours",
        "ai-flow-ruyi-7b",
        "E3B",
        None,
    )
    assert model_info("**Llama3.1-8B-Instruct**").name == "Llama3.1-8B-Instruct"
    assert model_info("Qwen3-8B(think)").abbr == "qwen3-8b-think"
    other = model_info("MyModel **(ours)**")
    assert (other.role, other.branch) == ("ours", None)


def test_average_mismatch_is_reported_and_kept():
    result = import_table(CARD)
    assert len(result.warnings) == 1
    assert "AI-Flow-Ruyi-7B-E5B-0725: published average 68.91, recomputed 68.19" in result.warnings[0]
    info = result.record.provenance.configs.import_table
    assert info.average_mismatches == 1
    bad = [a for a in info.averages if a.mismatch]
    assert bad == [
        AverageCheck(
            table=3, line=26, model="ai-flow-ruyi-7b-e5b-0725", published=68.91, recomputed=68.1933, mismatch=True
        )
    ]


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
    text = "|Model|MMLU|\n|-|-|\n|AI-Flow-Ruyi-7B-E7B-0725 (ours)|64.78|\n|AI-Flow-Ruyi-7B-E7B (ours)|87.19|\n"
    (tmp_path / "card.md").write_text(text, encoding="utf-8")
    with pytest.raises(EvalkitError, match="both branch E7B of ai-flow-ruyi-7b"):
        import_table(tmp_path / "card.md")


def test_no_score_table_is_a_clear_error(tmp_path):
    (tmp_path / "x.md").write_text("|a|b|\n|-|-|\n|1|2|\n", encoding="utf-8")
    with pytest.raises(EvalkitError, match="holds no score table"):
        import_table(tmp_path / "x.md")


def test_cli_writes_a_loadable_record_and_prints_warnings(tmp_path):
    out = tmp_path / "pub.json"
    res = CliRunner().invoke(
        main,
        [
            "import-table",
            str(CARD),
            "--out",
            str(out),
            "--n",
            "arc-c=1172",
            "--source",
            "AI-Flow-Ruyi README, 2025-07-25",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "warning: ruyi_tables.md line 26" in res.output
    assert "wrote" in res.output and "5 models, 21 scores from tables 1, 2, 3" in res.output
    r = load_record(out)
    assert r.provenance.source == "AI-Flow-Ruyi README, 2025-07-25"
    assert json.loads(out.read_text())["kind"] == "published"
    bad = CliRunner().invoke(main, ["import-table", str(CARD), "--out", str(out), "--n", "MMLU"])
    assert bad.exit_code == 2 and "is not DATASET=N" in bad.output


def _card(tmp_path, text: str) -> Path:
    path = tmp_path / "card.md"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("variant", ["HumanEval+", "MBPP+", "MATH-500", "HumanEvalPlus"])
def test_plus_and_subset_variants_are_other_benchmarks(variant):
    from evalkit.catalog.datasets import normalize_dataset

    with pytest.raises(EvalkitError, match=re.escape(f"unknown dataset {variant!r}")):
        normalize_dataset(variant)


def test_a_table_with_humaneval_and_humaneval_plus_imports_humaneval_only(tmp_path):
    card = _card(
        tmp_path,
        "|Model|HumanEval|HumanEval+|MBPP|MBPP+|Avg|\n|-|-|-|-|-|-|\n|Qwen2.5-7B-Instruct|84.1|78.0|79.2|67.0|77.08|\n",
    )
    result = import_table(card)
    r = result.record
    assert {(s.dataset, s.value) for s in r.scores} == {("humaneval", 84.1), ("mbpp", 79.2)}
    assert len(result.warnings) == 1
    assert "ignored 'HumanEval+', 'MBPP+', not datasets evalkit knows" in result.warnings[0]
    assert "its averages are not checked" in result.warnings[0]


def test_two_columns_for_one_dataset_are_a_clear_error(tmp_path):
    card = _card(tmp_path, "|Model|ARC|ARC-c|\n|-|-|-|\n|Qwen2.5-7B-Instruct|80.0|86.4|\n")
    with pytest.raises(EvalkitError, match="columns 'ARC' and 'ARC-c' both read as ARC-c; rename one"):
        import_table(card)


def test_only_rows_marked_ours_and_their_family_are_our_branches(tmp_path):
    card = _card(
        tmp_path,
        "|Model|MMLU|\n|-|-|\n|Gemma-3n-E2B-it|60.1|\n|Gemma-3n-E4B-it|64.9|\n"
        "|AI-Flow-Ruyi-7B-E7B-0725<b>(ours)</b>|64.78|\n\n"
        "|Model|GSM8K|\n|-|-|\n|AI-Flow-Ruyi-7B-E3B-0725|30.0|\n",
    )
    result = import_table(card)
    roles = {m.name: (m.role, m.family, m.branch) for m in result.record.models}
    assert roles == {
        "Gemma-3n-E2B-it": ("baseline", None, None),
        "Gemma-3n-E4B-it": ("baseline", None, None),
        "AI-Flow-Ruyi-7B-E7B-0725": ("ours", "ai-flow-ruyi-7b", "E7B"),
        "AI-Flow-Ruyi-7B-E3B-0725": ("ours", "ai-flow-ruyi-7b", "E3B"),  # family marked in another row
    }
    assert result.warnings == ()
    assert model_info("Gemma-3n-E4B-it").role == "baseline"


def test_a_file_with_no_row_marked_ours_says_so(tmp_path):
    result = import_table(_card(tmp_path, "|Model|MMLU|\n|-|-|\n|AI-Flow-Ruyi-7B-E3B|30.0|\n"))
    assert result.record.models[0].role == "baseline"
    assert "no row is marked (ours)" in result.warnings[0]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("3-1", "range 3-1 runs backwards; write 1-3"),
        ("x", "is not a table number"),
        (",", "is not a table number"),
    ],
)
def test_table_selections_that_select_nothing_are_errors(spec, message):
    with pytest.raises(EvalkitError, match=message):
        parse_table_numbers(spec)
    res = CliRunner().invoke(main, ["import-table", str(CARD), "--out", "/dev/null", "--table", spec])
    assert res.exit_code == 2 and res.output.startswith("error: ") and message in res.output
    assert len(res.output.strip().splitlines()) == 1
    with pytest.raises(EvalkitError, match="no score table selected"):
        import_table(CARD, tables=[])
    assert parse_table_numbers("2,1-2") == [2, 1]


def test_unknown_columns_are_ignored_with_a_warning_and_numbering_is_stable(tmp_path):
    card = _card(
        tmp_path,
        "|Model|MMLU|Avg|\n|-|-|-|\n|Qwen2.5-7B-Instruct|70.88|70.88|\n\n"
        "|Model|Params|C-Eval|GSM8K|Avg|\n|-|-|-|-|-|\n|Qwen2.5-7B-Instruct|7B|80.0|85.82|82.91|\n\n"
        "|Model|C-Eval|Avg|\n|-|-|-|\n|Qwen2.5-7B-Instruct|80.0|80.0|\n\n"
        "|Model|GPQA|\n|-|-|\n|Qwen2.5-7B-Instruct|25.25|\n",
    )
    result = import_table(card)
    assert result.tables == (1, 2, 3)  # the C-Eval-only table is not numbered
    assert {s.dataset for s in result.record.scores} == {"mmlu", "gsm8k", "gpqa"}
    assert [w.split(": ")[0] for w in result.warnings] == ["card.md line 9", "card.md line 5 (score table 2)"]
    assert "skipped and not numbered" in result.warnings[0]
    assert "ignored 'Params', 'C-Eval'" in result.warnings[1]
    assert import_table(card, tables="3").record.scores[0].dataset == "gpqa"
    averages = result.record.provenance.configs.import_table.averages
    assert [(a.table, a.recomputed, a.mismatch) for a in averages] == [(1, 70.88, False), (2, None, False)]
