"""What `evalkit run` prints at the end, from a hand-written record."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from evalkit.evaluation.state import RunResult
from evalkit.evaluation.summary import summary
from evalkit.records.provenance import RunProvenance
from evalkit.records.results import load_record

SMALL = Path(__file__).resolve().parents[1] / "data" / "records" / "small.json"


def test_the_table_says_which_models_ran_on_the_shared_trunk(tmp_path):
    record = load_record(SMALL)
    branches = ["E3B", "E5B", "E7B"]
    models = [{"abbr": "qwen2.5-7b-instruct", "shared_trunk": False, "run_branches": []}] + [
        {"abbr": f"ruyi-7b-{b.lower()}", "shared_trunk": True, "run_branches": branches} for b in branches
    ]
    record = replace(record, provenance=replace(record.provenance, configs=RunProvenance(models=tuple(models))))
    run_dir = tmp_path / "results" / "small"
    lines = summary(RunResult("small", run_dir, run_dir / "results.json", record)).splitlines()
    header = next(line for line in lines if line.startswith("model "))
    column = header.index("shared trunk")
    cells = {line.split()[0]: line[column:].split()[0] for line in lines if line.startswith(("Qwen", "AI-Flow"))}
    assert cells == {
        "Qwen2.5-7B-Instruct": "off",
        "AI-Flow-Ruyi-7B-E3B": "on",
        "AI-Flow-Ruyi-7B-E5B": "on",
        "AI-Flow-Ruyi-7B-E7B": "on",
    }
    assert header.split()[:3] == ["model", "shared", "trunk"]  # one name column
    # the abbr that names the files follows a display name only where it is not the same name in lower case
    assert any(line.startswith("AI-Flow-Ruyi-7B-E3B (ruyi-7b-e3b) ") for line in lines)
    assert not any("(qwen2.5-7b-instruct)" in line for line in lines)
    unknown = summary(RunResult("small", run_dir, run_dir / "results.json", load_record(SMALL)))
    assert "shared trunk" in unknown and " - " in unknown  # a record without model configs cannot say
