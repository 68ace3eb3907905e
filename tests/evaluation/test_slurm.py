"""`evalkit run --runner slurm` on a real single-node Slurm cluster (scripts/slurm_local.sh), and the
Slurm runner's bad input: no srun, an unknown partition, a job Slurm kills."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opencompass")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "slurm_local.sh"
RUN = ["--suites", "stem", "--limit", "2", "--branches", "2,7", "--batch-size", "2"]  # 2 branches x 3 datasets
SMALL = dict(suites="stem", limit=2, branches="2,7", batch_size=2)  # the same, as evalkit.run's arguments


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> dict[str, str]:
    """The environment of a running local cluster: started here (and stopped after) unless it already ran."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a local Slurm cluster needs root on Linux (slurm_local.sh installs and runs slurmctld, slurmd)")
    env = dict(os.environ)
    env.setdefault("EVALKIT_SLURM_DIR", str(tmp_path_factory.mktemp("slurm")))
    running = subprocess.run([SCRIPT, "status"], env=env, capture_output=True).returncode == 0
    try:
        started = subprocess.run([SCRIPT, "start"], env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip("scripts/slurm_local.sh start did not finish in 10 minutes")
    if started.returncode != 0:
        pytest.skip(f"no local Slurm cluster: {started.stderr.strip().splitlines()[-1:]}")
    (conf,) = re.findall(r"export SLURM_CONF=(\S+)", started.stdout)
    env["SLURM_CONF"] = conf
    yield env
    if not running:
        subprocess.run([SCRIPT, "stop"], env=env, capture_output=True, timeout=120)


def _evalkit(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    env = dict(env, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "evalkit", "run", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _predictions(out: Path) -> dict[str, str]:
    (run_dir,) = (out / "results").iterdir()
    root = run_dir / "predictions"
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.json"))}


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> dict[str, str]:
    from evalkit import run

    out = tmp_path_factory.mktemp("in-process")
    run(**SMALL, out=str(out), echo=_quiet)
    return _predictions(out)


@pytest.fixture
def on_cluster(slurm, monkeypatch) -> None:
    """evalkit.run in this process, its srun jobs on the local cluster."""
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])


@pytest.mark.slurm
@pytest.mark.slow
def test_a_slurm_run_predicts_what_the_in_process_run_does(slurm, in_process, tmp_path):
    done = _evalkit([*RUN, "--runner", "slurm", "--partition", "debug", "--out", str(tmp_path)], tmp_path, slurm)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "on 1 worker (Slurm partition debug)" in done.stdout
    assert _predictions(tmp_path) == in_process
    jobs = subprocess.run(["scontrol", "show", "jobs", "--oneliner"], env=slurm, capture_output=True, text=True)
    ran = {
        (re.search(r"JobName=OpenICL(Infer|Eval)\[", line).group(1), re.search(r"JobState=(\w+)", line).group(1))
        for line in jobs.stdout.splitlines()
        if f"WorkDir={tmp_path} " in line and "JobName=OpenICL" in line
    }
    assert ran == {("Infer", "COMPLETED"), ("Eval", "COMPLETED")}  # the tasks really ran as Slurm jobs
    assert sorted(os.listdir(tmp_path)) == ["results"]  # the runner's scratch (tmp/) is gone


@pytest.mark.slurm
@pytest.mark.slow
def test_a_job_slurm_kills_is_one_line_and_resume_finishes_the_run(on_cluster, in_process, tmp_path):
    from evalkit import run
    from evalkit.evaluation.execute import TasksFailed

    slurm = dict(runner="slurm", partition="debug", max_num_workers=2, out=str(tmp_path), echo=_quiet)
    with pytest.raises(TasksFailed) as failed:
        run(**SMALL, **slurm, slurm_args=["--mem=40M"], slurm_retries=0)

    assert len(failed.value.failures) == 2  # both inference tasks (the family's 3 datasets on 2 workers)
    assert all("Slurm killed it for exceeding its memory limit" in line for line in failed.value.failures)
    (run_dir,) = (tmp_path / "results").iterdir()
    assert str(failed.value).endswith(
        f"finish the run with: python -m evalkit run --out {tmp_path} --resume {run_dir.name}"
    )
    assert not (run_dir / "results.json").exists()

    resumed = run(resume=run_dir.name, out=str(tmp_path), slurm_args=["--mem=3G"], echo=_quiet)

    assert _predictions(tmp_path) == in_process
    assert list(resumed.record.provenance.configs.run["slurm_args"]) == ["--mem=3G"]


@pytest.mark.slurm
def test_an_unknown_partition_is_one_line_before_anything_runs(on_cluster, tmp_path):
    from evalkit import run
    from evalkit.errors import EvalkitError

    with pytest.raises(EvalkitError) as error:
        run(**SMALL, runner="slurm", partition="gpu-a100", out=str(tmp_path), echo=_quiet)
    assert (
        str(error.value) == "Slurm has no partition 'gpu-a100' (its partitions: debug); pass one of them to --partition"
    )
    assert not (tmp_path / "results").exists()


def test_slurm_without_srun_is_one_line_before_anything_runs(tmp_path, monkeypatch):
    from evalkit import run
    from evalkit.errors import EvalkitError

    monkeypatch.setenv("PATH", str(tmp_path))  # no srun, sinfo or sbatch here
    with pytest.raises(
        EvalkitError, match=r"^--runner slurm starts each task with Slurm's srun, which is not on the PATH"
    ):
        run(**SMALL, runner="slurm", out=str(tmp_path), echo=_quiet)
    assert not (tmp_path / "results").exists()
