"""The benchmark: its record, its arithmetic (bytes, MBU, percentiles), real shapes, and the CLI on CPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from evalkit import BenchConfig, BenchRecord, EvalkitError, Family, bench, bench_markdown, load_bench, load_family
from evalkit.benchmark.measure import mbu, peak_bandwidth, summarize, traffic
from evalkit.catalog.shapes import SHAPES, Shape
from evalkit.engine.generate import generate_fast
from evalkit.load.random_weights import random_family, tensor_shapes
from evalkit.records.bench import (
    AttainedBandwidth,
    BenchRow,
    Environment,
    Ratio,
    SharedTrunk,
    Stats,
    TrunkDecode,
    save_bench,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "records"
STATS = Stats(median=0.01, p90=0.012, p99=0.02, mean=0.011, min=0.009, max=0.021, n=10)
SMALL = dict(batch_sizes=(1, 2), prompt_len=8, gen_len=4, iterations=2, warmup=1, dtype="fp32", time_budget=1.0)


def hand_record() -> BenchRecord:
    env = Environment(
        device="NVIDIA H100 80GB HBM3",
        device_type="cuda",
        driver="550.54",
        cuda="12.4",
        torch="2.6.0",
        transformers="5.23.0",
        python="3.11.7",
        git_revision="abc",
    )
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
        tpot_s=STATS,
        decode_tok_s=STATS,
        e2e_s=STATS,
        mbu=0.85,
        mbu_attained=0.95,
        peak_allocated_bytes=24 * 10**9,
        peak_reserved_bytes=25 * 10**9,
        min_vram_bytes=9 * 10**9,
    )
    trunk = SharedTrunk(
        model="ruyi-7b",
        decode=(
            TrunkDecode(
                batch_size=1,
                branches=("E3B", "E7B"),
                shared_step_s=STATS,
                last_step_s=STATS,
                separate_step_s=0.02,
                decode_shared_over_last=1.0,
                decode_separate_over_last=2.0,
            ),
        ),
        notes=("scoring not measured: x",),
    )
    oom = replace(
        row,
        backend="hf",
        error="out of memory",
        ttft_s=None,
        tpot_s=None,
        decode_tok_s=None,
        e2e_s=None,
        mbu=None,
        mbu_attained=None,
    )
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
        rows=(row, oom),
        ratios=(Ratio("ruyi-7b", "E3B", 1, 3.5, 3.0),),
        shared_trunk=trunk,
        attained_bandwidth=AttainedBandwidth(3000.0, 2900.0, 3050.0, 1 << 30, 20, "device-to-device copy"),
    )


def test_record_round_trip_and_required_keys(tmp_path):
    record = hand_record()
    path = save_bench(record, tmp_path / "bench.json")
    assert load_bench(path) == record
    data = json.loads(path.read_text())
    assert data["schema"] == "evalkit.bench" and data["schema_version"] == 3
    for key in ("environment", "dtype", "command", "protocol", "rows", "ratios", "peak_bandwidth_gbps"):
        assert key in data
    assert {"device", "driver", "torch", "transformers"} <= set(data["environment"])
    assert {"num_params", "bytes_per_token", "ttft_s", "tpot_s", "decode_tok_s", "e2e_s", "mbu"} <= set(data["rows"][0])
    assert data["shared_trunk"]["decode"][0]["decode_shared_over_last"] == 1.0
    text = bench_markdown(record)
    assert "85.0%" in text and "3.50x" in text and "> device" in text and "9.0 GB" in text
    assert "datasheet peak 3350 GB/s (table: H100 SXM); attained 3000 GB/s (range 2900-3050" in text
    lines = text.splitlines()
    assert (
        "| ruyi-7b | E3B      | 3.90B    | fast      | 1       | 10.0          | 10.00 / 20.00         "
        "| 0.0            | 0.010   | 85.0%           | 95.0%          |"
    ) in lines
    assert (
        "| ruyi-7b | E3B      | 3.90B    | hf        | 1       | out of memory |                       "
        "|                |         |                 |                |"
    ) in lines
    assert "| ruyi-7b | E3B      | fast      | 9.0 GB    |" in lines
    assert "| ruyi-7b | E3B      | hf        | > device  |" in lines


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(schema="evalkit.results"), "is not an evalkit bench record"),
        (lambda d: d.update(schema_version=4), r"schema_version 4 is not supported \(this evalkit reads 1, 2, 3\)"),
        (lambda d: d["rows"][0].update(speed=1), r"rows\[0\] has 'speed', which this evalkit does not know"),
        (lambda d: d.pop("environment"), r"is not an evalkit bench record \(it lacks 'environment'\)"),
        (lambda d: d["rows"][0].update(decode_tok_s=217.9), r"rows\[0\].decode_tok_s is 217.9, expected an object"),
        (lambda d: d["rows"][0].update(batch_size="1"), r"rows\[0\].batch_size is '1', expected a whole number"),
        (lambda d: d.update(peak_bandwidth_gbps="3350"), "peak_bandwidth_gbps is '3350', expected a number or null"),
    ],
)
def test_bad_records_are_one_clear_error(tmp_path, edit, message):
    data = hand_record().to_dict()
    edit(data)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    with pytest.raises(EvalkitError, match=message):
        load_bench(path)
    with pytest.raises(EvalkitError, match="does not exist"):
        load_bench(tmp_path / "missing.json")


@pytest.mark.parametrize("name", ["bench_v1_rows.json", "bench_v1_trunk.json"])
def test_version_1_records_still_load_and_render(name):
    # Written by `evalkit bench` before intervals existed (schema version 1).
    record = load_bench(DATA / name)
    assert record.schema_version == 1 and record.machine is None and not record.comparisons
    text = bench_markdown(record)
    assert "[95% CI]" in text and "Warning" not in text and "Defaults:" not in text
    if record.ratios:
        assert record.ratios[0].decode_speedup_ci is None and f"| {record.ratios[0].decode_speedup:.2f}x  " in text
    else:
        d = record.shared_trunk.decode[0]
        assert d.decode_shared_over_last_ci is None and f"| {d.decode_shared_over_last:.2f}x  " in text


def test_version_2_records_still_load_and_render():
    # Written by `evalkit bench` with intervals, before the speculative section (schema version 2).
    record = load_bench(DATA / "bench_v2_rows.json")
    assert record.schema_version == 2 and record.speculative is None and record.comparisons and record.ratios
    assert "[95% CI]" in bench_markdown(record) and "Self-speculative" not in bench_markdown(record)


def test_percentiles():
    s = summarize(list(range(1, 101)))
    assert (s.median, s.p90, s.p99) == pytest.approx((50.5, 90.1, 99.01))
    assert (s.min, s.max, s.n, s.mean) == (1, 100, 100, 50.5)
    assert summarize([3.0]).p99 == 3.0
    with pytest.raises(ValueError):
        summarize([])


def test_mbu_on_a_known_case():
    # E7B-sized bf16 weights (7.07e9 params read) at 200 tok/s on 3.35 TB/s: 1.414e10 x 200 / 3.35e12.
    assert mbu(1.414e10, 200.0, 3350.0) == pytest.approx(0.8442, abs=1e-4)
    assert mbu(1.0e9, 100.0, None) is None


@pytest.mark.parametrize(
    "name, gbps",
    [
        ("NVIDIA H100 80GB HBM3", 3350),
        ("NVIDIA H100 PCIe", 2000),
        ("NVIDIA H200", 4800),
        ("NVIDIA GH200 480GB", 4000),
        ("NVIDIA A100-SXM4-80GB", 2039),
        ("NVIDIA A100 80GB PCIe", 1935),
        ("NVIDIA A100-SXM4-40GB", 1555),
        ("NVIDIA L40S", 864),
        ("NVIDIA GeForce RTX 4090", 1008),
        ("NVIDIA L4", 300),
        ("cpu (x86_64, 2 threads)", None),
    ],
)
def test_peak_bandwidth_from_the_device_name(name, gbps):
    assert peak_bandwidth(name)[0] == gbps


def test_bytes_per_token_follow_the_parameters(tiny_path):
    family = load_family(tiny_path)
    cfg = family.files.config
    rows = []
    for b in family.branches:
        model = family.branch_model(b)
        # What a decode step reads: every parameter but the embedding table, of which one row per token.
        layers_norm_head = sum(p.numel() for n, p in model.named_parameters() if n != "model.embed_tokens.weight")
        read = layers_norm_head + cfg["hidden_size"]
        t = traffic(
            num_params=b.num_params,
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            tied=False,
            num_layers=b.num_layers,
            num_kv_heads=cfg["num_key_value_heads"],
            head_dim=cfg["head_dim"],
            dtype_bytes=2,
            prompt_len=256,
            gen_len=128,
        )
        assert t.weight_bytes == 2 * read
        # Keys and values: 2 tensors x layers x kv heads x head dim x 2 bytes x mean context (256 + 64).
        assert t.kv_bytes_per_row == 2 * b.num_layers * 2 * 16 * 2 * 320
        assert t.per_token(4) == (t.weight_bytes + 4 * t.kv_bytes_per_row) / 4
        rows.append(t.weight_bytes)
    assert rows == sorted(rows) and len(set(rows)) == len(rows)
    tied = traffic(
        num_params=1000,
        vocab_size=10,
        hidden_size=8,
        tied=True,
        num_layers=1,
        num_kv_heads=1,
        head_dim=8,
        dtype_bytes=4,
        prompt_len=1,
        gen_len=2,
    )
    assert tied.weight_bytes == 4000  # the head reads the shared table; it is counted once


@pytest.mark.parametrize(
    "name, billions",
    [
        ("qwen2.5-7b", 7.62),
        ("llama-3.1-8b", 8.03),
        ("qwen3-8b", 8.19),
        ("yi-6b", 6.06),
        ("yi-9b", 8.83),
        ("yi-34b", 34.39),
    ],
)
def test_baseline_shapes_have_their_published_sizes(name, billions):
    num_params = sum(math.prod(shape) for shape in tensor_shapes(SHAPES[name].config).values())
    assert num_params / 1e9 == pytest.approx(billions, abs=0.005)


def _mini(name: str, **dims) -> Shape:
    """A real shape's config with small dimensions: same architecture, same tensor layout."""
    small = dict(
        hidden_size=64,
        intermediate_size=96,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    if "head_dim" in SHAPES[name].config:
        small["head_dim"] = 16
    return Shape(f"mini-{name}", name, {**SHAPES[name].config, **small, **dims}, SHAPES[name].role)


@pytest.mark.parametrize("name", ["ruyi-7b", "llama-3.1-8b", "qwen3-8b"])
def test_random_weights_of_a_shape_decode_like_stock_generate(name):
    layers = dict(num_hidden_layers=6, early_exit_points=[1, 3, 5]) if name == "ruyi-7b" else dict(num_hidden_layers=3)
    family = random_family(_mini(name, **layers, max_window_layers=layers["num_hidden_layers"]), dtype="fp32")
    assert len(family.branches) == (3 if name == "ruyi-7b" else 1)
    ids = torch.randint(0, 512, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    for branch in family.branches:
        model = family.branch_model(branch)
        model.generation_config.eos_token_id = None
        ref = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
        assert torch.equal(generate_fast(family, branch, ids, mask, max_new_tokens=6), ref[:, 6:]), branch.name


def test_family_from_tensors_in_memory(tiny_path):
    on_disk = load_family(tiny_path)
    family = Family.from_tensors(on_disk.files.config, on_disk.tensors, name="tiny-in-memory")
    assert str(family.path) == "<tiny-in-memory>" and family.dtype == on_disk.dtype
    assert family.branches == on_disk.branches
    prompt = torch.tensor([[5, 17, 300, 42]])
    for b in family.branches:
        model = family.branch_model(b)
        assert all(p.data_ptr() in {t.data_ptr() for t in on_disk.tensors.values()} for p in model.parameters())
        torch.testing.assert_close(model(prompt).logits, on_disk.branch_model(b)(prompt).logits, rtol=0, atol=0)
    with pytest.raises(EvalkitError, match="needs early_exit_points"):
        Family.from_tensors({**on_disk.files.config, "early_exit_points": None}, on_disk.tensors, name="bad")
    with pytest.raises(EvalkitError, match="no floating-point tensors"):
        Family.from_tensors(on_disk.files.config, {}, name="empty")
    plain = on_disk.branch_state_dict("E186K")
    config = {k: v for k, v in on_disk.branch_config("E186K").to_dict().items() if k != "architectures"}
    assert [b.name for b in Family.from_tensors(config, plain, name="qwen-like").branches] == ["qwen-like"]


def test_a_model_too_big_to_load_is_a_note_and_the_rest_is_kept(tiny_path, tmp_path, monkeypatch):
    import evalkit.benchmark.main as bench_module

    real = bench_module._sources

    def sources(config, device):
        def oom():
            raise RuntimeError("CUDA out of memory. Tried to allocate 68.00 GiB")

        return [bench_module._Source("yi-34b", "Yi-34B", oom), *real(config, device)]

    monkeypatch.setattr(bench_module, "_sources", sources)
    record, path = bench(BenchConfig(**{**SMALL, "batch_sizes": (1,)}, branches="E111K", out=str(tmp_path)))
    assert record.notes == (
        f"Yi-34B: out of memory loading its fp32 weights on {record.environment.device}; not measured",
    )
    assert [r.branch for r in record.rows] == ["E111K", "E111K"] and load_bench(path) == record
    assert "Note: Yi-34B: out of memory" in bench_markdown(record)


def test_a_plain_checkpoint_benches_as_one_baseline(tiny_path, tmp_path):
    plain = load_family(tiny_path).export_branch("E186K", tmp_path / "plain")
    record, _ = bench(BenchConfig(**{**SMALL, "batch_sizes": (1,)}, model=str(plain), out=str(tmp_path / "out")))
    assert [(r.model, r.branch, r.role, r.backend) for r in record.rows] == [
        ("plain", "plain", "baseline", "hf"),
        ("plain", "plain", "baseline", "fast"),
    ]
    assert record.rows[0].num_params == load_family(tiny_path).branch("E186K").num_params


def test_bench_in_process_with_a_peak_and_shared_trunk(tiny_path, tmp_path):
    record, path = bench(
        BenchConfig(**SMALL, branches="E111K,E297K", backend="fast", peak_bandwidth=50.0, out=str(tmp_path / "a"))
    )
    assert load_bench(path) == record
    assert [(r.branch, r.batch_size) for r in record.rows] == [("E111K", 1), ("E111K", 2), ("E297K", 1), ("E297K", 2)]
    for r in record.rows:
        assert r.mbu == pytest.approx(r.bytes_per_token * r.decode_tok_s.median / 50e9)
    assert record.peak_bandwidth_source == "flag" and not record.ratios
    trunk_record, _ = bench(BenchConfig(**{**SMALL, "batch_sizes": None}, shared_trunk=True, out=str(tmp_path / "b")))
    trunk = trunk_record.shared_trunk
    assert trunk is not None and [d.batch_size for d in trunk.decode] == [1]  # the CPU-sized default
    assert trunk_record.defaults.startswith("CPU-sized defaults (the device is a CPU): prompt 8 tokens, 4 generated")
    assert trunk_record.machine is not None and trunk_record.machine.torch_threads == 1
    by_name = {c.name: c for c in trunk_record.comparisons}
    for d in trunk.decode:
        assert d.decode_shared_over_last > 0 and d.decode_separate_over_last > 1
        assert len(d.branches) == 4
        assert d.decode_shared_over_last_ci[0] <= d.decode_shared_over_last <= d.decode_shared_over_last_ci[1]
        c = by_name[d.comparison]
        assert set(c.conditions) == {"shared", *d.branches} and c.rounds >= 2 and len(c.orders) == c.rounds
        assert d.shared_step_s.n == c.rounds
    assert trunk.scoring or any("scoring" in n for n in trunk.notes)
    data = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert {"decode_shared_over_last", "decode_separate_over_last"} <= set(data["shared_trunk"]["decode"][0])


def test_bench_cli_on_cpu_writes_a_valid_record(tiny_path, tmp_path):
    args = [
        "bench",
        "--batch-sizes",
        "1,2",
        "--prompt-len",
        "8",
        "--gen-len",
        "4",
        "--iterations",
        "2",
        "--warmup",
        "1",
        "--dtype",
        "fp32",
        "--time-budget",
        "1",
        "--branches",
        "E111K,E297K",
        "--out",
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    record = load_bench(tmp_path / "bench.json")
    assert record.environment.device.startswith("cpu") and record.peak_bandwidth_gbps is None
    assert len(record.rows) == 8 and {r.backend for r in record.rows} == {"hf", "fast"}
    assert all(r.mbu is None and r.peak_allocated_bytes is None for r in record.rows)
    assert len(record.ratios) == 4 and all(r.decode_speedup > 0 for r in record.ratios)
    assert all(r.decode_speedup_ci[0] <= r.decode_speedup <= r.decode_speedup_ci[1] for r in record.ratios)
    assert len(record.comparisons) == 4 and all(c.conditions == ("hf", "fast") for c in record.comparisons)
    assert "decode tok/s [95% CI]" in proc.stdout and "] x" not in proc.stdout
    assert "[4/4] tiny-ruyi E297K batch 2 hf vs fast: fast/hf decode" in proc.stderr  # a progress line per cell
    assert record.command.startswith("evalkit bench --batch-sizes 1,2")
    assert "fast over hf" in proc.stdout and "cpu" in proc.stdout
    assert record.protocol["decode_mode"] == "eager" and "static-KV-cache decoder, eager" in proc.stdout
    assert record.config["device"] == "cpu" and record.config["e2e_suite"] is None  # what ran, not what was asked


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shape", "ruyi-7b"], "add --random-weights"),
        (["--shape", "gpt-5", "--random-weights"], "unknown shape 'gpt-5'"),
        (["--model", "/nonexistent/ckpt"], "does not exist"),
        (["--gen-len", "1"], "--gen-len must be >= 2"),
        (["--device", "cpu", "--decode-mode", "cudagraph"], "decode mode 'cudagraph' needs a CUDA device"),
        (["--warmup", "0"], "--iterations and --warmup must be >= 1"),
        (["--peak-bandwidth", "nan"], "--peak-bandwidth must be a positive number"),
        (["--peak-bandwidth", "0"], "--peak-bandwidth must be a positive number"),
        (["--shared-trunk", "--e2e-max-out-len", "-5"], "--e2e-max-out-len must be >= 1"),
        (["--ci-target", "5"], "--ci-target must be a share of the ratio between 0 and 1"),
        (["--time-budget", "0"], "--time-budget must be a positive number of seconds"),
        (["--time-budget", "inf"], "--time-budget must be a positive number of seconds"),
        (["--threads", "0"], "--threads must be >= 1"),
        (["--iterations", "0"], "--iterations and --warmup must be >= 1"),
        (["--shared-trunk", "--e2e-rounds", "0"], "--e2e-rounds a positive number"),
        (["--shared-trunk", "--shape", "ruyi-7b,yi-6b", "--random-weights"], "yi-6b has one branch"),
        (
            ["--out", "/proc/version/x"],
            "cannot write /proc/version/x (/proc/version is not a directory); pass a writable --out",
        ),
    ],
)
def test_bench_cli_errors_are_one_line(args, message):
    proc = subprocess.run([sys.executable, "-m", "evalkit", "bench", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr


@pytest.mark.parametrize("device", ["cuda:0", "mps", "tpu"])
def test_bench_times_one_kind_of_device_it_can_clock(device):
    # Its clocks and memory counters know "cuda" and "cpu"; another spelling would be timed wrongly.
    with pytest.raises(EvalkitError, match=f"unknown device '{device}'; valid devices are: auto, cuda, cpu"):
        bench(BenchConfig(device=device, out="unused"))


def test_end_to_end_asked_for_without_opencompass_is_one_line_before_anything_is_measured(monkeypatch, tmp_path):
    """A GPU machine may have torch and transformers but no OpenCompass: only the stock comparison needs it."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "opencompass" else real(name, *a))
    with pytest.raises(EvalkitError, match="--e2e-suite stem runs stock OpenCompass, which is not installed here"):
        bench(shared_trunk=True, e2e_suite="stem", device="cpu", out=str(tmp_path / "b"))
    assert not (tmp_path / "b" / "bench.json").exists()
