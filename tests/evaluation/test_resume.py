"""`run --resume`: in place, only with the same model, data and settings, keeping the run's history."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit import EvalkitError

pytest.importorskip("opencompass")

SMALL = dict(suites="stem", limit=1, branches="2")  # one branch x GPQA, MATH, GSM8K, one item each


def _quiet(line: str) -> None:
    pass


def _run(**kwargs):
    from evalkit import run

    return run(**{**SMALL, **kwargs}, echo=_quiet)


def _unfinish(run_dir: Path, dataset: str = "math") -> None:
    """What a kill leaves: no record, one task without its files."""
    (run_dir / "results.json").unlink()
    for sub in ("predictions", "results"):
        for path in run_dir.glob(f"{sub}/*/{dataset}.json"):
            path.unlink()


@pytest.fixture
def finished(tmp_path, tiny_path):
    """A finished small run under tmp_path/out, started with a relative --out from tmp_path."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = _run(out="out")
    finally:
        os.chdir(cwd)
    return tmp_path / "out" / "results" / result.run_id


def test_resume_works_in_the_run_directory_under_the_given_out(tmp_path, finished):
    """A copied run resumed from elsewhere, with a relative --out: the copy is finished, the original untouched."""
    copy = tmp_path / "copy" / "results" / finished.name
    shutil.copytree(finished, copy)
    _unfinish(copy)
    original = {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)
    try:
        result = _run(resume=finished.name, out="../copy", **{k: None for k in SMALL})
        run_dir = result.run_dir.resolve()
    finally:
        os.chdir(cwd)
    assert run_dir == copy and (copy / "results.json").is_file()
    assert len(list(copy.glob("results/*/*.json"))) == 3
    assert {p: p.stat().st_mtime_ns for p in finished.rglob("*") if p.is_file()} == original
    assert not (elsewhere / "out").exists() and not (tmp_path / "out" / "results" / "x").exists()


def test_resume_keeps_the_start_time_and_task_timings(finished, tmp_path):
    from evalkit.records.results import load_record

    first = load_record(finished / "results.json").provenance
    _unfinish(finished)
    result = _run(resume=finished.name, out=str(tmp_path / "out"))
    p = result.record.provenance
    assert p.started_at == first.started_at and p.command == first.command
    tasks = p.configs.tasks
    assert {k: v.status for k, v in tasks.items()} == {
        "tiny-ruyi-e111k/GPQA_diamond": "reused",
        "tiny-ruyi-e111k/math": "ran",
        "tiny-ruyi-e111k/gsm8k": "reused",
    }
    for key in ("tiny-ruyi-e111k/GPQA_diamond", "tiny-ruyi-e111k/gsm8k"):
        assert tasks[key].seconds == first.configs.tasks[key].seconds and tasks[key].session == 0
    assert tasks["tiny-ruyi-e111k/math"].session == 1
    sessions = p.configs.sessions
    assert len(sessions) == 2 and sessions[0] == first.configs.sessions[0]
    assert p.duration_s == pytest.approx(sum(s.duration_s for s in sessions), abs=1e-3)
    assert p.duration_s >= first.duration_s


def test_resume_refuses_a_replaced_checkpoint(tmp_path):
    from evalkit.load.tiny import make_tiny

    model = make_tiny(tmp_path / "model", seed=1)
    other = make_tiny(tmp_path / "other", seed=2)
    result = _run(model=str(model), out=str(tmp_path / "out"))
    _unfinish(result.run_dir)
    shutil.copy2(other / "model.safetensors", model / "model.safetensors")
    before = sorted(p.relative_to(result.run_dir) for p in result.run_dir.rglob("*"))
    with pytest.raises(
        EvalkitError,
        match=r"cannot resume .*: the checkpoint of model-e\w+ \(.*model\) is not the "
        r"one the run started with",
    ):
        _run(resume=result.run_id, out=str(tmp_path / "out"))
    assert sorted(p.relative_to(result.run_dir) for p in result.run_dir.rglob("*")) == before


def test_identity_differences_name_what_changed():
    from evalkit.evaluation.state import differences

    model = {"path": "/m", "checkpoint": "aa:float32:cpu", "generation": {"max_out_len": 16, "stop_words": ["x"]}}
    stored = {"dtype": "float32 (stored)", "models": {"m-e3b": model}, "datasets": {"gsm8k": "d1", "math": "d2"}}
    assert differences(stored, stored) == []
    now = {
        "dtype": "bfloat16",
        "models": {
            "m-e3b": {**model, "checkpoint": "bb:bfloat16:cpu", "generation": {"max_out_len": 32, "stop_words": ["x"]}}
        },
        "datasets": {"gsm8k": "d1", "math": "d3"},
    }
    assert differences(stored, now) == [
        "dtype float32 (stored) is now bfloat16",
        "the checkpoint of m-e3b (/m) is not the one the run started with (fingerprint aa:float32:cpu, "
        "now bb:bfloat16:cpu)",
        "m-e3b's max_out_len 16 is now 32",
        "the dataset configs of math differ (another evalkit or OpenCompass version?)",
    ]


def test_resume_reads_the_data_it_started_with(tmp_path, tiny_path, monkeypatch):
    from evalkit.oc.fixtures import materialise_fixture_root

    data = materialise_fixture_root(tmp_path / "data")
    on_data = _run(data_dir=str(data), out=str(tmp_path / "a"))
    on_fixtures = _run(out=str(tmp_path / "b"))
    _unfinish(on_fixtures.run_dir)
    monkeypatch.setenv("COMPASS_DATA_CACHE", str(tmp_path / "elsewhere"))  # would have switched the source
    lines: list[str] = []
    from evalkit import run

    resumed = run(resume=on_fixtures.run_id, out=str(tmp_path / "b"), echo=lines.append)
    assert resumed.record.provenance.data_source == "embedded fixtures"
    assert any("COMPASS_DATA_CACHE is ignored" in line for line in lines)
    monkeypatch.delenv("COMPASS_DATA_CACHE")
    _unfinish(on_data.run_dir)
    shutil.rmtree(data)
    with pytest.raises(EvalkitError, match=r"the run's data root .*data does not exist any more"):
        _run(resume=on_data.run_id, out=str(tmp_path / "a"))
    config = json.loads((on_fixtures.run_dir / "run_config.json").read_text())["config"]
    assert config["limit"] == 1 and config["data_dir"] is None


def test_resume_refuses_flags_that_differ_from_the_run(finished, tmp_path):
    out = str(tmp_path / "out")
    record = (finished / "results.json").read_bytes()
    with pytest.raises(EvalkitError) as e:
        _run(resume=finished.name, out=out, branches="2,7", limit=2, suites="general", dtype="bf16")
    message = str(e.value)
    assert "--branches 2,7, --suites general, --limit 2, --dtype bf16 differ from them" in message
    assert "(branches 2, suites stem, limit 1, dtype (none))" in message
    assert (finished / "results.json").read_bytes() == record
    # The run's own values, spelled another way, are no conflict.
    _unfinish(finished)
    result = _run(resume=finished.name, out=out, branches="2", suites="STEM", device="auto", limit=1)
    assert (result.run_dir / "results.json").is_file()  # auto is the CPU the run started on, here


def test_resume_takes_the_run_s_branches_however_they_are_spelled(finished, tmp_path):
    """The run was started with --branches 2; E111K is that branch of the tiny family, by name."""
    _unfinish(finished)
    result = _run(resume=finished.name, out=str(tmp_path / "out"), branches="E111K")
    assert (result.run_dir / "results.json").is_file()
    assert [m.branch for m in result.record.models] == ["E111K"]


def test_branch_flags_compare_as_the_branches_they_select(tiny_path, tmp_path):
    """Read from the checkpoint's config.json and headers where it can be; as written where it cannot."""
    from evalkit.evaluation.options import RunConfig
    from evalkit.evaluation.state import StoredRun

    def stored(model: Path | None, branches: str) -> StoredRun:
        return StoredRun(
            "r1", tmp_path, RunConfig(model=None if model is None else str(model), branches=branches), None, 2
        )

    layer_two = stored(tiny_path, "2")
    for same in ("E111K", "e111k", " 2 ", "2,E111K"):
        layer_two.refuse_conflicts({"branches": same})
    for other in ("E186K", "2,4", "all", "E9B"):
        with pytest.raises(EvalkitError, match=f"--branches {other} differs from them \\(branches 2\\)"):
            layer_two.refuse_conflicts({"branches": other})
    stored(tiny_path, "all").refuse_conflicts({"branches": "2,4,6,e297k"})
    stored(None, "e297k").refuse_conflicts({"branches": "7"})  # the embedded family, already built
    unreadable = stored(tmp_path / "gone", "2")
    unreadable.refuse_conflicts({"branches": " 2"})
    with pytest.raises(EvalkitError, match="--branches E111K differs"):
        unreadable.refuse_conflicts({"branches": "E111K"})


def _stored(tmp_path: Path, finished: Path, edit) -> str:
    path = finished / "run_config.json"
    data = json.loads(path.read_text())
    text = edit(data)
    path.write_text(text if isinstance(text, str) else json.dumps(data))
    return str(tmp_path / "out")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: '{"format": "evalkit.run_config", "ver', r"run_config\.json is not valid JSON .*start a new run"),
        (lambda d: d["config"].update(colour="red"), r"settings this evalkit does not know \(colour\)"),
        (lambda d: d["config"].pop("suites"), r"lacks the settings suites"),
        (lambda d: d["config"].update(limit="two"), r"wrong type for limit"),
        (lambda d: d.update(version=99), r"written by a newer evalkit \(run config version 99"),
        (lambda d: "[1, 2]", r"does not hold a run config"),
    ],
)
def test_damaged_run_config_is_one_clear_error(finished, tmp_path, edit, message):
    out = _stored(tmp_path, finished, edit)
    _unfinish(finished)
    with pytest.raises(EvalkitError, match=message):
        _run(resume=finished.name, out=out)
    assert not (finished / "results.json").exists()


def test_run_config_of_an_older_evalkit_resumes(finished, tmp_path):
    """Version 1 was the bare settings; settings whose default changes no result may be missing."""

    def old(d):
        config = d["config"]
        for key in ("runner", "max_num_workers", "partition", "shared_trunk"):
            config.pop(key)
        return json.dumps(config)

    out = _stored(tmp_path, finished, old)
    (finished / "progress.json").unlink()
    _unfinish(finished)
    lines: list[str] = []
    from evalkit import run

    result = run(resume=finished.name, out=out, echo=lines.append)
    assert result.record.provenance.configs.run["runner"] == "local"
    assert any("older evalkit" in line and "cannot be checked" in line for line in lines)


def test_command_is_recorded_as_typed(monkeypatch):
    import evalkit
    from evalkit.records.provenance import command_line

    main = str(Path(evalkit.__file__).parent / "__main__.py")
    monkeypatch.setattr("sys.argv", [main, "run", "--out", "my runs"])
    assert command_line() == "python -m evalkit run --out 'my runs'"
    monkeypatch.setattr("sys.argv", ["/venv/bin/evalkit", "run", "--branches", "all"])
    assert command_line() == "evalkit run --branches all"


# --- one process per run, and nothing left behind -----------------------------------------------------

TEMP = re.compile(r"^\.|\.tmp$|\.evalkit-tmp$|\.repair$|run\.lock$")


def _stray(run_dir: Path) -> list[str]:
    """Temporary, hidden or lock files anywhere in the run directory."""
    return [str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if TEMP.search(p.name)]


def _holder(run_dir: Path) -> subprocess.Popen:
    code = (
        "import sys, time\nfrom pathlib import Path\nfrom evalkit.evaluation.lock import run_lock\n"
        "with run_lock(Path(sys.argv[1]), 'r', 'evalkit run --resume (the other one)'):\n"
        "    print('held', flush=True)\n    time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_finished_run_leaves_no_temporary_or_lock_file(finished):
    assert {p.name for p in finished.iterdir()} >= {"results.json", "run_config.json", "progress.json"}
    assert _stray(finished) == []


def test_a_locked_run_cannot_be_resumed_until_its_holder_is_gone(finished, tmp_path):
    from click.testing import CliRunner

    from evalkit.cli import main

    _unfinish(finished)
    out = str(tmp_path / "out")
    holder = _holder(finished)
    try:
        res = CliRunner().invoke(main, ["run", "--out", out, "--resume", finished.name])
        assert res.exit_code == 2, res.output
        [line] = res.stderr.strip().splitlines()
        assert line.startswith(f"error: run {finished.name} is in use by pid {holder.pid} on ")
        assert "(evalkit run --resume (the other one), since " in line
        assert not (finished / "results.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    result = _run(resume=finished.name, out=out)  # the killed holder's lock went with it
    assert len(result.record.provenance.configs.sessions) == 2
    assert _stray(finished) == []


def test_a_resume_removes_what_a_write_killed_mid_way_left(finished, tmp_path):
    """A real SIGKILL between writing progress.json's temporary file and renaming it, then a resume."""
    _unfinish(finished)
    progress = (finished / "progress.json").read_bytes()
    code = (
        "import os, signal, sys\nos.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from evalkit.records.io import write_json_atomic\nwrite_json_atomic(sys.argv[1], {'torn': True})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    killed = subprocess.run([sys.executable, "-c", code, str(finished / "progress.json")], env=env)
    assert killed.returncode == -signal.SIGKILL
    assert (finished / "progress.json").read_bytes() == progress
    [left] = _stray(finished)
    lines: list[str] = []
    from evalkit import run

    result = run(resume=finished.name, out=str(tmp_path / "out"), echo=lines.append)
    assert f"resume: removed {left}, left by a write that was killed" in lines
    assert _stray(finished) == [] and len(result.record.provenance.configs.sessions) == 2


def test_dataset_digests_spell_evalkit_s_classes_as_first_stored():
    """A run started before evalkit's OpenCompass classes moved (oc_evaluators -> oc.evaluators) resumes."""
    from evalkit.evaluation.state import identity

    def config(module: str) -> dict:
        return {
            "abbr": "openai_humaneval",
            "eval_cfg": {"evaluator": {"type": f"{module}.SandboxedHumanEvalEvaluator"}},
        }

    now, before = (
        identity([], [config(m)], {}, "fp32")["datasets"] for m in ("evalkit.oc.evaluators", "evalkit.oc_evaluators")
    )
    assert now == before
    assert now != identity([], [config("other.evaluators")], {}, "fp32")["datasets"]
