"""Bench stage: throughput and latency per branch, against the memory-bandwidth limit and stock HF.

`bench(...)` times, for each model, branch, backend and batch size, prefill (time to first token),
time per output token, decode tokens/s and end-to-end latency, with peak GPU memory, bytes read per
token and MBU, and writes one versioned record (`bench.json`). `--shared-trunk` instead compares
all branches of a family at once with the last branch alone and with each branch alone.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalkit.benchmark.measure import Clock, PeakMemory, environment, mbu, peak_bandwidth, traffic
from evalkit.catalog.datasets import parse_suites
from evalkit.errors import EvalkitError, did_you_mean
from evalkit.load.devices import check_device, release_memory, resolve_device
from evalkit.records.bench import BenchRecord, BenchRow, Ratio, SharedTrunk, load_bench, save_bench
from evalkit.reporting import bench_markdown

BACKENDS = ("hf", "fast")
BATCH_SIZES = (1, 4, 16, 32)

__all__ = ["BenchConfig", "BenchRecord", "Protocol", "bench", "bench_markdown", "load_bench"]


@dataclass(frozen=True)
class Protocol:
    """How every cell is measured (after optimum-benchmark):

    1. warm-up: `warmup` untimed generations first (CUDA graph capture, allocator, kernel choice);
    2. timing: CUDA events around each region, read after a synchronize (GPU); perf_counter (CPU);
    3. fixed output length: every generation makes exactly gen_len tokens (EOS ignored on the fast
       path, min_new_tokens = max_new_tokens on stock `generate`);
    4. at least `iterations` timed repetitions per cell;
    5. median, p90 and p99 with numpy (linear interpolation) over the iterations: each is one whole
       generation, so a TPOT percentile is over per-generation mean step times, not single tokens;
    6. peak allocated and reserved GPU memory per cell (peak counters reset before the cell);
    7. MBU = bytes per token x tokens/s / peak bandwidth, the peak looked up from the device name or
       given, never assumed; none on a CPU unless given;
    8. both backends in the same process on the same prompts, so their ratio compares like with like.
    """

    warmup: int
    iterations: int
    timer: str  # "cuda-events" | "perf_counter"
    decode_mode: str = ""  # the fast path as run: eager | cudagraph | compile ("auto" resolved)
    fixed_output_length: bool = True
    percentiles: tuple[int, ...] = (50, 90, 99)


@dataclass(frozen=True)
class BenchConfig:
    model: str | None = None  # checkpoint directory; None with no shapes: the embedded tiny family
    shapes: tuple[str, ...] = ()  # real shapes with random weights (evalkit.catalog.shapes), e.g. ("ruyi-7b",)
    random_weights: bool = False  # required with shapes: says the weights are random on purpose
    branches: str = "all"
    batch_sizes: tuple[int, ...] | None = None  # None: 1,4,16,32 (--shared-trunk: 1,8)
    prompt_len: int = 256
    gen_len: int = 128
    dtype: str = "bf16"
    attn: str = "sdpa"  # stock backend's attention: sdpa | flash_attention_2 (the fast path uses SDPA)
    backend: str = "both"  # hf | fast | both
    iterations: int = 10
    warmup: int = 2
    peak_bandwidth: float | None = None  # GB/s; None: from the device name
    out: str | None = None  # directory; None: results/bench-<timestamp>
    device: str = "auto"  # auto | cuda | cpu
    decode_mode: str = "auto"  # fast path: auto | eager | cudagraph | compile
    shared_trunk: bool = False
    # With shared_trunk: `run --branches all` on this suite vs stock OpenCompass on the exported branches (minutes
    # of subprocesses on a CPU); None skips it. The CLI's --e2e-suite defaults to "stem".
    e2e_suite: str | None = None
    e2e_limit: int = 2  # items per dataset in the end-to-end comparison
    e2e_max_out_len: int | None = None  # None: what `run` uses
    seed: int = 0
    command: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.model and self.shapes:
            raise EvalkitError("pass either --model PATH or --shape NAME --random-weights, not both")
        if self.shapes and not self.random_weights:
            raise EvalkitError("--shape builds a model with random weights; add --random-weights, or pass --model PATH")
        if self.backend not in (*BACKENDS, "both"):
            raise did_you_mean("backend", self.backend, [*BACKENDS, "both"])
        if self.gen_len < 2 or self.prompt_len < 1:
            raise EvalkitError(f"--gen-len must be >= 2 and --prompt-len >= 1 (got {self.gen_len}, {self.prompt_len})")
        if self.batch_sizes is not None and (not self.batch_sizes or min(self.batch_sizes) < 1):
            raise EvalkitError(f"--batch-sizes must be positive integers, got {self.batch_sizes}")
        if self.e2e_suite is not None and (len(parse_suites(self.e2e_suite)) != 1 or self.e2e_limit < 1):
            raise EvalkitError(f"--e2e-suite takes one suite (general, code or stem) and --e2e-limit a positive "
                               f"number (got {self.e2e_suite!r}, {self.e2e_limit})")  # fmt: skip
        if self.iterations < 1 or self.warmup < 1:
            raise EvalkitError(f"--iterations and --warmup must be >= 1 (got {self.iterations}, {self.warmup}); "
                               "the warm-up builds the CUDA graph and compiles, which no timed run may include")
        if self.peak_bandwidth is not None and not (0 < self.peak_bandwidth < math.inf):
            raise EvalkitError(f"--peak-bandwidth must be a positive number of GB/s, got {self.peak_bandwidth}")
        if self.e2e_max_out_len is not None and self.e2e_max_out_len < 1:
            raise EvalkitError(f"--e2e-max-out-len must be >= 1, got {self.e2e_max_out_len}")
        # Names and paths are checked here, before torch loads, so a typo fails at once.
        if self.shapes:
            from evalkit.catalog.shapes import parse_shapes

            plain = [s.name for s in parse_shapes(",".join(self.shapes)) if s.role != "ours"]
            if self.shared_trunk and plain:
                raise EvalkitError(f"--shared-trunk needs familial shapes; {', '.join(plain)} has one branch "
                                   "(use --shape ruyi-7b)")  # fmt: skip
        if self.model:
            from evalkit.load.checkpoint import read_checkpoint

            read_checkpoint(self.model)

    @property
    def backends(self) -> tuple[str, ...]:
        return BACKENDS if self.backend == "both" else (self.backend,)


@dataclass(frozen=True)
class _Source:
    name: str
    title: str
    load: Callable[[], Any]  # -> Family


def bench(config: BenchConfig | None = None, /, **options: Any) -> tuple[BenchRecord, Path]:
    """Run the benchmark described by `config` (or by keyword options) and write its record.

    Returns the record and the path of the bench.json written.
    """
    import torch

    from evalkit.engine.generate import resolve_mode

    config = config or BenchConfig(**options)
    device = str(resolve_device(check_device(config.device)))
    # The fast path at its fastest: fused kernels in a CUDA graph on a GPU (`run` keeps plain CUDA graphs,
    # whose arithmetic is stock transformers' op for op).
    asked = "compile" if config.decode_mode == "auto" and device == "cuda" else config.decode_mode
    config = replace(config, decode_mode=resolve_mode(asked, device), device=device,
                     e2e_suite=config.e2e_suite if config.shared_trunk else None,
                     batch_sizes=None if config.batch_sizes is None else tuple(dict.fromkeys(config.batch_sizes)))
    now = datetime.now(timezone.utc)
    out_dir = Path(config.out) if config.out else Path("results") / f"bench-{now.strftime('%Y%m%d-%H%M%S')}"
    _writable(out_dir)
    env = environment(device)
    peak, source = (config.peak_bandwidth, "flag") if config.peak_bandwidth else peak_bandwidth(env.device)
    if device == "cpu" and not config.peak_bandwidth:
        peak, source = None, "unknown"
    protocol = Protocol(warmup=config.warmup, iterations=config.iterations,
                        timer="cuda-events" if device == "cuda" else "perf_counter",
                        decode_mode=config.decode_mode)  # fmt: skip
    clock = Clock(device)
    rows: list[BenchRow] = []
    trunk: SharedTrunk | None = None
    notes: list[str] = []

    def save() -> tuple[BenchRecord, Path]:
        """The record so far, written after every model: a later failure loses nothing measured."""
        record = BenchRecord(
            run_id=now.strftime("%Y%m%d-%H%M%S"), created_at=now.isoformat(timespec="seconds"),
            command=config.command or _command(), environment=env, dtype=config.dtype,
            config=_jsonable(asdict(config)), protocol=_jsonable(asdict(protocol)), peak_bandwidth_gbps=peak,
            peak_bandwidth_source=source, rows=tuple(rows), ratios=tuple(_ratios(rows)), shared_trunk=trunk,
            notes=tuple(notes),
        )  # fmt: skip
        return record, save_bench(record, out_dir / "bench.json")

    with torch.no_grad():
        for src in _sources(config, device):
            try:
                family = src.load()
            except Exception as e:  # noqa: BLE001 - a model too big for the device is a result, not a crash
                if not _is_oom(e):
                    raise
                family = None
            if family is None:  # out of the except block, so the partly built tensors can be freed
                notes.append(f"{src.title}: out of memory loading its {config.dtype} weights on {env.device}; "
                             "not measured")  # fmt: skip
                release_memory()
                save()
                continue
            if config.shared_trunk:
                trunk = _shared_trunk(config, src, family, clock)
            else:
                rows += list(_bench_family(config, src, family, clock, peak))
            del family
            release_memory()
            save()
    return save()


def _bench_family(
    config: BenchConfig, src: _Source, family: Any, clock: Clock, peak: float | None
) -> Iterator[BenchRow]:
    from evalkit.benchmark.runners import FastRunner, HFRunner, measure, prompts
    from evalkit.load.family import parse_branches

    if family.files.is_quantized:
        raise EvalkitError(f"{src.name} is a quantized checkpoint; bench measures bf16/fp16/fp32 weights "
                           "(pass the unquantized checkpoint)")  # fmt: skip
    chosen = parse_branches(config.branches, family.branches) if family.files.is_familial else family.branches
    role = "ours" if family.files.is_familial else "baseline"
    resident = sum(t.numel() * t.element_size() for t in {t.data_ptr(): t for t in family.tensors.values()}.values())
    for branch in chosen:
        bytes_read = _traffic(family, branch, config)
        for backend in config.backends:
            for b in config.batch_sizes or BATCH_SIZES:
                base = dict(model=src.name, title=src.title, role=role, branch=branch.name,
                            exit_layer=branch.exit_layer, num_params=branch.num_params, backend=backend, batch_size=b,
                            prompt_len=config.prompt_len, gen_len=config.gen_len,
                            weight_bytes=bytes_read.weight_bytes, kv_bytes_per_row=bytes_read.kv_bytes_per_row,
                            bytes_per_token=bytes_read.per_token(b))  # fmt: skip
                memory = PeakMemory(family.device.type)
                runner: Any = None
                try:
                    with memory:
                        ids, mask = prompts(family, b, config.prompt_len, config.seed)
                        runner = (
                            FastRunner(family, [branch], ids, mask, config.gen_len, config.decode_mode)
                            if backend == "fast"
                            else HFRunner(family, branch, ids, mask, config.gen_len, config.attn)
                        )
                        t = measure(runner, clock=clock, warmup=config.warmup, iterations=config.iterations,
                                    batch_size=b, gen_len=config.gen_len)  # fmt: skip
                        runner = None
                except Exception as e:  # noqa: BLE001 - only out-of-memory is a result; anything else is re-raised
                    if not _is_oom(e):
                        raise
                    t = None
                if t is None:  # out of the except block: its traceback no longer holds the runner's frames
                    runner = None  # free its cache and graph before the next cell's peak is taken
                    release_memory()
                    yield BenchRow(**base, error="out of memory")
                    continue
                own = branch.num_params * family.tensors["model.embed_tokens.weight"].element_size()
                yield BenchRow(
                    **base, ttft_s=t.ttft_s, tpot_s=t.tpot_s, decode_tok_s=t.decode_tok_s, e2e_s=t.e2e_s,
                    mbu=mbu(bytes_read.per_token(b), t.decode_tok_s.median, peak),
                    peak_allocated_bytes=memory.allocated, peak_reserved_bytes=memory.reserved,
                    min_vram_bytes=None if memory.allocated is None else memory.allocated - resident + own,
                )  # fmt: skip


def _traffic(family: Any, branch: Any, config: BenchConfig) -> Any:
    from evalkit.engine.decode import _dims, _head

    cfg = family.branch_config(branch)
    dims = _dims(cfg)
    embed = family.tensors["model.embed_tokens.weight"]
    head = _head(family.branch_state_dict(branch))
    return traffic(num_params=branch.num_params, vocab_size=embed.shape[0], hidden_size=embed.shape[1],
                   tied=head.data_ptr() == embed.data_ptr(), num_layers=branch.num_layers,
                   num_kv_heads=dims.num_kv_heads, head_dim=dims.head_dim, dtype_bytes=embed.element_size(),
                   prompt_len=config.prompt_len, gen_len=config.gen_len)  # fmt: skip


def _shared_trunk(config: BenchConfig, src: _Source, family: Any, clock: Clock) -> SharedTrunk:
    from evalkit.benchmark.trunk import TRUNK_BATCH_SIZES, TrunkSetup, shared_trunk
    from evalkit.load.family import parse_branches

    if not family.files.is_familial:
        raise EvalkitError(f"{src.name} has one branch; --shared-trunk needs a familial checkpoint or --shape ruyi-7b")
    setup = TrunkSetup(batch_sizes=config.batch_sizes or TRUNK_BATCH_SIZES, prompt_len=config.prompt_len,
                       gen_len=config.gen_len, warmup=config.warmup, iterations=config.iterations,
                       decode_mode=config.decode_mode, seed=config.seed, clock=clock)  # fmt: skip
    trunk = shared_trunk(src.name, family, parse_branches(config.branches, family.branches), setup)
    return _end_to_end(config, trunk, "cuda" if clock.cuda else "cpu")


def _end_to_end(config: BenchConfig, trunk: SharedTrunk, device: str) -> SharedTrunk:
    """The end-to-end part: `run --branches all` vs stock OpenCompass on the exported branches (checkpoints only)."""
    from evalkit.benchmark.e2e import E2ESetup, end_to_end

    if config.e2e_suite is None:
        return trunk
    if config.shapes:
        return replace(trunk, notes=(*trunk.notes, "end to end: skipped, random-weight shapes have no checkpoint "
                                                   "to run; pass --model PATH"))  # fmt: skip
    setup = E2ESetup(model=config.model, suite=parse_suites(config.e2e_suite)[0], limit=config.e2e_limit,
                     max_out_len=config.e2e_max_out_len, device=device)  # fmt: skip
    e2e, notes = end_to_end(setup)
    return replace(trunk, e2e=(e2e,), notes=(*trunk.notes, *notes))


def _sources(config: BenchConfig, device: str) -> list[_Source]:
    from evalkit.catalog.shapes import parse_shapes
    from evalkit.load.family import load_family
    from evalkit.load.random import random_family
    from evalkit.load.tiny import default_model_path

    if config.shapes:
        shapes = parse_shapes(",".join(config.shapes))
        return [_Source(s.name, s.title, functools.partial(random_family, s, dtype=config.dtype, device=device,
                                                           seed=config.seed)) for s in shapes]  # fmt: skip
    path = Path(config.model) if config.model else default_model_path()
    name = path.name if config.model else "tiny-ruyi"
    return [_Source(name, name, functools.partial(load_family, path, dtype=config.dtype, device=device))]


def _ratios(rows: list[BenchRow]) -> Iterator[Ratio]:
    cells = {(r.model, r.branch, r.batch_size, r.backend): r for r in rows if r.error is None}
    for (model, branch, b, backend), fast in cells.items():
        hf = cells.get((model, branch, b, "hf"))
        if backend != "fast" or hf is None or fast.decode_tok_s is None or hf.decode_tok_s is None:
            continue
        assert fast.e2e_s is not None and hf.e2e_s is not None
        yield Ratio(model=model, branch=branch, batch_size=b,
                    decode_speedup=fast.decode_tok_s.median / hf.decode_tok_s.median,
                    e2e_speedup=hf.e2e_s.median / fast.e2e_s.median)  # fmt: skip


def _is_oom(e: Exception) -> bool:
    import torch

    text = str(e).lower()
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def _writable(out_dir: Path) -> None:
    """Fail before measuring, not after, when the record cannot be written."""
    from evalkit.records.results import cannot_write

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise cannot_write(out_dir, e) from None


def _command() -> str:
    from evalkit.records.provenance import command_line

    return command_line()


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

