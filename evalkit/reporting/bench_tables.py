"""Markdown tables of a bench record: speed per cell, fast over hf, minimum VRAM, shared trunk.

The speed and the minimum-VRAM table each have one renderer, which writes a record's rows in a
layout: CONSOLE_SPEED and CONSOLE_VRAM are what `evalkit bench` prints (every row in one table),
REPORT_SPEED and REPORT_VRAM the tables of report.md's performance section (`reporting.perf`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tabulate import tabulate

from evalkit.records.bench import BenchRecord, BenchRow, Ratio, SharedTrunk
from evalkit.reporting.units import format_bytes, format_params

Column = tuple[str, Callable[[BenchRow], str]]  # header, and the cell of a row


@dataclass(frozen=True)
class Style:
    """How a table is written: tabulate's format, the alignment of every column after the first
    (None: tabulate's own) and the text of an empty cell."""

    tablefmt: str
    align: str | None
    blank: str

    def table(self, body: list[list[str]], headers: list[str]) -> str:
        colalign = None if self.align is None else ("left", *(self.align,) * (len(headers) - 1))
        return tabulate(body, headers=headers, tablefmt=self.tablefmt, disable_numparse=True, colalign=colalign)


CONSOLE = Style("github", None, "")
REPORT = Style("pipe", "right", "–")


@dataclass(frozen=True)
class VramLayout:
    """A minimum-VRAM table: label columns, then one column per batch size. Bench rows with the same
    labels (the backends of one model, in the report) share a table row."""

    labels: tuple[Column, ...]
    style: Style


@dataclass(frozen=True)
class SpeedLayout:
    """A speed table row per bench row: its labels, then its timings (header, key in `_timing_cells`).
    A row that did not run has `not_run` in the first timing column and the style's blank in the rest."""

    labels: tuple[Column, ...]
    timings: tuple[tuple[str, str], ...]
    not_run: Callable[[BenchRow], str]
    style: Style


def row_name(row: BenchRow) -> str:
    """A bench row's model as a reader knows it: 'AI-Flow-Ruyi-7B E3B', or a baseline's title."""
    return f"{row.title} {row.branch}" if row.role == "ours" else row.title


CONSOLE_SPEED = SpeedLayout(
    labels=(
        ("model", lambda r: r.model),
        ("branch", lambda r: r.branch),
        ("params", lambda r: format_params(r.num_params)),
        ("backend", lambda r: r.backend),
        ("batch", lambda r: str(r.batch_size)),
    ),
    timings=(
        ("TTFT ms", "ttft"),
        ("TPOT ms (p50 / p99)", "tpot p50/p99"),
        ("decode tok/s", "decode"),
        ("e2e s", "e2e"),
        ("MBU", "mbu"),
    ),
    not_run=lambda r: r.error or "–",
    style=CONSOLE,
)
REPORT_SPEED = SpeedLayout(
    labels=(("Backend", lambda r: r.backend), ("Batch", lambda r: str(r.batch_size))),
    timings=(
        ("TTFT ms", "ttft"),
        ("TPOT ms p50 / p90 / p99", "tpot p50/p90/p99"),
        ("Decode tok/s", "decode"),
        ("E2E s", "e2e"),
        ("Peak GB alloc / reserved", "memory"),
        ("Bytes/token", "bytes"),
        ("MBU", "mbu"),
        ("fast/hf decode (e2e)", "fast/hf"),
    ),
    not_run=lambda r: f"did not run: {r.error or 'no timings'}",
    style=REPORT,
)
CONSOLE_VRAM = VramLayout(
    labels=(("model", lambda r: r.model), ("branch", lambda r: r.branch), ("backend", lambda r: r.backend)),
    style=CONSOLE,
)
REPORT_VRAM = VramLayout(labels=(("Model", row_name),), style=REPORT)


def bench_markdown(record: BenchRecord) -> str:
    env = record.environment
    head = (
        f"Device: {env.device} · torch {env.torch} · transformers {env.transformers} · {record.dtype} · "
        f"peak bandwidth: {_gbps(record)}\nCommand: `{record.command}` · {record.created_at}"
    )
    if record.rows:
        head += "\n" + _backends(record)
    parts = [head, *(f"Note: {n}" for n in record.notes)]
    if record.rows:
        parts += ["### Speed per branch", speed_table(record.rows, CONSOLE_SPEED)]
    if record.ratios:
        rows = [
            (r.model, r.branch, r.batch_size, f"{r.decode_speedup:.2f}x", f"{r.e2e_speedup:.2f}x")
            for r in record.ratios
        ]
        headers = ["model", "branch", "batch", "decode tok/s", "end to end"]
        parts += ["### fast over hf (same run)", tabulate(rows, headers=headers, tablefmt="github")]
    if any(r.peak_allocated_bytes is not None or r.error for r in record.rows):
        parts += ["### Minimum VRAM by batch size", vram_table(record.rows, CONSOLE_VRAM)]
    if record.shared_trunk is not None:
        parts += ["### Shared trunk", trunk_tables(record.shared_trunk)]
    return "\n\n".join(parts) + "\n"


def speed_table(rows: Sequence[BenchRow], layout: SpeedLayout, ratios: Sequence[Ratio] = ()) -> str:
    """One table row per bench row, in the given order; `ratios` fill the fast/hf column."""
    by_cell = {(q.model, q.branch, q.batch_size): q for q in ratios}
    body = []
    for r in rows:
        labels = [cell(r) for _, cell in layout.labels]
        timings = _timing_cells(r, by_cell.get((r.model, r.branch, r.batch_size)))
        if timings is None:
            body.append([*labels, layout.not_run(r), *(layout.style.blank,) * (len(layout.timings) - 1)])
        else:
            body.append([*labels, *(timings[key] for _, key in layout.timings)])
    return layout.style.table(body, [h for h, _ in (*layout.labels, *layout.timings)])


def _timing_cells(r: BenchRow, ratio: Ratio | None) -> dict[str, str] | None:
    """The timing cells of a row that ran, by key; None for a row that did not (an error, or no timings)."""
    if r.error or r.ttft_s is None or r.tpot_s is None or r.decode_tok_s is None or r.e2e_s is None:
        return None
    tp = r.tpot_s
    memory = "n/a"
    if r.peak_allocated_bytes is not None:
        memory = f"{r.peak_allocated_bytes / 1e9:.2f} / {(r.peak_reserved_bytes or 0) / 1e9:.2f}"
    fast_over_hf = "–"
    if r.backend == "fast" and ratio is not None:
        fast_over_hf = f"{ratio.decode_speedup:.2f}x ({ratio.e2e_speedup:.2f}x)"
    return {
        "ttft": f"{r.ttft_s.median * 1e3:.1f}",
        "tpot p50/p99": f"{tp.median * 1e3:.2f} / {tp.p99 * 1e3:.2f}",
        "tpot p50/p90/p99": f"{tp.median * 1e3:.2f} / {tp.p90 * 1e3:.2f} / {tp.p99 * 1e3:.2f}",
        "decode": f"{r.decode_tok_s.median:.1f}",
        "e2e": f"{r.e2e_s.median:.3f}",
        "memory": memory,
        "bytes": format_bytes(r.bytes_per_token),
        "mbu": "–" if r.mbu is None else f"{100 * r.mbu:.1f}%",
        "fast/hf": fast_over_hf,
    }


def vram_table(rows: Sequence[BenchRow], layout: VramLayout) -> str:
    """Minimum VRAM, GB by batch size, one table row per distinct label (see `_vram_cell`)."""
    batches = sorted({r.batch_size for r in rows})
    cells: dict[tuple[str, ...], dict[int, list[BenchRow]]] = {}
    for r in rows:
        cells.setdefault(tuple(cell(r) for _, cell in layout.labels), {}).setdefault(r.batch_size, []).append(r)
    body = [
        [*label, *(_vram_cell(by[b]) if b in by else layout.style.blank for b in batches)]
        for label, by in cells.items()
    ]
    return layout.style.table(body, [*(h for h, _ in layout.labels), *(f"batch={b}" for b in batches)])


def _vram_cell(rows: list[BenchRow]) -> str:
    """The smallest figure among the rows that ran; "> device" where every one ran out of memory."""
    values = [r.min_vram_bytes for r in rows if r.min_vram_bytes is not None and r.error is None]
    if values:
        least = min(values)
        return f"{least / 1e9:.1f} GB" if least >= 1e9 else format_bytes(least)  # a tiny model is not 0.0 GB
    if rows and all(r.error == "out of memory" for r in rows):
        return "> device"
    return "–"


def trunk_tables(trunk: SharedTrunk) -> str:
    out: list[str] = []
    if trunk.decode:
        rows = [
            (
                d.batch_size,
                len(d.branches),
                f"{d.shared_step_s.median * 1e3:.2f}",
                f"{d.last_step_s.median * 1e3:.2f}",
                f"{d.separate_step_s * 1e3:.2f}",
                f"{d.decode_shared_over_last:.2f}x",
                f"{d.decode_separate_over_last:.2f}x",
            )
            for d in trunk.decode
        ]
        headers = [
            "batch",
            "branches",
            "all together ms/step",
            "last alone ms/step",
            "each alone, summed ms/step",
            "together / last",
            "separate / last",
        ]
        out += [f"Decoding ({trunk.model}):", tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)]
    if trunk.scoring:
        scoring = [
            (
                s.batch_size,
                s.seq_len,
                len(s.branches),
                f"{s.shared_s.median * 1e3:.2f}",
                f"{s.last_s.median * 1e3:.2f}",
                f"{s.separate_s * 1e3:.2f}",
                f"{s.scoring_shared_over_last:.2f}x",
                f"{s.scoring_separate_over_last:.2f}x",
            )
            for s in trunk.scoring
        ]
        headers = [
            "batch",
            "tokens",
            "branches",
            "all together ms",
            "last alone ms",
            "each alone, summed ms",
            "together / last",
            "separate / last",
        ]
        table = tabulate(scoring, headers=headers, tablefmt="github", disable_numparse=True)
        out += [f"Scoring ({trunk.model}):", table]
    for e in trunk.e2e:
        out += [
            f"End to end ({trunk.model}, {e.suite} suite, {e.limit} items per dataset, {len(e.branches)} branches "
            f"x {len(e.datasets)} datasets): evalkit run {e.evalkit_s:.1f} s, stock OpenCompass {e.stock_s:.1f} s, "
            f"stock / evalkit {e.e2e_stock_over_evalkit:.2f}x; predictions identical: "
            f"{str(e.predictions_identical).lower()} ({e.items_compared} items).",
            f"Baseline: {e.baseline}.",
        ]
    out += [f"Note: {n}" for n in trunk.notes]
    return "\n\n".join(out)


def _gbps(record: BenchRecord) -> str:
    if record.peak_bandwidth_gbps is None:
        return "unknown (MBU not reported; pass --peak-bandwidth)"
    return f"{record.peak_bandwidth_gbps:g} GB/s ({record.peak_bandwidth_source})"


def _backends(record: BenchRecord) -> str:
    """What "hf" and "fast" were in this run."""
    attn = record.config.get("attn", "sdpa")
    mode = record.protocol.get("decode_mode") or record.config.get("decode_mode", "auto")
    graphs = {"cudagraph": "replayed as a CUDA graph", "compile": "torch.compile", "eager": "eager"}
    return (
        f"Backends: hf = stock transformers `generate` ({attn} attention); "
        f"fast = evalkit's static-KV-cache decoder, {graphs.get(mode, mode)}"
    )
