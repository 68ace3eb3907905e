"""Plausibility flags fire on planted impossible timings, and stay quiet on plausible ones; the machine's
state is read from the files and tools that report it."""

from __future__ import annotations

import numpy as np

from evalkit import bench_markdown
from evalkit.benchmark.config import CPU_SIZED, GPU_SIZED, BenchConfig
from evalkit.benchmark.interleave import RatioSpec, Stopping, interleave, ratio_of
from evalkit.benchmark.machine import cpu_model, load_average, parse_clocks
from evalkit.benchmark.plausible import all_flags, cv_flags, load_flags, speed_flags, trunk_flags
from evalkit.records.bench import (
    BenchRecord,
    Environment,
    Machine,
    Ratio,
    SharedTrunk,
    Stats,
    TrunkDecode,
    TrunkScoring,
)

QUIET = Machine("AMD EPYC", 2, 1, (0.5, 0.4, 0.3), (1.0, 0.5, 0.3))


def stats(x: float) -> Stats:
    return Stats(x, x, x, x, x, x, 5)


def measured(true: dict[str, float], noise: float, seed: int = 0):
    """A comparison of synthetic conditions: each value true[c] x lognormal noise."""
    rng = np.random.default_rng(seed)
    conds = {k: (lambda v=v: v * float(np.exp(rng.normal(0, noise)))) for k, v in true.items()}
    names = [k for k in true if k != "shared"]
    specs = [
        RatioSpec("shared/last", ("shared",), (names[-1],)),
        RatioSpec("separate/last", tuple(names), (names[-1],)),
    ]
    return interleave(conds, specs, stopping=Stopping(min_rounds=20, budget_s=1e9, max_rounds=20), warmup=0)


def scoring_row(c) -> TrunkScoring:
    shared, separate = ratio_of(c, "shared/last"), ratio_of(c, "separate/last")
    return TrunkScoring(
        1, 48, ("E3B", "E7B"), stats(1), stats(1), 2.0, shared.value, separate.value, shared.ci, separate.ci, c.name
    )


def test_an_impossible_shared_ratio_is_flagged_and_printed():
    # Planted: all branches together "faster" than the last alone, and slower than each alone, summed.
    fast_shared = measured({"shared": 0.7, "E3B": 0.5, "E7B": 1.0}, noise=0.02)
    slow_shared = measured({"shared": 2.0, "E3B": 0.5, "E7B": 1.0}, noise=0.02, seed=1)
    plausible = measured({"shared": 1.2, "E3B": 0.5, "E7B": 1.0}, noise=0.02, seed=2)
    kinds = lambda row: [f.kind for f in trunk_flags(SharedTrunk("m", scoring=(row,)))]  # noqa: E731
    assert kinds(scoring_row(fast_shared)) == ["shared-below-one"]
    assert kinds(scoring_row(slow_shared)) == ["shared-above-separate"]
    assert kinds(scoring_row(plausible)) == []
    decode = TrunkDecode(4, ("E3B", "E7B"), stats(1), stats(1), 2.0, 0.93, 2.0, (0.9, 0.96), (1.9, 2.1), "d")
    flags = trunk_flags(SharedTrunk("m", decode=(decode,)))
    assert [(f.kind, f.where) for f in flags] == [("shared-below-one", "decode batch 4")]
    assert "0.93x, below 1x, which is impossible" in flags[0].message
    record = _record(SharedTrunk("m", scoring=(scoring_row(fast_shared),)), (fast_shared,))
    assert [f.kind for f in record.flags] == ["shared-below-one"]
    assert "Warning (shared-below-one): scoring batch 1: all branches together / last alone is 0.70x" in (
        bench_markdown(record)
    )


def test_fast_slower_than_hf_beyond_the_interval():
    slower = Ratio("m", "E3B", 1, 0.8, 0.85, (0.75, 0.86), (0.8, 0.9), "c")
    overlapping = Ratio("m", "E3B", 4, 0.95, 0.97, (0.9, 1.02), (0.9, 1.05), "c")
    version_1 = Ratio("m", "E3B", 8, 0.5, 0.5)  # no interval: nothing to judge "beyond" by
    flags = speed_flags([slower, overlapping, version_1])
    assert [(f.kind, f.where) for f in flags] == [("fast-slower-than-hf", "m E3B batch 1")]


def test_a_high_coefficient_of_variation_is_flagged():
    noisy = measured({"shared": 1.2, "E3B": 0.5, "E7B": 1.0}, noise=0.4)
    steady = measured({"shared": 1.2, "E3B": 0.5, "E7B": 1.0}, noise=0.02)
    flags = cv_flags([noisy, steady], max_cv=0.15)
    assert len(flags) == 1 and flags[0].kind == "high-cv" and flags[0].where == noisy.name
    assert "shared" in flags[0].message and "over 20 rounds" in flags[0].message
    assert not cv_flags([noisy], max_cv=5.0)


def test_a_loaded_machine_is_flagged_from_its_load_average(tmp_path):
    loaded = Machine("AMD EPYC", 2, 1, (1.5, 1.0, 0.5), (6.97, 3.0, 1.0))
    assert [f.kind for f in load_flags(loaded)] == ["machine-loaded"]
    assert "6.97" in load_flags(loaded)[0].message and not load_flags(QUIET)
    assert not load_flags(Machine("x", 2, 1))  # no /proc/loadavg: nothing to judge
    path = tmp_path / "loadavg"
    path.write_text("2.62 1.77 0.85 6/117 11556\n")
    assert load_average(path) == (2.62, 1.77, 0.85) and load_average(tmp_path / "absent") == ()
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n")
    assert cpu_model(info) == "AMD EPYC 7B13"


def test_gpu_clocks_parse_from_nvidia_smi():
    assert parse_clocks("1980, 1980, 2619, 2619\n") == (1980, 1980, 2619, 2619)
    assert parse_clocks("345, 1980, [N/A], 2619\n1980, 1980, 2619, 2619\n") == (345, 1980, None, 2619)
    assert parse_clocks("") == (None, None, None, None)


def test_defaults_fit_the_device_and_flags_override_them():
    cpu, sizing = BenchConfig(iterations=7).sized("cpu")
    assert sizing is CPU_SIZED and cpu.iterations == 7 and cpu.given == ("iterations",)
    assert (cpu.prompt_len, cpu.gen_len, cpu.batch_sizes, cpu.dtype, cpu.threads) == (32, 16, (1, 4), "fp32", 1)
    assert "CPU-sized defaults (the device is a CPU)" in sizing.describe(cpu) and "given: --iterations" in (
        sizing.describe(cpu)
    )
    gpu, sizing = BenchConfig(shared_trunk=True, e2e_suite="auto").sized("cuda")
    assert sizing is GPU_SIZED and gpu.batch_sizes == (1, 8) and gpu.dtype == "bf16" and gpu.threads is None
    assert (
        gpu.e2e_suite == "stem" and BenchConfig(shared_trunk=True, e2e_suite="auto").sized("cpu")[0].e2e_suite is None
    )
    assert BenchConfig(e2e_suite="stem").sized("cuda")[0].e2e_suite is None  # end to end only with --shared-trunk


def _record(trunk: SharedTrunk, comparisons) -> BenchRecord:
    env = Environment("cpu (x86_64, 1 threads)", "cpu", None, None, "2.13", "5.24", "3.11", None)
    return BenchRecord(
        run_id="r1",
        created_at="2026-12-02T00:00:00+00:00",
        command="evalkit bench --shared-trunk",
        environment=env,
        dtype="fp32",
        config={},
        protocol={},
        peak_bandwidth_gbps=None,
        peak_bandwidth_source="unknown",
        shared_trunk=trunk,
        machine=QUIET,
        comparisons=tuple(comparisons),
        flags=all_flags(machine=QUIET, comparisons=comparisons, trunk=trunk),
    )
