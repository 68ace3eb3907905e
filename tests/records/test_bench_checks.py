"""A bench record loads only when every field holds what its annotation says: a bool is not a number,
NaN and infinity are not numbers, no measurement is negative, and containers are the right kind."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.records.bench import (
    AttainedBandwidth,
    BenchRecord,
    BenchRow,
    Comparison,
    Environment,
    Flag,
    Machine,
    Ratio,
    RatioEstimate,
    Series,
    SharedTrunk,
    Stats,
    TrunkDecode,
    TrunkE2E,
    bench_from_dict,
    load_bench,
    save_bench,
)
from evalkit.records.checks import RecordError

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "data" / "records" / "small.json"
NAN, INF = float("nan"), float("inf")
STATS = Stats(median=0.01, p90=0.012, p99=0.02, mean=0.011, min=0.009, max=0.021, n=10)


def record() -> BenchRecord:
    env = Environment("NVIDIA H100", "cuda", "550.54", "12.4", "2.6.0", "4.56.0", "3.11.7", None)
    row = BenchRow(
        model="ruyi-7b",
        title="AI-Flow-Ruyi-7B",
        role="ours",
        branch="E3B",
        exit_layer=11,
        num_params=3_900_000_000,
        backend="fast",
        batch_size=1,
        prompt_len=256,
        gen_len=128,
        weight_bytes=6_700_000_000,
        kv_bytes_per_row=1_000_000,
        bytes_per_token=6_701_000_000.0,
        ttft_s=STATS,
        decode_tok_s=STATS,
        mbu=0.85,
    )
    decode = TrunkDecode(1, ("E3B", "E7B"), STATS, STATS, 0.02, 1.1, 2.0, (1.05, 1.2), (1.9, 2.1), "d1")
    comparison = Comparison(
        name="d1",
        conditions=("shared", "E7B"),
        orders=(("shared", "E7B"), ("E7B", "shared")),
        series=(Series("shared", "s", (1.1, 1.2)), Series("E7B", "s", (1.0, 1.05))),
        ratios=(RatioEstimate("shared/last", "s", ("shared",), ("E7B",), 1.1, (1.05, 1.2), 0.07),),
        rounds=2,
        warmup=1,
        stopped="budget",
        elapsed_s=3.0,
        budget_s=3.0,
        target=0.05,
        seed=0,
    )
    machine = Machine("AMD EPYC", 2, 1, (2.5, 1.0, 0.5), (3.0, 1.5, 0.6))
    e2e = TrunkE2E("stem", 2, ("E3B",), ("gsm8k",), 10.0, 50.0, 5.0, True, 4, 1.0, "a", "b", "stock")
    return BenchRecord(
        run_id="r1",
        created_at="2026-01-01T00:00:00+00:00",
        command="evalkit bench",
        environment=env,
        dtype="bf16",
        config={"batch_sizes": [1]},
        protocol={"warmup": 2},
        peak_bandwidth_gbps=3350.0,
        peak_bandwidth_source="table: H100 SXM",
        rows=(row,),
        ratios=(Ratio("ruyi-7b", "E3B", 1, 3.5, 3.0),),
        shared_trunk=SharedTrunk(model="ruyi-7b", decode=(decode,), e2e=(e2e,)),
        notes=("x",),
        machine=machine,
        defaults="CPU-sized defaults",
        comparisons=(comparison,),
        flags=(Flag("machine-loaded", "machine", "load average 3.00 is above the 2 logical CPUs"),),
    )


def test_the_hand_record_round_trips(tmp_path):
    assert load_bench(save_bench(record(), tmp_path / "bench.json")) == record()


def _set(data: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value


HOSTILE = [
    ("run_id", "", "run_id '' is not a valid run id"),
    ("run_id", 3, "run_id is 3, expected text"),
    ("schema_version", True, "schema_version is True, expected a whole number"),
    ("environment", [], "environment is a list, expected an object"),
    ("environment.torch", None, "environment.torch is null, expected non-empty text"),
    ("environment.driver", 550, "environment.driver is 550, expected non-empty text or null"),
    ("config", [1], "config is a list, expected an object"),
    ("config.batch_sizes", [NAN], "config['batch_sizes'][0] is NaN, expected a finite number"),
    ("protocol", "warm", "protocol is 'warm', expected an object"),
    ("peak_bandwidth_gbps", True, "peak_bandwidth_gbps is True, expected a number or null"),
    ("peak_bandwidth_gbps", INF, "peak_bandwidth_gbps is Infinity, expected a number or null"),
    ("peak_bandwidth_gbps", -1, "peak_bandwidth_gbps is -1, expected a number >= 0"),
    ("peak_bandwidth_gbps", 0, "peak_bandwidth_gbps is 0, expected a bandwidth above 0"),
    ("rows", {}, "rows is an object, expected a list"),
    ("rows.0", [], "rows[0] is a list, expected an object"),
    ("rows.0.role", "admin", "rows[0].role is 'admin', expected one of ours, baseline"),
    ("rows.0.backend", "vllm", "rows[0].backend is 'vllm', expected one of hf, fast"),
    ("rows.0.exit_layer", True, "rows[0].exit_layer is True, expected a whole number"),
    ("rows.0.exit_layer", -1, "rows[0].exit_layer is -1, expected a whole number >= 0"),
    ("rows.0.num_params", 1e999, "rows[0].num_params is Infinity, expected a whole number"),
    ("rows.0.batch_size", 0, "rows[0].batch_size is 0, expected a whole number >= 1"),
    ("rows.0.batch_size", 2.0, "rows[0].batch_size is 2.0, expected a whole number"),
    ("rows.0.weight_bytes", -5, "rows[0].weight_bytes is -5, expected a whole number >= 0"),
    ("rows.0.bytes_per_token", NAN, "rows[0].bytes_per_token is NaN, expected a number"),
    ("rows.0.bytes_per_token", False, "rows[0].bytes_per_token is False, expected a number"),
    ("rows.0.mbu", "85%", "rows[0].mbu is '85%', expected a number or null"),
    ("rows.0.ttft_s", 0.01, "rows[0].ttft_s is 0.01, expected an object"),
    ("rows.0.ttft_s.median", INF, "rows[0].ttft_s.median is Infinity, expected a number"),
    ("rows.0.ttft_s.n", True, "rows[0].ttft_s.n is True, expected a whole number"),
    ("rows.0.ttft_s.n", 0, "rows[0].ttft_s.n is 0, expected a whole number >= 1"),
    ("rows.0.ttft_s.min", 1.0, "rows[0].ttft_s is not ordered as statistics are"),
    ("rows.0.ttft_s.extra", 1, "rows[0].ttft_s has 'extra', which this evalkit does not know"),
    ("rows.0.error", "", "rows[0].error is '', expected non-empty text or null"),
    ("ratios.0.decode_speedup", "3.5x", "ratios[0].decode_speedup is '3.5x', expected a number"),
    ("ratios.0.batch_size", None, "ratios[0].batch_size is null, expected a whole number"),
    ("shared_trunk", [], "shared_trunk is a list, expected an object"),
    ("shared_trunk.decode.0.branches", "E3B", "shared_trunk.decode[0].branches is 'E3B', expected a list"),
    ("shared_trunk.decode.0.branches.0", 3, "shared_trunk.decode[0].branches[0] is 3, expected non-empty text"),
    ("shared_trunk.decode.0.separate_step_s", NAN, "shared_trunk.decode[0].separate_step_s is NaN"),
    ("shared_trunk.e2e.0.predictions_identical", 1, "shared_trunk.e2e[0].predictions_identical is 1, expected true"),
    ("shared_trunk.e2e.0.limit", 0, "shared_trunk.e2e[0].limit is 0, expected a whole number >= 1"),
    ("shared_trunk.notes", [None], "shared_trunk.notes[0] is null, expected non-empty text"),
    ("notes", "x", "notes is 'x', expected a list"),
    ("ratios.0.decode_speedup_ci", [1.0], "ratios[0].decode_speedup_ci has 1 values, expected an interval"),
    ("ratios.0.decode_speedup_ci", [2.0, 1.0], "ratios[0].decode_speedup_ci is [2, 1], expected low <= high"),
    ("ratios.0.decode_speedup_ci", [NAN, 1.0], "ratios[0].decode_speedup_ci[0] is NaN, expected a number"),
    (
        "shared_trunk.decode.0.decode_shared_over_last_ci",
        "1.05-1.2",
        "shared_trunk.decode[0].decode_shared_over_last_ci is",
    ),
    ("machine.load_before", [1.0, 2.0], "machine.load_before has 2 values, expected the 1, 5 and 15-minute load"),
    ("machine.logical_cpus", 0, "machine.logical_cpus is 0, expected a whole number >= 1"),
    ("machine.gpu_sm_mhz", "1980", "machine.gpu_sm_mhz is '1980', expected a whole number or null"),
    ("flags.0.kind", "looks-odd", "flags[0].kind is 'looks-odd', expected one of shared-below-one"),
    ("comparisons.0.stopped", "bored", "comparisons[0].stopped is 'bored', expected one of converged"),
    ("comparisons.0.rounds", 3, "comparisons[0].orders must hold 3 rounds, each running every condition once"),
    ("comparisons.0.orders.1", ["E7B", "E7B"], "comparisons[0].orders must hold 2 rounds, each running every"),
    ("comparisons.0.series.0.values", [1.0], "comparisons[0].series[0] must name one of the conditions and hold"),
    ("comparisons.0.series.0.condition", "E3B", "comparisons[0].series[0] must name one of the conditions"),
    ("comparisons.0.ratios.0.denominator", ["E5B"], "comparisons[0].ratios[0] names a condition the comparison"),
    ("comparisons.0.ratios.0.ci", [1.0, 2.0, 3.0], "comparisons[0].ratios[0].ci has 3 values, expected an interval"),
]


@pytest.mark.parametrize(("field", "value", "message"), HOSTILE, ids=[f"{f}={v!r}" for f, v, _ in HOSTILE])
def test_a_hostile_field_is_one_line_naming_it_and_exit_2(tmp_path, field, value, message):
    data = json.loads(json.dumps(asdict(record())))
    _set(data, field, value)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    res = CliRunner().invoke(main, ["report", str(SMALL), "--bench", str(path), "--out", str(tmp_path / "rep")])
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert lines[0].startswith(f"error: bench record {path}: {message}"), lines[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[" * 100_000, "is nested too deeply to read"),
        (b'{"schema": "evalkit.bench", "\xc3\x28": 1}', "is not UTF-8 text"),
        ('{"schema": "evalkit.bench", "schema_version": 1}', "is not an evalkit bench record (it lacks 'run_id'"),
    ],
)
def test_a_file_that_is_no_bench_record_is_one_line(tmp_path, content, message):
    path = tmp_path / "bench.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    res = CliRunner().invoke(main, ["report", str(SMALL), "--bench", str(path), "--out", str(tmp_path / "rep")])
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and message in lines[0], res.output


def test_attained_bandwidth_out_of_its_range_or_in_an_old_version_is_refused():
    attained = AttainedBandwidth(3000.0, 2900.0, 3050.0, 1 << 30, 20, "device-to-device copy")
    data = json.loads(json.dumps(asdict(replace(record(), attained_bandwidth=attained))))
    assert bench_from_dict(data).attained_bandwidth == attained
    for bad in ({"gbps": 4000.0}, {"low_gbps": 0.0, "gbps": 0.0, "high_gbps": 0.0}):
        with pytest.raises(RecordError, match=r"attained_bandwidth is not a bandwidth above 0 .*low_gbps <= gbps"):
            bench_from_dict({**data, "attained_bandwidth": {**data["attained_bandwidth"], **bad}})
    rows = [{**data["rows"][0], "mbu_attained": 0.5}, *data["rows"][1:]]
    assert bench_from_dict({**data, "rows": rows}).rows[0].mbu_attained == 0.5
    with pytest.raises(RecordError, match=r"rows\[0\].mbu_attained needs the attained_bandwidth"):
        bench_from_dict({**data, "rows": rows, "attained_bandwidth": None})
    with pytest.raises(RecordError, match=r"rows\[0\].mbu_attained is a version 3 field, but schema_version is 2"):
        bench_from_dict({**data, "rows": rows, "attained_bandwidth": None, "schema_version": 2})
    old = data | {"schema_version": 2}
    with pytest.raises(RecordError, match="attained_bandwidth is a version 3 field, but schema_version is 2"):
        bench_from_dict(old)
