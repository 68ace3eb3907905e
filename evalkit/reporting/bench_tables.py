"""Markdown tables of a bench record: speed per cell, fast over hf, minimum VRAM, shared trunk."""

from __future__ import annotations

from tabulate import tabulate

from evalkit.records.bench import BenchRecord, BenchRow, SharedTrunk


def bench_markdown(record: BenchRecord) -> str:
    env = record.environment
    head = (f"Device: {env.device} · torch {env.torch} · transformers {env.transformers} · {record.dtype} · "
            f"peak bandwidth: {_gbps(record)}\nCommand: `{record.command}` · {record.created_at}")  # fmt: skip
    if record.rows:
        head += "\n" + _backends(record)
    parts = [head, *(f"Note: {n}" for n in record.notes)]
    if record.rows:
        parts += ["### Speed per branch", speed_table(record.rows)]
    if record.ratios:
        rows = [(r.model, r.branch, r.batch_size, f"{r.decode_speedup:.2f}x", f"{r.e2e_speedup:.2f}x")
                for r in record.ratios]  # fmt: skip
        headers = ["model", "branch", "batch", "decode tok/s", "end to end"]
        parts += ["### fast over hf (same run)", tabulate(rows, headers=headers, tablefmt="github")]
    if any(r.peak_allocated_bytes is not None or r.error for r in record.rows):
        parts += ["### Minimum VRAM by batch size", vram_table(record.rows)]
    if record.shared_trunk is not None:
        parts += ["### Shared trunk", trunk_tables(record.shared_trunk)]
    return "\n\n".join(parts) + "\n"


def speed_table(rows: tuple[BenchRow, ...]) -> str:
    table = []
    for r in rows:
        if r.error or r.ttft_s is None or r.tpot_s is None or r.decode_tok_s is None or r.e2e_s is None:
            failed = (r.model, r.branch, format_params(r.num_params), r.backend, r.batch_size, r.error or "–")
            table.append((*failed, "", "", "", ""))
            continue
        table.append((
            r.model, r.branch, format_params(r.num_params), r.backend, r.batch_size,
            f"{r.ttft_s.median * 1e3:.1f}", f"{r.tpot_s.median * 1e3:.2f} / {r.tpot_s.p99 * 1e3:.2f}",
            f"{r.decode_tok_s.median:.1f}", f"{r.e2e_s.median:.3f}", "–" if r.mbu is None else f"{100 * r.mbu:.1f}%",
        ))  # fmt: skip
    headers = ["model", "branch", "params", "backend", "batch", "TTFT ms", "TPOT ms (p50 / p99)", "decode tok/s",
               "e2e s", "MBU"]  # fmt: skip
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


def vram_table(rows: tuple[BenchRow, ...]) -> str:
    """GB per (model, branch, backend) and batch size: peak allocated less tensors the branch does not use."""
    batches = sorted({r.batch_size for r in rows})
    cells: dict[tuple[str, str, str], dict[int, str]] = {}
    for r in rows:
        if r.error == "out of memory":
            value = "> device"
        else:
            value = "–" if r.min_vram_bytes is None else f"{r.min_vram_bytes / 1e9:.1f} GB"
        cells.setdefault((r.model, r.branch, r.backend), {})[r.batch_size] = value
    table = [(*key, *(by.get(b, "") for b in batches)) for key, by in cells.items()]
    headers = ["model", "branch", "backend", *(f"batch={b}" for b in batches)]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


def trunk_tables(trunk: SharedTrunk) -> str:
    out: list[str] = []
    if trunk.decode:
        rows = [(d.batch_size, len(d.branches), f"{d.shared_step_s.median * 1e3:.2f}",
                 f"{d.last_step_s.median * 1e3:.2f}", f"{d.separate_step_s * 1e3:.2f}",
                 f"{d.decode_shared_over_last:.2f}x", f"{d.decode_separate_over_last:.2f}x")
                for d in trunk.decode]  # fmt: skip
        headers = ["batch", "branches", "all together ms/step", "last alone ms/step", "each alone, summed ms/step",
                   "together / last", "separate / last"]  # fmt: skip
        out += [f"Decoding ({trunk.model}):", tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)]
    if trunk.scoring:
        scoring = [(s.batch_size, s.seq_len, len(s.branches), f"{s.shared_s.median * 1e3:.2f}",
                 f"{s.last_s.median * 1e3:.2f}", f"{s.separate_s * 1e3:.2f}", f"{s.scoring_shared_over_last:.2f}x",
                 f"{s.scoring_separate_over_last:.2f}x") for s in trunk.scoring]  # fmt: skip
        headers = ["batch", "tokens", "branches", "all together ms", "last alone ms", "each alone, summed ms",
                   "together / last", "separate / last"]  # fmt: skip
        table = tabulate(scoring, headers=headers, tablefmt="github", disable_numparse=True)
        out += [f"Scoring ({trunk.model}):", table]
    for e in trunk.e2e:
        out += [f"End to end ({trunk.model}, {e.suite} suite, {e.limit} items per dataset, {len(e.branches)} branches "
                f"x {len(e.datasets)} datasets): evalkit run {e.evalkit_s:.1f} s, stock OpenCompass {e.stock_s:.1f} s, "
                f"stock / evalkit {e.e2e_stock_over_evalkit:.2f}x; predictions identical: "
                f"{str(e.predictions_identical).lower()} ({e.items_compared} items).",
                f"Baseline: {e.baseline}."]  # fmt: skip
    out += [f"Note: {n}" for n in trunk.notes]
    return "\n\n".join(out)


def _gbps(record: BenchRecord) -> str:
    if record.peak_bandwidth_gbps is None:
        return "unknown (MBU not reported; pass --peak-bandwidth)"
    return f"{record.peak_bandwidth_gbps:g} GB/s ({record.peak_bandwidth_source})"


def format_params(n: int) -> str:
    """A parameter count as 7.62B, 283.97M, 209.73K."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _backends(record: BenchRecord) -> str:
    """What "hf" and "fast" were in this run."""
    attn = record.config.get("attn", "sdpa")
    mode = record.protocol.get("decode_mode") or record.config.get("decode_mode", "auto")
    graphs = {"cudagraph": "replayed as a CUDA graph", "compile": "torch.compile", "eager": "eager"}
    return (f"Backends: hf = stock transformers `generate` ({attn} attention); "
            f"fast = evalkit's static-KV-cache decoder, {graphs.get(mode, mode)}")
