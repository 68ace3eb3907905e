"""The typed `configs` section of a record's provenance: read back as written, older shapes, damage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.records.provenance import RunProvenance, Session, TaskTiming
from evalkit.records.results import Provenance, load_record, save_record

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "data" / "records" / "small.json"
PUBLISHED = sorted((ROOT / "docs" / "published").glob("*.json"))

# What `evalkit run` writes into configs, in its layout (run settings and model/dataset configs shortened).
MEASURED = {
    "run": {"model": None, "branches": "all", "baselines": [], "suites": ["stem"], "limit": 1, "device": "cpu"},
    "models": [{"abbr": "ruyi-7b-e3b", "type": "evalkit.oc.model.FamilialBranchModel", "max_out_len": 16}],
    "datasets": [{"abbr": "gsm8k", "type": "opencompass.datasets.GSM8KDataset", "reader_cfg": {"test_range": "[0:1]"}}],
    "sandbox": "namespaces (user, mount, pid, net): no network, minimal read-only root, rlimits, timeout",
    "tasks": {
        "ruyi-7b-e3b/gsm8k": {"status": "reused", "seconds": 0.239, "session": 0},
        "ruyi-7b-e3b/math": {"status": "ran", "seconds": None, "session": 1},
    },
    "sessions": [
        {
            "command": "evalkit run --suites stem",
            "started_at": "2026-12-02T04:08:13+00:00",
            "finished_at": None,
            "duration_s": 1.372,
        },
        {
            "command": "evalkit run --resume x",
            "started_at": "2026-12-02T04:08:34+00:00",
            "finished_at": "2026-12-02T04:08:35+00:00",
            "duration_s": 0.729,
        },
    ],
}


def _with_configs(tmp_path: Path, configs: object, name: str = "record.json") -> Path:
    data = json.loads(SMALL.read_text(encoding="utf-8"))
    if configs is ...:
        del data["provenance"]["configs"]
    else:
        data["provenance"]["configs"] = configs
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def _saved(record_path: Path, tmp_path: Path) -> dict:
    out = save_record(load_record(record_path), tmp_path / "saved.json")
    return json.loads(out.read_text(encoding="utf-8"))


def test_a_measured_section_reads_as_types_and_writes_back_unchanged(tmp_path):
    path = _with_configs(tmp_path, MEASURED)
    configs = load_record(path).provenance.configs
    assert configs.run["suites"] == ["stem"] and configs.models[0]["abbr"] == "ruyi-7b-e3b"
    assert configs.datasets[0]["reader_cfg"] == {"test_range": "[0:1]"} and configs.sandbox.startswith("namespaces")
    assert configs.tasks["ruyi-7b-e3b/gsm8k"] == TaskTiming(status="reused", seconds=0.239, session=0)
    assert configs.tasks["ruyi-7b-e3b/math"].seconds is None
    assert configs.sessions[1] == Session(
        command="evalkit run --resume x",
        started_at="2026-12-02T04:08:34+00:00",
        finished_at="2026-12-02T04:08:35+00:00",
        duration_s=0.729,
    )
    assert configs.import_table is None
    saved = tmp_path / "saved.json"
    save_record(load_record(path), saved)
    assert saved.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")  # byte for byte, key order too


def test_a_section_built_in_code_has_the_layout_run_wrote():
    configs = RunProvenance(
        run=MEASURED["run"],
        models=tuple(MEASURED["models"]),
        datasets=tuple(MEASURED["datasets"]),
        sandbox=MEASURED["sandbox"],
        tasks={k: TaskTiming(**v) for k, v in MEASURED["tasks"].items()},
        sessions=tuple(Session(**s) for s in MEASURED["sessions"]),
    )
    assert json.dumps(configs.to_dict()) == json.dumps(MEASURED)
    assert RunProvenance.from_dict(configs.to_dict(), 1) == configs


@pytest.mark.parametrize("path", [SMALL, *PUBLISHED], ids=lambda p: p.name)
def test_stored_records_load_and_write_back_the_same_section(path, tmp_path):
    stored = json.loads(path.read_text(encoding="utf-8"))["provenance"]
    assert _saved(path, tmp_path)["provenance"] == stored


def test_published_record_keeps_its_import_table():
    (path,) = PUBLISHED
    info = load_record(path).provenance.configs.import_table
    assert info.tables == (1, 2, 3, 4) and info.average_mismatches == 0
    assert all(not a.mismatch for a in info.averages) and info.averages[0].model == "qwen3-8b-think"


@pytest.mark.parametrize(
    "configs, expected",
    [
        (..., {}),  # written before the section existed
        (None, {}),
        ({}, {}),
        (
            {"run": {"suites": ["general"]}, "sandbox": "rlimits"},
            {"run": {"suites": ["general"]}, "sandbox": "rlimits"},
        ),
    ],
    ids=["absent", "null", "empty", "partial"],
)
def test_records_without_a_full_section_load(tmp_path, configs, expected):
    path = _with_configs(tmp_path, configs)
    record = load_record(path)
    assert record.provenance.configs.tasks is None and record.provenance.configs.sessions is None
    assert _saved(path, tmp_path)["provenance"]["configs"] == expected


def test_records_from_before_sessions_load(tmp_path):
    """Before --resume, a record kept no sessions and its tasks no session index."""
    older = {
        **{k: v for k, v in MEASURED.items() if k != "sessions"},
        "tasks": {"ruyi-7b-e3b/gsm8k": {"status": "ran", "seconds": 0.239}},
    }
    configs = load_record(_with_configs(tmp_path, older)).provenance.configs
    assert configs.sessions is None
    assert configs.tasks == {"ruyi-7b-e3b/gsm8k": TaskTiming(status="ran", seconds=0.239, session=None)}


def test_default_provenance_writes_an_empty_section():
    assert Provenance().to_dict()["configs"] == {}


def _damage(configs: dict, change) -> dict:
    damaged = json.loads(json.dumps(configs))
    change(damaged)
    return damaged


@pytest.mark.parametrize(
    "change, field, problem",
    [
        (
            lambda c: c["tasks"]["ruyi-7b-e3b/gsm8k"].update(seconds="fast"),
            "provenance.configs.tasks['ruyi-7b-e3b/gsm8k'].seconds",
            "is 'fast', expected a number or null",
        ),
        (
            lambda c: c["tasks"]["ruyi-7b-e3b/math"].update(session=True),
            "provenance.configs.tasks['ruyi-7b-e3b/math'].session",
            "is True, expected a whole number or null",
        ),
        (
            lambda c: c["tasks"]["ruyi-7b-e3b/math"].pop("status"),
            "provenance.configs.tasks['ruyi-7b-e3b/math']",
            "lacks 'status'",
        ),
        (
            lambda c: c["sessions"][1].update(duration_s=None),
            "provenance.configs.sessions[1].duration_s",
            "is null, expected a number",
        ),
        (lambda c: c["sessions"][0].update(extra=1), "provenance.configs.sessions[0]", "has 'extra'"),
        (lambda c: c.update(sessions={"command": "x"}), "provenance.configs.sessions", "is an object, expected a list"),
        (lambda c: c.update(models=["ruyi"]), "provenance.configs.models[0]", "is 'ruyi', expected an object"),
        (lambda c: c.update(run=[]), "provenance.configs.run", "is a list, expected an object"),
        (lambda c: c.update(sandbox=3), "provenance.configs.sandbox", "is 3, expected text"),
        (lambda c: c.update(timings={}), "provenance.configs", "has 'timings', which this evalkit does not know"),
    ],
)
def test_a_damaged_section_is_one_error_naming_file_and_field(tmp_path, change, field, problem):
    path = _with_configs(tmp_path, _damage(MEASURED, change))
    with pytest.raises(EvalkitError) as caught:
        load_record(path)
    assert str(caught.value).startswith(f"results record {path}: {field} {problem}")
    res = CliRunner().invoke(main, ["report", str(path), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 2 and res.stderr.startswith(f"error: results record {path}: {field}")
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output


def test_a_damaged_import_table_names_its_field(tmp_path):
    (published,) = PUBLISHED
    configs = json.loads(published.read_text(encoding="utf-8"))["provenance"]["configs"]
    configs["import_table"]["averages"][2]["mismatch"] = "no"
    path = _with_configs(tmp_path, configs)
    with pytest.raises(
        EvalkitError,
        match=r"provenance\.configs\.import_table\.averages\[2\]\.mismatch is 'no', "
        "expected true or false",
    ):
        load_record(path)


def test_which_models_ran_on_the_shared_trunk():
    """On: asked for, with a sibling branch in the run. A baseline, a lone branch or the switch off: not."""
    branches = ["E3B", "E7B"]
    models = (
        {"abbr": "ruyi-7b-e3b", "shared_trunk": True, "run_branches": branches},
        {"abbr": "ruyi-7b-e7b", "shared_trunk": True, "run_branches": branches},
        {"abbr": "lone-e3b", "shared_trunk": True, "run_branches": ["E3B"]},
        {"abbr": "off-e3b", "shared_trunk": False, "run_branches": branches},
        {"abbr": "qwen2.5-7b-instruct", "shared_trunk": False, "run_branches": []},
        {"abbr": "spelled-e3b", "shared_trunk": True, "run_branches": "E3B, E7B"},  # hand-edited shapes
        {"abbr": "one-spelled-e3b", "shared_trunk": True, "run_branches": "E3B"},
        {"abbr": "string-switch", "shared_trunk": "false", "run_branches": branches},
    )
    assert RunProvenance(models=models).shared_trunk() == {
        "ruyi-7b-e3b": True,
        "ruyi-7b-e7b": True,
        "lone-e3b": False,
        "off-e3b": False,
        "qwen2.5-7b-instruct": False,
        "spelled-e3b": True,
        "one-spelled-e3b": False,
        "string-switch": False,
    }
    assert RunProvenance().shared_trunk() is None  # a hand-written or published record cannot say
