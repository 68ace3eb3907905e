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
    cells = {line.split()[0]: line[column:].split()[0] for line in lines if line.startswith(("qwen", "ruyi"))}
    assert cells == {"qwen2.5-7b-instruct": "off", "ruyi-7b-e3b": "on", "ruyi-7b-e5b": "on", "ruyi-7b-e7b": "on"}
    unknown = summary(RunResult("small", run_dir, run_dir / "results.json", load_record(SMALL)))
    assert "shared trunk" in unknown and " - " in unknown  # a record without model configs cannot say
