"""`evalkit readme`: tables in place, every other byte untouched, idempotent, --check exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.records.results import load_record
from evalkit.reporting.readme import render, update_readme
from evalkit.reporting.tables import named_table

HERE = Path(__file__).resolve().parents[1] / "data"
SMALL = HERE / "records" / "small.json"
BEFORE = HERE / "golden" / "readme_before.md"


@pytest.fixture
def readme(tmp_path) -> Path:
    path = tmp_path / "README.md"
    shutil.copyfile(BEFORE, path)
    return path


def _outside_blocks(text: str) -> list[str]:
    """The text with each block's content cut out."""
    parts, rest = [], text
    while "-->" in rest and "<!-- evalkit:table" in rest:
        head, _, rest = rest.partition("<!-- evalkit:table")
        name, _, rest = rest.partition("-->")
        _, _, rest = rest.partition("<!-- /evalkit:table -->")
        parts.append(head + name)
    return parts + [rest]


def test_blocks_get_the_report_tables_and_nothing_else_changes(readme):
    update = update_readme(readme, [SMALL])
    assert update.blocks == ("general", "branches") and update.stale == ("general", "branches")
    before, after = BEFORE.read_bytes().decode(), readme.read_bytes().decode()
    assert _outside_blocks(after) == _outside_blocks(before)
    record = load_record(SMALL)
    expected = "<!-- evalkit:table general -->\n" + named_table(record, "general") + "\n<!-- /evalkit:table -->"
    assert expected in after
    assert "<!-- evalkit:table branches -->\n" + named_table(record, "branches") + "\n<!-- /evalkit:table -->" in after
    assert after.endswith("The end, no newline at end of file.")


def test_second_run_changes_nothing(readme):
    update_readme(readme, [SMALL])
    first = readme.read_bytes()
    again = update_readme(readme, [SMALL])
    assert not again.changed and readme.read_bytes() == first


def test_crlf_files_keep_crlf(tmp_path):
    text = BEFORE.read_text(encoding="utf-8").replace("\n", "\r\n")
    out = render(text, load_record(SMALL)).text
    assert "\n" not in out.replace("\r\n", "")
    assert out.startswith("# Our model\r\n\r\nSome prose")


def test_crlf_readme_keeps_its_line_endings_and_is_stable(tmp_path):
    path = tmp_path / "crlf.md"
    path.write_bytes(b"# T\r\n<!-- evalkit:table general -->\r\nold\r\n<!-- /evalkit:table -->\r\ntail\r\n")
    runner = CliRunner()
    first = runner.invoke(main, ["readme", str(path), "--results", str(SMALL)])
    assert first.exit_code == 0, first.output
    written = path.read_bytes()
    assert b"\r\r" not in written and b"\n" not in written.replace(b"\r\n", b"")
    table = named_table(load_record(SMALL), "general").replace("\n", "\r\n").encode()
    assert written == (
        b"# T\r\n<!-- evalkit:table general -->\r\n" + table + b"\r\n<!-- /evalkit:table -->\r\ntail\r\n"
    )
    check = runner.invoke(main, ["readme", str(path), "--results", str(SMALL), "--check"])
    assert check.exit_code == 0 and "up to date" in check.output
    again = runner.invoke(main, ["readme", str(path), "--results", str(SMALL)])
    assert again.exit_code == 0 and path.read_bytes() == written


def test_each_block_keeps_the_line_ending_of_its_marker():
    text = (
        "<!-- evalkit:table general -->\r\nx\r\n<!-- /evalkit:table -->\n"
        "<!-- evalkit:table branches -->\ny\n<!-- /evalkit:table -->\n"
    )
    out = render(text, load_record(SMALL)).text
    general, _, branches = out.partition("<!-- evalkit:table branches -->")
    assert "\n" not in general.replace("\r\n", "").rstrip("\n")
    assert "\r" not in branches


def test_check_exit_codes(readme):
    runner = CliRunner()
    stale = runner.invoke(main, ["readme", str(readme), "--results", str(SMALL), "--check"])
    assert stale.exit_code == 1
    assert "stale tables: general, branches" in stale.output
    assert readme.read_bytes() == BEFORE.read_bytes()  # --check writes nothing
    fix = runner.invoke(main, ["readme", str(readme), "--results", str(SMALL)])
    assert fix.exit_code == 0 and "updated (general, branches)" in fix.output
    fresh = runner.invoke(main, ["readme", str(readme), "--results", str(SMALL), "--check"])
    assert fresh.exit_code == 0 and "up to date" in fresh.output


def test_bad_blocks_and_records_are_clear_errors(tmp_path):
    record = load_record(SMALL)
    with pytest.raises(EvalkitError, match="unknown table block 'maths'; valid table blocks are: general"):
        render("<!-- evalkit:table maths -->\n<!-- /evalkit:table -->\n", record)
    with pytest.raises(EvalkitError, match="line 2: block 'code' is not closed"):
        render("x\n<!-- evalkit:table code -->\n| a |\n", record)
    with pytest.raises(EvalkitError, match="has no <!-- evalkit:table NAME --> block"):
        render("# nothing here\n", record)
    path = tmp_path / "R.md"
    path.write_text("<!-- evalkit:table general -->\n<!-- /evalkit:table -->\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["readme", str(path), "--results", str(HERE / "records" / "corrupt.json")])
    assert res.exit_code == 2 and res.output.startswith("error: ") and "not valid JSON" in res.output


def test_markers_inside_prose_are_not_blocks():
    record = load_record(SMALL)
    text = (
        "Use `<!-- evalkit:table NAME -->` to mark a block.\n"
        "<!-- evalkit:table general -->\nold\n<!-- /evalkit:table -->\n"
    )
    rendered = render(text, record).text
    assert rendered.startswith("Use `<!-- evalkit:table NAME -->` to mark a block.\n")
    assert "old" not in rendered


@pytest.mark.parametrize("fence", ["```", "~~~", "````"])
def test_markers_inside_fenced_code_are_left_alone(fence):
    inner = "~~~" if fence == "```" else "```"  # another character, or shorter: does not close it
    example = f"{fence}markdown\n<!-- evalkit:table stem -->\n| example |\n<!-- /evalkit:table -->\n{inner}\n{fence}\n"
    text = "Write:\n\n" + example + "\n<!-- evalkit:table general -->\nold\n<!-- /evalkit:table -->\n"
    update = render(text, load_record(SMALL))
    assert update.blocks == ("general",)
    assert update.text.startswith("Write:\n\n" + example)
    assert "old" not in update.text


def test_an_unclosed_fence_hides_the_rest_of_the_file():
    with pytest.raises(EvalkitError, match="has no <!-- evalkit:table NAME --> block"):
        render("```\n<!-- evalkit:table general -->\n<!-- /evalkit:table -->\n", load_record(SMALL))


def test_repository_readme_tables_are_fresh():
    """The README's published tables are generated from the committed record: `readme --check` passes."""
    root = Path(__file__).resolve().parents[2]
    update = update_readme(root / "README.md", [root / "docs/published/ai-flow-ruyi-7b-0725.json"], check=True)
    assert update.blocks == ("general", "branches") and not update.stale


def test_ci_example_checks_the_readme_against_the_record_it_is_written_from():
    """docs/ci-gate.yml: the README step's record exists and passes `readme --check`; the gate uses another."""
    import os
    import re

    import yaml

    root = Path(__file__).resolve().parents[2]
    workflow = yaml.safe_load((root / "docs" / "ci-gate.yml").read_text(encoding="utf-8"))
    runs = [
        (job.get("env", {}), step["run"]) for job in workflow["jobs"].values() for step in job["steps"] if "run" in step
    ]
    readme_steps = [(env, run) for env, run in runs if "evalkit readme" in run]
    assert len(readme_steps) == 1
    env, run = readme_steps[0]
    env = {**workflow["env"], **env}
    results = re.search(r'--results\s+"?([^"\s]+)', run).group(1)
    record = root / re.sub(r"\$(\w+)", lambda m: env[m.group(1)], results)
    assert record.is_file(), record
    assert os.path.samefile(record, root / "docs" / "published" / "ai-flow-ruyi-7b-0725.json")
    update = update_readme(root / "README.md", [record], check=True)
    assert not update.stale
    gate = next(run for _, run in runs if "evalkit regress" in run)
    assert '--reference "$REFERENCE"' in gate and "$REFERENCE" not in run
