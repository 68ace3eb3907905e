"""`evalkit run` end to end through OpenCompass on the tiny family and the fixtures (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

pytest.importorskip("opencompass")
pytestmark = pytest.mark.slow

BRANCHES = "2,7"  # the tiny family's first and last exits


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, tiny_path):
    """One real run through the CLI, shared by the tests below: two branches, the general suite, 2 items."""
    from evalkit.cli import main
    from evalkit.engine.family_engine import REGISTRY

    out = tmp_path_factory.mktemp("run")
    REGISTRY.clear()
    loads_before = len(REGISTRY.loads)
    cwd = os.getcwd()
    os.chdir(out)  # run where the user stands: nothing but results/ may be left there
    try:
        result = CliRunner().invoke(
            main,
            [
                "run",
                "--suites",
                "general",
                "--limit",
                "2",
                "--branches",
                BRANCHES,
                "--batch-size",
                "2",
                "--out",
                str(out),
            ],
        )
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output + repr(result.exception)
    (run_dir,) = (out / "results").iterdir()
    return dict(out=out, run_dir=run_dir, output=result.output, loads=REGISTRY.loads[loads_before:])


def test_record_is_complete(e2e):
    from evalkit.catalog.datasets import SUITES
    from evalkit.records.results import load_record

    record = load_record(e2e["run_dir"] / "results.json")
    assert record.run_id == e2e["run_dir"].name and record.kind == "measured"
    ours = [m for m in record.models if m.role == "ours"]
    assert [m.exit_layer for m in ours] == [2, 7]
    assert all(m.branch and m.num_params and m.family == "tiny-ruyi" for m in ours)
    assert len({m.abbr for m in ours}) == 2
    for m in ours:
        for key in SUITES["general"]:
            s = record.score(m.abbr, key)
            assert s is not None and s.items, (m.abbr, key)
            assert 0.0 <= s.value <= 100.0 and s.n == len(s.items)
            assert s.value == pytest.approx(100 * sum(i.score for i in s.items) / s.n)
    mmlu = record.score(ours[0].abbr, "mmlu")
    assert {i.group for i in mmlu.items} == {"astronomy", "high_school_geography"}
    assert mmlu.n == 4  # 2 items per subject
    p = record.provenance
    assert {"torch", "transformers", "opencompass", "evalkit", "numpy"} <= set(p.packages)
    assert p.device.startswith("cpu") and p.data_source == "embedded fixtures" and p.command
    assert p.dtype == "float32 (stored)"
    assert p.configs.sandbox and p.configs.run["suites"] == ["general"]
    assert len(p.configs.models) == 2 and p.configs.datasets
    assert p.duration_s and p.started_at and p.finished_at


def test_every_item_carries_its_signals_and_agreement(e2e):
    """Both branches on the shared trunk: each generated answer's signals, and agreement with the last branch."""
    from evalkit.records.results import load_record

    record = load_record(e2e["run_dir"] / "results.json")
    assert record.schema_version == 2
    first, last = (m.abbr for m in record.models if m.role == "ours")
    for abbr in (first, last):
        for s in (x for x in record.scores if x.model == abbr):
            for item in s.items:
                sig = item.signals
                assert sig is not None and sig.answer_tokens and sig.prompt_tokens, (abbr, s.dataset, item.id)
                assert sig.min_logprob <= sig.mean_logprob <= 0 and sig.first_entropy >= 0
                assert sig.agreement is not None and 0 <= sig.agreement <= 1
                if abbr == last:
                    assert sig.agreement == pytest.approx(1.0)  # the last branch agrees with its own answer
    files = sorted(p.relative_to(e2e["run_dir"]).as_posix() for p in (e2e["run_dir"] / "signals").rglob("*.json"))
    assert f"signals/{first}/ARC-c.json" in files and f"signals/{last}/hellaswag.json" in files


def test_run_leaves_nothing_but_results_in_the_working_directory(e2e):
    assert sorted(p.name for p in e2e["out"].iterdir()) == ["results"]


def test_printed_table_and_file_locations(e2e):
    out = e2e["output"]
    assert "generation capped at 16 tokens" in out and "embedded fixtures" in out
    for title in ("MMLU", "CMMLU", "BBH", "ARC-c", "HellaSwag", "WinoGrande"):
        assert title in out
    record = json.loads((e2e["run_dir"] / "results.json").read_text())
    for m in record["models"]:
        assert m["name"] in out  # one name column: the display name (the abbr is the same name in lower case)
    header = next(line for line in out.splitlines() if line.startswith("model "))
    assert header.split()[:3] == ["model", "shared", "trunk"]
    assert str(e2e["run_dir"] / "results.json") in out
    assert "predictions" in out and f"--resume {e2e['run_dir'].name}" in out
    assert (
        "2 models x 11 OpenCompass datasets = 22 tasks (the table's 7 datasets: MMLU runs as 2 subjects, "
        "MMLU-Pro as 2 categories, CMMLU as 2 subjects, BBH as 2 tasks)"
    ) in out
    assert "trained on templated items" in out and "not ability" in out  # the header says what the family knows
    # --limit counts per subject or task of a grouped dataset, and the run says so
    assert (
        "limit: the first 2 items of each dataset, and of each group of MMLU (2 subjects), MMLU-Pro "
        "(2 categories), CMMLU (2 subjects), BBH (2 tasks), whose scores average their groups: at most 22 items "
        "per model"
    ) in out


def test_branches_keep_their_own_files(e2e):
    preds = e2e["run_dir"] / "predictions"
    abbrs = sorted(p.name for p in preds.iterdir())
    assert len(abbrs) == 2
    a, b = (sorted(p.name for p in (preds / x).glob("*.json")) for x in abbrs)
    assert a == b and len(a) == 11  # 2 MMLU + 2 MMLU-Pro + 2 CMMLU + 2 BBH + ARC-c + HellaSwag + WinoGrande
    texts = [[json.loads((preds / x / f).read_text()) for f in a] for x in abbrs]
    assert texts[0] != texts[1]  # different branches, different answers
    for x in abbrs:
        assert len(list((e2e["run_dir"] / "results" / x).glob("*.json"))) == 11


def test_family_is_loaded_once_for_all_branches_and_datasets(e2e):
    assert len(e2e["loads"]) == 1


def test_resume_after_kill_skips_finished_tasks(tmp_path, tiny_path):
    """Kill a real run once its first task is finished, resume it, and check nothing finished ran again."""
    from evalkit import run
    from evalkit.records.results import load_record

    # 48-token answers keep each task long enough for the kill to land between the first and the last.
    cmd = [
        sys.executable,
        "-m",
        "evalkit",
        "run",
        "--suites",
        "stem",
        "--limit",
        "2",
        "--branches",
        BRANCHES,
        "--max-out-len",
        "48",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        first = _wait_for(lambda: sorted(tmp_path.glob("results/*/results/*/*.json")), proc, timeout=240)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_dir = first[0].parents[2]
    assert not (run_dir / "results.json").exists()
    finished = {p: p.stat().st_mtime_ns for p in run_dir.glob("results/*/*.json")}
    finished.update({p: p.stat().st_mtime_ns for p in run_dir.glob("predictions/*/*.json")})

    result = run(resume=run_dir.name, out=str(tmp_path), echo=lambda s: None)

    assert finished
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was recomputed"
    tasks = result.record.provenance.configs.tasks
    reused = [k for k, v in tasks.items() if v.status == "reused"]
    ran = [k for k, v in tasks.items() if v.status == "ran"]
    assert reused and ran and len(tasks) == 6  # 2 branches x (GPQA, MATH, GSM8K)
    assert all(f"{p.parent.name}/{p.stem}" in reused for p in first)
    record = load_record(run_dir / "results.json")
    assert len(record.scores) == 6 and all(s.items for s in record.scores)
    first, resumed = record.provenance.configs.sessions  # the killed session is kept, not overwritten
    assert record.provenance.started_at == first.started_at and "--max-out-len 48" in first.command
    assert record.provenance.command == first.command and resumed.finished_at


def _wait_for(found, proc: subprocess.Popen, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = found()
        if hits:
            return hits
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before its first task finished")
        time.sleep(0.05)
    pytest.fail("no task finished in time")


def test_partial_files_from_a_killed_task_are_repaired(tmp_path):
    from evalkit.oc.driver import repair_partial

    preds = tmp_path / "predictions" / "m"
    preds.mkdir(parents=True)
    (preds / "cut.json").write_text('{"0": {"prediction": "A"}, "1": {"predi')
    (preds / "ok.json").write_text('{"0": {"prediction": "A"}}')
    lines = [json.dumps({"idx": str(i), "prediction": "x"}) for i in range(3)]
    (preds / "tmp_ds.jsonl").write_text("\n".join(lines) + '\n{"idx": "3", "pred')
    (preds / "tmp_empty.jsonl").write_text('{"idx": "0", "pr')
    notes = repair_partial(tmp_path)
    assert not (preds / "cut.json").exists() and (preds / "ok.json").exists()
    assert (preds / "tmp_ds.jsonl").read_text() == "\n".join(lines) + "\n"
    assert not (preds / "tmp_empty.jsonl").exists()
    assert len(notes) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(suites="generl"), "unknown suite 'generl'; valid suites are: general, code, stem"),
        (dict(baselines="gpt-9"), "unknown baseline 'gpt-9'; valid baselines are: qwen2.5-7b-instruct"),
        (dict(runner="k8s"), "unknown runner 'k8s'"),
    ],
)
def test_bad_names_are_one_line_errors(tmp_path, kwargs, message):
    from evalkit import EvalkitError, run

    with pytest.raises(EvalkitError, match=message.replace("(", r"\(").replace(".", r"\.")):
        run(out=str(tmp_path), **kwargs)
    assert not (tmp_path / "results").exists()


def test_missing_data_fails_up_front_naming_files(tmp_path):
    from evalkit import EvalkitError, run

    (tmp_path / "data").mkdir()
    with pytest.raises(EvalkitError, match=r"OpenCompass data missing under .*: data/gpqa/gpqa_diamond\.csv"):
        run(suites="stem", data_dir=str(tmp_path), out=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_baseline_without_a_path_names_its_variable(tmp_path, monkeypatch):
    from evalkit import EvalkitError, run

    monkeypatch.delenv("YI_9B_PATH", raising=False)
    with pytest.raises(EvalkitError, match="set YI_9B_PATH=DIR or pass --baseline-path yi-9b=DIR"):
        run(baselines="Yi-9B", out=str(tmp_path))


def test_cli_prints_one_line_and_exits_2(tmp_path):
    from evalkit.cli import main

    result = CliRunner().invoke(main, ["run", "--baselines", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: unknown baseline 'nope'; valid baselines are: " + ", ".join(_baseline_names())
    ]


def _baseline_names() -> list[str]:
    from evalkit.catalog.baselines import BASELINES

    return list(BASELINES)


def test_resume_of_an_unknown_run_lists_the_runs(tmp_path):
    from evalkit import EvalkitError, run

    with pytest.raises(EvalkitError, match="no run 'nope' under .*; runs there: none"):
        run(resume="nope", out=str(tmp_path))


def _no_tokenizer(tmp_path, tiny_path):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(tiny_path, bare)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (bare / name).unlink(missing_ok=True)
    return dict(model=str(bare))


def _vocab_mismatch(tmp_path, tiny_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_path, bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "vocab_size": 1000}))
    return dict(model=str(bad))


def _out_under_a_file(tmp_path, tiny_path):
    (tmp_path / "a-file").write_text("x")
    return dict(out=str(tmp_path / "a-file" / "runs"))


@pytest.mark.parametrize(
    "make_kwargs, message",
    [
        (lambda t, p: dict(max_out_len=0), r"--max-out-len must be at least 1 \(tokens\), got 0"),
        (lambda t, p: dict(max_out_len=-5), r"--max-out-len must be at least 1 \(tokens\), got -5"),
        (lambda t, p: dict(limit=0), r"--limit must be at least 1 \(items\), got 0"),
        (lambda t, p: dict(batch_size=0), r"--batch-size must be at least 1"),
        (lambda t, p: dict(device="foo"), r"unknown device 'foo'; pass cpu, cuda or cuda:N"),
        (
            lambda t, p: dict(baseline_paths=["yi-9b=/models/Yi-9B"]),
            r"--baseline-path names yi-9b, which --baselines does not evaluate; add yi-9b to --baselines",
        ),
        (
            lambda t, p: dict(partition="gpu"),
            r"--partition gpu is a Slurm partition, but the runner is local; add "
            r"--runner slurm",
        ),
        (_no_tokenizer, r"bare has no tokenizer files"),
        (_vocab_mismatch, r"tensor model.embed_tokens.weight has shape \[1024, 64\], but config.json"),
        (_out_under_a_file, r"cannot write .*a-file/runs/results \(.*a-file is not a directory\)"),
    ],
)
def test_bad_settings_fail_before_a_run_directory_exists(tmp_path, tiny_path, make_kwargs, message):
    from evalkit import EvalkitError, run

    kwargs = {
        "out": str(tmp_path / "out"),
        "suites": "stem",
        "limit": 1,
        "branches": "2",
        **make_kwargs(tmp_path, tiny_path),
    }
    with pytest.raises(EvalkitError, match=message):
        run(**kwargs, echo=lambda s: None)
    assert not (tmp_path / "out").exists()


def test_an_unknown_branch_fails_before_the_weights_load(tmp_path, tiny_path):
    import shutil

    from evalkit import EvalkitError, run
    from evalkit.engine.family_engine import REGISTRY

    copy = shutil.copytree(tiny_path, tmp_path / "family")  # a checkpoint this process has not loaded
    loads = list(REGISTRY.loads)
    with pytest.raises(EvalkitError, match=r"unknown branch 'E9B'; valid branches are: all, E111K \(layer 2\)"):
        run(model=str(copy), branches="E9B", suites="stem", out=str(tmp_path / "out"), echo=lambda s: None)
    assert REGISTRY.loads == loads and not (tmp_path / "out").exists()


def test_cuda_without_a_gpu_is_one_line(tmp_path):
    import torch

    from evalkit.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = CliRunner().invoke(main, ["run", "--device", "cuda", "--out", str(tmp_path)])
    assert result.exit_code == 2 and not (tmp_path / "results").exists()
    assert result.output.strip().splitlines() == [
        f"error: device cuda asked for, but this machine has no usable CUDA GPU (torch {torch.__version__}); pass "
        "--device cpu, or run on a GPU machine"
    ]


def test_a_plain_checkpoint_is_named_once(tmp_path, tiny_path):
    from evalkit import load_family, run

    plain = load_family(tiny_path).export_branch("E111K", tmp_path / "e111k")
    result = run(model=str(plain), suites="stem", limit=1, out=str(tmp_path / "out"), echo=lambda s: None)
    (model,) = result.record.models
    assert (model.abbr, model.name) == ("e111k", "e111k")
    assert sorted(p.name for p in (result.run_dir / "predictions").iterdir()) == ["e111k"]


def test_limit_note_counts_groups():
    from evalkit.evaluation.plan import _limit_note

    datasets = [{"abbr": a} for a in ("lukaemon_mmlu_astronomy", "lukaemon_mmlu_anatomy", "bbh-navigate", "gsm8k")]
    assert _limit_note(1, datasets) == (
        "limit: the first 1 item of each dataset, and of each group of MMLU "
        "(2 subjects), BBH (1 task), whose scores average their groups: at most 4 "
        "items per model"
    )
    assert _limit_note(3, [{"abbr": "gsm8k"}]) == "limit: the first 3 items of each dataset: at most 3 items per model"


def test_ctrl_c_keeps_the_finished_tasks_and_prints_the_resume_command(tmp_path):
    """SIGINT once a task has finished: exit 130, and one line saying exactly how to finish the run."""
    out = tmp_path / "my runs"
    # The signal goes once the first inference task has written its predictions, with many tasks (inference,
    # then every evaluation) still to run at the default 15 items: it lands mid-run however fast the family
    # answers. (Waiting for the first evaluation's file instead raced the run's last few seconds.)
    cmd = [sys.executable, "-m", "evalkit", "run", "--suites", "stem,general", "--branches", BRANCHES]
    cmd += ["--max-out-len", "48", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        first = _wait_for(lambda: sorted(out.glob("results/*/predictions/*/*.json")), proc, timeout=240)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_id = first[0].parents[2].name
    assert proc.returncode == 130
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: run {run_id} interrupted after ")
    assert last.endswith(f"finish it with: python -m evalkit run --out '{out}' --resume {run_id}")
    assert "Traceback" not in stderr and "Aborted!" not in stderr
