"""`bench --speculative`: every (draft, k) against the target alone, timed in interleaved rounds, with
acceptance, tokens per target step and per-sequence identity to the target's own greedy output."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import evalkit
from evalkit import BenchConfig, EvalkitError, bench, bench_markdown, load_bench, load_family, make_tiny
from evalkit.benchmark.speculative import choose


@pytest.fixture(scope="module")
def twin_path(tmp_path_factory):
    return make_tiny(tmp_path_factory.mktemp("twin") / "ckpt", refine=0.1)


SMALL_RESULTS = Path(__file__).resolve().parents[1] / "data" / "records" / "small.json"
SMALL = dict(device="cpu", dtype="fp32", prompt_len=8, gen_len=12, iterations=3, warmup=1, time_budget=1.0)


def test_every_draft_and_k_against_the_target_alone(twin_path, tmp_path):
    config = BenchConfig(model=str(twin_path), speculative=True, ks=(1, 3), batch_sizes=(1, 3), out=str(tmp_path / "b"))
    record, path = bench(replace(config, **SMALL))
    assert load_bench(path) == record and record.schema_version == 3
    spec = record.speculative
    assert spec is not None and spec.target == "E297K" and not record.rows
    assert [b.batch_size for b in spec.baselines] == [1, 3]
    cells = [(c.draft, c.k, c.batch_size) for c in spec.cells]
    assert cells == [(d, k, b) for b in (1, 3) for d in ("E111K", "E186K", "E260K") for k in (1, 3)]
    comparisons = {c.name: c for c in record.comparisons}
    assert len(comparisons) == 2  # one per batch size, every condition in every round
    for c in spec.cells:
        assert len(c.identical_to_target) == c.batch_size and all(c.identical_to_target)
        assert 0 < c.acceptance_rate < 1 and 1 < c.tokens_per_step <= c.k + 1
        assert c.speedup_ci[0] <= c.speedup <= c.speedup_ci[1]
        assert c.tok_s == pytest.approx(c.batch_size * 12 / c.spec_s.median)
        rounds = comparisons[c.comparison]
        assert rounds.rounds >= 3 and set(rounds.conditions) == {"target", *(f"{d} k={k}" for d, k, _ in cells)}
    text = bench_markdown(record)
    assert "### Self-speculative decoding" in text and "Timings are CPU timings" in text
    assert "tok/s (CPU)" in text and "| E111K   | 3   | 3       |" in text and "3/3" in text
    assert "Best at batch 1: draft E" in text and "Best at batch 3: draft E" in text
    report = Path(evalkit.report([str(SMALL_RESULTS)], str(tmp_path / "rep"), bench=[str(path)]))
    body = (report if report.is_file() else report / "report.md").read_text()
    assert "#### Self-speculative decoding" in body and "Timings are CPU timings" in body


def test_drafts_and_target_are_chosen_from_the_branches(twin_path):
    family = load_family(twin_path)
    drafts, target = choose(family, "all", "all")
    assert target.name == "E297K" and [d.name for d in drafts] == ["E111K", "E186K", "E260K"]
    drafts, target = choose(family, "E111K,E260K", "all")
    assert target.name == "E260K" and [d.name for d in drafts] == ["E111K", "E186K"]
    with pytest.raises(EvalkitError, match="--draft E297K does not exit before the target E260K"):
        choose(family, "E260K", "E111K,E297K")
    with pytest.raises(EvalkitError, match="the target E111K is the shallowest branch"):
        choose(family, "E111K", "all")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--speculative", "--shared-trunk"], "--speculative and --shared-trunk are separate benchmarks"),
        (["--speculative", "--k", "0,2"], "--k takes positive numbers of drafted tokens"),
        (["--speculative", "--k", ""], "--k takes positive numbers of drafted tokens"),
        (["--speculative", "--shape", "yi-6b", "--random-weights"], "--speculative needs familial shapes"),
    ],
)
def test_bad_speculative_options_are_one_line(args, message):
    proc = subprocess.run([sys.executable, "-m", "evalkit", "bench", *args], capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr


def test_the_cli_runs_one_draft_and_k(twin_path, tmp_path):
    args = ["--speculative", "--model", str(twin_path), "--draft", "E186K", "--k", "2,2", "--batch-sizes", "2"]
    args += ["--prompt-len", "8", "--gen-len", "6", "--iterations", "2", "--time-budget", "1", "--out", str(tmp_path)]
    proc = subprocess.run([sys.executable, "-m", "evalkit", "bench", *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    record = load_bench(tmp_path / "bench.json")
    assert record.config["ks"] == [2] and record.config["speculative"] is True
    assert [(c.draft, c.k, c.batch_size) for c in record.speculative.cells] == [("E186K", 2, 2)]
    assert "### Self-speculative decoding" in proc.stdout and "| E186K   | 2   | 2       |" in proc.stdout
