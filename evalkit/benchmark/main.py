"""`evalkit bench`: throughput and latency per branch, against the memory-bandwidth limit and stock HF.

`bench(...)` times, for each model, branch, backend and batch size, prefill (time to first token),
time per output token, decode tokens/s and end-to-end latency, with peak GPU memory, bytes read per
token and MBU, and writes one versioned record (`bench.json`). `--shared-trunk` instead compares
all branches of a family at once with the last branch alone and with each branch alone;
`--speculative` times self-speculative decoding (a shallow branch drafts, the target verifies)
against the target alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from evalkit.benchmark.config import BATCH_SIZES, BenchConfig, Protocol
from evalkit.benchmark.measure import Clock, PeakMemory, environment, mbu, peak_bandwidth, traffic
from evalkit.benchmark.runners import FastRunner, HFRunner, measure, prompts
from evalkit.benchmark.speculative import SPEC_BATCH_SIZES, SpecSetup, choose, speculative
from evalkit.benchmark.trunk import TRUNK_BATCH_SIZES, TrunkSetup, shared_trunk
from evalkit.catalog.datasets import parse_suites
from evalkit.catalog.shapes import parse_shapes
from evalkit.engine.decode import _dims, _head
from evalkit.engine.generate import resolve_mode
from evalkit.errors import EvalkitError, did_you_mean
from evalkit.load.devices import release_memory, resolve_device
from evalkit.load.family import load_family, parse_branches
from evalkit.load.random_weights import random_family
from evalkit.load.tiny import default_model_path
from evalkit.records.bench import BenchRecord, BenchRow, Ratio, SharedTrunk, SpeculativeBench, save_bench
from evalkit.records.io import cannot_write
from evalkit.records.provenance import command_line

__all__ = ["BenchConfig", "Protocol", "bench"]


@dataclass(frozen=True)
class _Source:
    name: str
    title: str
    load: Callable[[], Any]  # -> Family


def bench(config: BenchConfig | None = None, /, **options: Any) -> tuple[BenchRecord, Path]:
    """Run the benchmark described by `config` (or by keyword options) and write its record.

    Returns the record and the path of the bench.json written.
    """
    config = config or BenchConfig(**options)
    # bench times CUDA with CUDA events and reads peak memory per device type "cuda": one GPU, the first.
    if config.device not in ("auto", "cuda", "cpu"):
        raise did_you_mean("device", config.device, ["auto", "cuda", "cpu"])
    if config.device == "cuda" and not torch.cuda.is_available():
        raise EvalkitError("--device cuda was asked for but no CUDA device is visible; use --device cpu")
    device = str(resolve_device(config.device))
    # The fast path at its fastest: fused kernels in a CUDA graph on a GPU (`run` keeps plain CUDA graphs,
    # whose arithmetic is stock transformers' op for op).
    asked = "compile" if config.decode_mode == "auto" and device == "cuda" else config.decode_mode
    config = replace(
        config,
        decode_mode=resolve_mode(asked, device),
        device=device,
        e2e_suite=config.e2e_suite if config.shared_trunk else None,
        batch_sizes=None if config.batch_sizes is None else tuple(dict.fromkeys(config.batch_sizes)),
        ks=tuple(dict.fromkeys(config.ks)),
    )
    now = datetime.now(timezone.utc)
    out_dir = Path(config.out) if config.out else Path("results") / f"bench-{now.strftime('%Y%m%d-%H%M%S')}"
    _writable(out_dir)
    env = environment(device)
    peak, source = (config.peak_bandwidth, "flag") if config.peak_bandwidth else peak_bandwidth(env.device)
    if device == "cpu" and not config.peak_bandwidth:
        peak, source = None, "unknown"
    protocol = Protocol(
        warmup=config.warmup,
        iterations=config.iterations,
        timer="cuda-events" if device == "cuda" else "perf_counter",
        decode_mode=config.decode_mode,
    )
    clock = Clock(device)
    rows: list[BenchRow] = []
    trunk: SharedTrunk | None = None
    spec: SpeculativeBench | None = None
    notes: list[str] = []

    def save() -> tuple[BenchRecord, Path]:
        """The record so far, written after every model: a later failure loses nothing measured."""
        record = BenchRecord(
            run_id=now.strftime("%Y%m%d-%H%M%S"),
            created_at=now.isoformat(timespec="seconds"),
            command=config.command or _command(),
            environment=env,
            dtype=config.dtype,
            config=_jsonable(asdict(config)),
            protocol=_jsonable(asdict(protocol)),
            peak_bandwidth_gbps=peak,
            peak_bandwidth_source=source,
            rows=tuple(rows),
            ratios=tuple(_ratios(rows)),
            shared_trunk=trunk,
            notes=tuple(notes),
            speculative=spec,
        )
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
                notes.append(
                    f"{src.title}: out of memory loading its {config.dtype} weights on {env.device}; not measured"
                )
                release_memory()
                save()
                continue
            if config.shared_trunk:
                trunk = _shared_trunk(config, src, family, clock)
            elif config.speculative:
                spec = _speculative(config, src, family, clock)
            else:
                rows += list(_bench_family(config, src, family, clock, peak))
            del family
            release_memory()
            save()
    return save()


def _bench_family(
    config: BenchConfig, src: _Source, family: Any, clock: Clock, peak: float | None
) -> Iterator[BenchRow]:
    if family.files.is_quantized:
        raise EvalkitError(
            f"{src.name} is a quantized checkpoint; bench measures bf16/fp16/fp32 weights "
            "(pass the unquantized checkpoint)"
        )
    chosen = parse_branches(config.branches, family.branches) if family.files.is_familial else family.branches
    role = "ours" if family.files.is_familial else "baseline"
    resident = sum(t.numel() * t.element_size() for t in {t.data_ptr(): t for t in family.tensors.values()}.values())
    for branch in chosen:
        bytes_read = _traffic(family, branch, config)
        for backend in config.backends:
            for b in config.batch_sizes or BATCH_SIZES:
                base = dict(
                    model=src.name,
                    title=src.title,
                    role=role,
                    branch=branch.name,
                    exit_layer=branch.exit_layer,
                    num_params=branch.num_params,
                    backend=backend,
                    batch_size=b,
                    prompt_len=config.prompt_len,
                    gen_len=config.gen_len,
                    weight_bytes=bytes_read.weight_bytes,
                    kv_bytes_per_row=bytes_read.kv_bytes_per_row,
                    bytes_per_token=bytes_read.per_token(b),
                )
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
                        t = measure(
                            runner,
                            clock=clock,
                            warmup=config.warmup,
                            iterations=config.iterations,
                            batch_size=b,
                            gen_len=config.gen_len,
                        )
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
                    **base,
                    ttft_s=t.ttft_s,
                    tpot_s=t.tpot_s,
                    decode_tok_s=t.decode_tok_s,
                    e2e_s=t.e2e_s,
                    mbu=mbu(bytes_read.per_token(b), t.decode_tok_s.median, peak),
                    peak_allocated_bytes=memory.allocated,
                    peak_reserved_bytes=memory.reserved,
                    min_vram_bytes=None if memory.allocated is None else memory.allocated - resident + own,
                )


def _traffic(family: Any, branch: Any, config: BenchConfig) -> Any:
    cfg = family.branch_config(branch)
    dims = _dims(cfg)
    embed = family.tensors["model.embed_tokens.weight"]
    head = _head(family.branch_state_dict(branch))
    return traffic(
        num_params=branch.num_params,
        vocab_size=embed.shape[0],
        hidden_size=embed.shape[1],
        tied=head.data_ptr() == embed.data_ptr(),
        num_layers=branch.num_layers,
        num_kv_heads=dims.num_kv_heads,
        head_dim=dims.head_dim,
        dtype_bytes=embed.element_size(),
        prompt_len=config.prompt_len,
        gen_len=config.gen_len,
    )


def _shared_trunk(config: BenchConfig, src: _Source, family: Any, clock: Clock) -> SharedTrunk:
    if not family.files.is_familial:
        raise EvalkitError(f"{src.name} has one branch; --shared-trunk needs a familial checkpoint or --shape ruyi-7b")
    setup = TrunkSetup(
        batch_sizes=config.batch_sizes or TRUNK_BATCH_SIZES,
        prompt_len=config.prompt_len,
        gen_len=config.gen_len,
        warmup=config.warmup,
        iterations=config.iterations,
        decode_mode=config.decode_mode,
        seed=config.seed,
        clock=clock,
    )
    trunk = shared_trunk(src.name, family, parse_branches(config.branches, family.branches), setup)
    return _end_to_end(config, trunk, "cuda" if clock.cuda else "cpu")


def _speculative(config: BenchConfig, src: _Source, family: Any, clock: Clock) -> SpeculativeBench:
    if not family.files.is_familial:
        raise EvalkitError(f"{src.name} has one branch; --speculative needs a familial checkpoint or --shape ruyi-7b")
    drafts, target = choose(family, config.branches, config.draft)
    setup = SpecSetup(
        batch_sizes=config.batch_sizes or SPEC_BATCH_SIZES,
        ks=config.ks,
        prompt_len=config.prompt_len,
        gen_len=config.gen_len,
        warmup=config.warmup,
        iterations=config.iterations,
        decode_mode=config.decode_mode,
        seed=config.seed,
        clock=clock,
    )
    return speculative(src.name, family, drafts, target, setup)


def _end_to_end(config: BenchConfig, trunk: SharedTrunk, device: str) -> SharedTrunk:
    """The end-to-end part: `run --branches all` vs stock OpenCompass on the exported branches (checkpoints only)."""
    from evalkit.benchmark.e2e import E2ESetup, end_to_end  # OpenCompass, which GPU machines lack: only here

    if config.e2e_suite is None:
        return trunk
    if config.shapes:
        return replace(
            trunk,
            notes=(
                *trunk.notes,
                "end to end: skipped, random-weight shapes have no checkpoint to run; pass --model PATH",
            ),
        )
    setup = E2ESetup(
        model=config.model,
        suite=parse_suites(config.e2e_suite)[0],
        limit=config.e2e_limit,
        max_out_len=config.e2e_max_out_len,
        device=device,
    )
    e2e, notes = end_to_end(setup)
    return replace(trunk, e2e=(e2e,), notes=(*trunk.notes, *notes))


def _sources(config: BenchConfig, device: str) -> list[_Source]:
    if config.shapes:
        shapes = parse_shapes(",".join(config.shapes))
        return [
            _Source(
                s.name,
                s.title,
                functools.partial(random_family, s, dtype=config.dtype, device=device, seed=config.seed),
            )
            for s in shapes
        ]
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
        yield Ratio(
            model=model,
            branch=branch,
            batch_size=b,
            decode_speedup=fast.decode_tok_s.median / hf.decode_tok_s.median,
            e2e_speedup=hf.e2e_s.median / fast.e2e_s.median,
        )


def _is_oom(e: Exception) -> bool:
    text = str(e).lower()
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text


def _writable(out_dir: Path) -> None:
    """Fail before measuring, not after, when the record cannot be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise cannot_write(out_dir, e) from None


def _command() -> str:
    return command_line()


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
