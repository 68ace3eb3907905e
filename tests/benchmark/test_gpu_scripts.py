"""The scripts behind the README's GPU figures run here on a CPU, so a GPU's first call is not their first run."""

import json
import os
import subprocess
import sys
from pathlib import Path

from evalkit.load.family import load_family

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _profile(tiny_path, out, *extra):
    cmd = [sys.executable, "scripts/profile_step.py", "--model", str(tiny_path), "--device", "cpu", "--dtype", "fp32"]
    cmd += ["--mode", "eager", "--prompt-len", "8", "--steps", "2", "--out", str(out), *extra]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)


def test_profile_step_summarises_the_ops_of_a_decode_step(tiny_path, tmp_path):
    done = _profile(tiny_path, tmp_path, "--branch", "first")
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "profile.json").read_text())
    first = load_family(tiny_path).branches[0].name
    assert summary["branch"] == first and summary["steps"] == 2
    assert summary["launches_per_step"] > 0 and summary["time_per_step_us"] > 0
    assert any("linear" in row["name"] or "mm" in row["name"] for row in summary["top"])
    assert (tmp_path / "profile.txt").read_text().strip()


def test_profile_step_names_the_branches_when_one_is_unknown(tiny_path, tmp_path):
    done = _profile(tiny_path, tmp_path, "--branch", "E9B")
    assert done.returncode == 2
    names = ", ".join(b.name for b in load_family(tiny_path).branches)
    assert f"no branch 'E9B'; this family has {names}" in done.stderr.splitlines()[-1]


def test_gpu_check_refuses_an_unknown_flag(tmp_path):
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh", str(tmp_path), "--small"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2 and "the only flag is --shrink" in done.stderr
