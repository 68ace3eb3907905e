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
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from evalkit.benchmark.bandwidth import copy_bandwidth
from evalkit.benchmark.config import BenchConfig, Protocol, Sizing
from evalkit.benchmark.interleave import CONFIDENCE, RESAMPLES, RatioSpec, Stopping, ratio_of, values_of
from evalkit.benchmark.machine import machine_after, machine_before
from evalkit.benchmark.measure import Clock, PeakMemory, environment, mbu, peak_bandwidth, summarize, traffic
from evalkit.benchmark.plausible import all_flags
from evalkit.benchmark.progress import BenchProgress, Measurer
from evalkit.benchmark.runners import FastRunner, HFRunner, prompts
from evalkit.benchmark.speculative import SpecSetup, choose, speculative
from evalkit.benchmark.trunk import TrunkSetup, shared_trunk
from evalkit.catalog.datasets import parse_suites
from evalkit.catalog.shapes import parse_shapes
from evalkit.engine.decode import _dims, _head
from evalkit.engine.generate import resolve_mode
from evalkit.errors import EvalkitError, did_you_mean
from evalkit.load.devices import release_memory, resolve_device
from evalkit.load.family import load_family, parse_branches
from evalkit.load.random_weights import random_family
from evalkit.load.tiny import default_model_path
from evalkit.records.bench import (
    AttainedBandwidth,
    BenchRecord,
    BenchRow,
    Comparison,
    Ratio,
    SharedTrunk,
    SpeculativeBench,
    save_bench,
)
from evalkit.records.io import cannot_write
from evalkit.records.provenance import command_line

__all__ = ["BenchConfig", "Protocol", "bench"]

MAX_ROUNDS = 500


@dataclass(frozen=True)
class _Source:
    name: str
    title: str
    load: Callable[[], Any]  # -> Family


def bench(config: BenchConfig | None = None, /, **options: Any) -> tuple[BenchRecord, Path]:
    """Run the benchmark described by `config` (or by keyword options) and write its record.

    Returns the record and the path of the bench.json written. Progress goes to stderr.
    """
    config = config or BenchConfig(**options)
    # bench times CUDA with CUDA events and reads peak memory per device type "cuda": one GPU, the first.
    if config.device not in ("auto", "cuda", "cpu"):
        raise did_you_mean("device", config.device, ["auto", "cuda", "cpu"])
    if config.device == "cuda" and not torch.cuda.is_available():
        raise EvalkitError("--device cuda was asked for but no CUDA device is visible; use --device cpu")
    device = str(resolve_device(config.device))
    asked_e2e = config.e2e_suite
    config, sizing = config.sized(device)
    without_oc = config.e2e_suite is not None and importlib.util.find_spec("opencompass") is None
    if without_oc and asked_e2e not in (None, "auto"):
        raise EvalkitError(
            f"--e2e-suite {asked_e2e} runs stock OpenCompass, which is not installed here; install evalkit with "
            "its dependencies (pip install -e .) or pass --e2e-suite none"
        )
    if without_oc:
        config = replace(config, e2e_suite=None)
        asked_e2e = "no-opencompass"
    # The fast path at its fastest: fused kernels in a CUDA graph on a GPU (`run` keeps plain CUDA graphs,
    # whose arithmetic is stock transformers' op for op).
    asked = "compile" if config.decode_mode == "auto" and device == "cuda" else config.decode_mode
    config = replace(
        config,
        decode_mode=resolve_mode(asked, device),
        device=device,
        batch_sizes=tuple(dict.fromkeys(config.batch_sizes or ())),
        ks=tuple(dict.fromkeys(config.ks)),
    )
    now = datetime.now(timezone.utc)
    out_dir = Path(config.out) if config.out else Path("results") / f"bench-{now.strftime('%Y%m%d-%H%M%S')}"
    _writable(out_dir)
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _measure_all(config, sizing, asked_e2e, device, out_dir, now)
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Peaks:
    """The two bandwidths MBU is reported against, GB/s: the datasheet's, and what a copy attained here."""

    datasheet: float | None
    attained: float | None


def _measure_all(
    config: BenchConfig, sizing: Sizing, asked_e2e: str | None, device: str, out_dir: Path, now: datetime
) -> tuple[BenchRecord, Path]:
    env = environment(device)
    peak, source = (config.peak_bandwidth, "flag") if config.peak_bandwidth else peak_bandwidth(env.device)
    if device == "cpu" and not config.peak_bandwidth:
        peak, source = None, "unknown"
    protocol = _protocol(config, device)
    machine = machine_before(device)
    clock = Clock(device)
    rows: list[BenchRow] = []
    ratios: list[Ratio] = []
    comparisons: list[Comparison] = []
    trunk: SharedTrunk | None = None
    spec: SpeculativeBench | None = None
    attained: AttainedBandwidth | None = None
    notes: list[str] = []
    if config.shared_trunk and asked_e2e == "no-opencompass":
        notes.append("end to end: skipped, since OpenCompass is not installed here; the rest needs only torch")
    if config.shared_trunk and asked_e2e == "auto" and config.e2e_suite is None:
        notes.append(
            f"end to end: skipped by the {sizing.name} defaults (stock OpenCompass takes minutes on a CPU); "
            "pass --e2e-suite stem to run it"
        )

    def save() -> tuple[BenchRecord, Path]:
        """The record so far, written after every model: a later failure loses nothing measured."""
        state = machine_after(machine)
        record = BenchRecord(
            run_id=now.strftime("%Y%m%d-%H%M%S"),
            created_at=now.isoformat(timespec="seconds"),
            command=config.command or _command(),
            environment=env,
            dtype=config.dtype or "",
            config=_jsonable(asdict(config)),
            protocol=_jsonable(asdict(protocol)),
            peak_bandwidth_gbps=peak,
            peak_bandwidth_source=source,
            rows=tuple(rows),
            ratios=tuple(ratios),
            shared_trunk=trunk,
            notes=tuple(notes),
            machine=state,
            defaults=sizing.describe(config),
            comparisons=tuple(comparisons),
            flags=all_flags(
                machine=state,
                comparisons=comparisons,
                ratios=ratios,
                trunk=trunk,
                max_cv=protocol.max_cv,
                speculative=spec,
                dtype=config.dtype or "",
            ),
            speculative=spec,
            attained_bandwidth=attained,
        )
        return record, save_bench(record, out_dir / "bench.json")

    stopping = Stopping(protocol.iterations, protocol.time_budget_s, protocol.max_rounds, protocol.ci_target)
    with torch.no_grad(), BenchProgress() as progress:
        progress.note(f"bench: {sizing.describe(config)}")
        measurer = Measurer(stopping, warmup=protocol.warmup, seed=config.seed, progress=progress)
        if not (config.shared_trunk or config.speculative):
            progress.note(f"attained bandwidth: timing a large copy on {env.device}")
            attained = copy_bandwidth(device)
            progress.note(f"attained bandwidth: {attained.gbps:.0f} GB/s ({attained.method})")
        peaks = Peaks(peak, attained.gbps if attained else None)
        for src in _sources(config, device):
            progress.note(f"{src.title}: loading its {config.dtype} weights on {env.device}")
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
                trunk, measured = _shared_trunk(config, src, family, clock, measurer)
                comparisons += measured
            elif config.speculative:
                spec, measured = _speculative(config, src, family, clock, measurer)
                comparisons += measured
            else:
                for cell_rows, ratio, comparison in _bench_family(config, src, family, clock, peaks, measurer):
                    rows += cell_rows
                    ratios += [ratio] if ratio is not None else []
                    comparisons += [comparison] if comparison is not None else []
            del family
            release_memory()
            save()
    return save()


def _protocol(config: BenchConfig, device: str) -> Protocol:
    return Protocol(
        warmup=config.warmup or 1,
        iterations=config.iterations or 1,
        timer="cuda-events" if device == "cuda" else "perf_counter",
        decode_mode=config.decode_mode,
        time_budget_s=config.time_budget or 1.0,
        ci_target=config.ci_target,
        max_rounds=MAX_ROUNDS,
        confidence=CONFIDENCE,
        resamples=RESAMPLES,
    )


Cell = tuple[list[BenchRow], Ratio | None, Comparison | None]


def _bench_family(
    config: BenchConfig, src: _Source, family: Any, clock: Clock, peaks: Peaks, measurer: Measurer
) -> Iterator[Cell]:
    if family.files.is_quantized:
        raise EvalkitError(
            f"{src.name} is a quantized checkpoint; bench measures bf16/fp16/fp32 weights "
            "(pass the unquantized checkpoint)"
        )
    chosen = parse_branches(config.branches, family.branches) if family.files.is_familial else family.branches
    batch_sizes = config.batch_sizes or ()
    if measurer.progress is not None:
        measurer.progress.expect(len(chosen) * len(batch_sizes))
    for branch in chosen:
        for b in batch_sizes:
            yield _cell(config, src, family, branch, b, clock, peaks, measurer)


def _cell(
    config: BenchConfig,
    src: _Source,
    family: Any,
    branch: Any,
    b: int,
    clock: Clock,
    peaks: Peaks,
    measurer: Measurer,
) -> Cell:
    """One (branch, batch size): each backend built and warmed up alone (its peak memory read there), then
    the backends timed in interleaved rounds."""
    assert config.prompt_len is not None and config.gen_len is not None
    bytes_read = _traffic(family, branch, config)
    base = dict(
        model=src.name,
        title=src.title,
        role="ours" if family.files.is_familial else "baseline",
        branch=branch.name,
        exit_layer=branch.exit_layer,
        num_params=branch.num_params,
        batch_size=b,
        prompt_len=config.prompt_len,
        gen_len=config.gen_len,
        weight_bytes=bytes_read.weight_bytes,
        kv_bytes_per_row=bytes_read.kv_bytes_per_row,
        bytes_per_token=bytes_read.per_token(b),
    )
    ids, mask = prompts(family, b, config.prompt_len, config.seed)
    runners: dict[str, Any] = {}
    memory: dict[str, PeakMemory] = {}
    for backend in config.backends:
        mem = PeakMemory(family.device.type)
        oom = False
        runner: Any
        try:
            with mem:
                runner = (
                    FastRunner(family, [branch], ids, mask, config.gen_len, config.decode_mode)
                    if backend == "fast"
                    else HFRunner(family, branch, ids, mask, config.gen_len, config.attn)
                )
                for _ in range(config.warmup or 1):
                    runner.once(clock)
                runners[backend], memory[backend] = runner, mem
        except Exception as e:  # noqa: BLE001 - only out-of-memory is a result; anything else is re-raised
            if not _is_oom(e):
                raise
            oom = True
        runner = None  # out of the except block: its traceback no longer holds the runner's frames
        if oom:
            release_memory()  # free its cache and graph before the next backend's peak is taken
    if not runners:
        return [BenchRow(**base, backend=k, error="out of memory") for k in config.backends], None, None
    both = "hf" in runners and "fast" in runners
    specs = [
        RatioSpec("fast/hf decode", ("hf",), ("fast",), "decode_s"),
        RatioSpec("fast/hf e2e", ("hf",), ("fast",), "e2e_s"),
    ]
    label = f"{src.name} {branch.name} batch {b} " + ("hf vs fast" if both else next(iter(runners)))
    conditions = {k: functools.partial(_generation_seconds, r, clock) for k, r in runners.items()}
    c = measurer.compare(label, conditions, specs if both else [], warmup=0)
    c = replace(c, warmup=config.warmup or 1)  # warmed up above, each backend alone, under its memory counter
    runners.clear()
    steps = config.gen_len - 1
    rows = []
    for backend in config.backends:
        if backend not in memory:
            rows.append(BenchRow(**base, backend=backend, error="out of memory"))
            continue
        decode = values_of(c, backend, "decode_s")
        tok_s = summarize([b * steps / d for d in decode])
        allocated = memory[backend].allocated
        own = branch.num_params * family.tensors["model.embed_tokens.weight"].element_size()
        rows.append(
            BenchRow(
                **base,
                backend=backend,
                ttft_s=summarize(values_of(c, backend, "ttft_s")),
                tpot_s=summarize([d / steps for d in decode]),
                decode_tok_s=tok_s,
                e2e_s=summarize(values_of(c, backend, "e2e_s")),
                mbu=mbu(bytes_read.per_token(b), tok_s.median, peaks.datasheet),
                mbu_attained=mbu(bytes_read.per_token(b), tok_s.median, peaks.attained),
                peak_allocated_bytes=allocated,
                peak_reserved_bytes=memory[backend].reserved,
                min_vram_bytes=None if allocated is None else allocated - _resident(family) + own,
            )
        )
    ratio = None
    if both:
        speed, latency = ratio_of(c, "fast/hf decode"), ratio_of(c, "fast/hf e2e")
        ratio = Ratio(src.name, branch.name, b, speed.value, latency.value, speed.ci, latency.ci, c.name)
    return rows, ratio, c


def _generation_seconds(runner: Any, clock: Clock) -> dict[str, float]:
    first, total = runner.once(clock)
    return {"ttft_s": first, "decode_s": total - first, "e2e_s": total}


def _resident(family: Any) -> int:
    return sum(t.numel() * t.element_size() for t in {t.data_ptr(): t for t in family.tensors.values()}.values())


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
        prompt_len=int(config.prompt_len or 0),  # set by `BenchConfig.sized` before anything is measured
        gen_len=int(config.gen_len or 0),
    )


def _shared_trunk(
    config: BenchConfig, src: _Source, family: Any, clock: Clock, measurer: Measurer
) -> tuple[SharedTrunk, list[Comparison]]:
    if not family.files.is_familial:
        raise EvalkitError(f"{src.name} has one branch; --shared-trunk needs a familial checkpoint or --shape ruyi-7b")
    assert config.prompt_len is not None and config.gen_len is not None
    setup = TrunkSetup(
        batch_sizes=config.batch_sizes or (),
        prompt_len=config.prompt_len,
        gen_len=config.gen_len,
        decode_mode=config.decode_mode,
        seed=config.seed,
        clock=clock,
        measurer=measurer,
        model=src.name,
    )
    if measurer.progress is not None:
        measurer.progress.expect(2 * len(setup.batch_sizes))
    trunk, comparisons = shared_trunk(src.name, family, parse_branches(config.branches, family.branches), setup)
    if config.e2e_suite and not config.shapes and measurer.progress is not None:
        runs = "once" if config.e2e_rounds == 1 else f"{config.e2e_rounds + 1} times"
        measurer.progress.note(f"end to end: evalkit run and stock OpenCompass, each {runs} (minutes on a CPU)")
    trunk, e2e = _end_to_end(config, trunk, "cuda" if clock.cuda else "cpu")
    return trunk, comparisons + e2e


def _speculative(
    config: BenchConfig, src: _Source, family: Any, clock: Clock, measurer: Measurer
) -> tuple[SpeculativeBench, list[Comparison]]:
    if not family.files.is_familial:
        raise EvalkitError(f"{src.name} has one branch; --speculative needs a familial checkpoint or --shape ruyi-7b")
    assert config.prompt_len is not None and config.gen_len is not None
    drafts, target = choose(family, config.branches, config.draft)
    setup = SpecSetup(
        batch_sizes=config.batch_sizes or (),
        ks=config.ks,
        prompt_len=config.prompt_len,
        gen_len=config.gen_len,
        decode_mode=config.decode_mode,
        seed=config.seed,
        clock=clock,
        measurer=measurer,
        model=src.name,
    )
    if measurer.progress is not None:
        measurer.progress.expect(len(setup.batch_sizes))
    return speculative(family, drafts, target, setup)


def _end_to_end(config: BenchConfig, trunk: SharedTrunk, device: str) -> tuple[SharedTrunk, list[Comparison]]:
    """The end-to-end part: `run --branches all` vs stock OpenCompass on the exported branches (checkpoints only)."""
    from evalkit.benchmark.e2e import E2ESetup, end_to_end  # OpenCompass, which GPU machines lack: only here

    if config.e2e_suite is None:
        return trunk, []
    if config.shapes:
        note = "end to end: skipped, random-weight shapes have no checkpoint to run; pass --model PATH"
        return replace(trunk, notes=(*trunk.notes, note)), []
    setup = E2ESetup(
        model=config.model,
        suite=parse_suites(config.e2e_suite)[0],
        limit=config.e2e_limit,
        max_out_len=config.e2e_max_out_len,
        device=device,
        rounds=config.e2e_rounds,
        seed=config.seed,
    )
    e2e, notes, comparison = end_to_end(setup)
    return replace(trunk, e2e=(e2e,), notes=(*trunk.notes, *notes)), [comparison] if comparison else []


def _sources(config: BenchConfig, device: str) -> list[_Source]:
    if config.shapes:
        shapes = parse_shapes(",".join(config.shapes))
        return [
            _Source(
                s.name,
                s.title,
                functools.partial(random_family, s, dtype=str(config.dtype), device=device, seed=config.seed),
            )
            for s in shapes
        ]
    path = Path(config.model) if config.model else default_model_path()
    name = path.name if config.model else "tiny-ruyi"
    return [_Source(name, name, functools.partial(load_family, path, dtype=config.dtype, device=device))]


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
