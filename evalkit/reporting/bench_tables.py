"""Markdown tables of a bench record: speed per cell, fast over hf, minimum VRAM, shared trunk.

The speed and the minimum-VRAM table each have one renderer, which writes a record's rows in a
layout: CONSOLE_SPEED and CONSOLE_VRAM are what `evalkit bench` prints (every row in one table),
REPORT_SPEED and REPORT_VRAM the tables of report.md's performance section (`reporting.perf`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tabulate import tabulate

from evalkit.records.bench import BenchRecord, BenchRow, Comparison, Machine, Ratio, SharedTrunk
from evalkit.reporting.intervals import rounds_cell, with_interval
from evalkit.reporting.spec_tables import spec_tables
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
        ("MBU datasheet", "mbu"),
        ("MBU attained", "mbu attained"),
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
        ("MBU datasheet", "mbu"),
        ("MBU attained", "mbu attained"),
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
        f"memory bandwidth: {_gbps(record)}\nCommand: `{record.command}` · {record.created_at}"
    )
    head += "".join(f"\n{line}" for line in method_lines(record))
    if record.rows:
        head += "\n" + _backends(record)
    parts = [head, *(f"Note: {n}" for n in record.notes)]
    if record.rows:
        parts += ["### Speed per branch", speed_table(record.rows, CONSOLE_SPEED)]
    if record.ratios:
        by_name = {c.name: c for c in record.comparisons}
        rows = [
            (
                r.model,
                r.branch,
                r.batch_size,
                with_interval(r.decode_speedup, r.decode_speedup_ci),
                with_interval(r.e2e_speedup, r.e2e_speedup_ci),
                rounds_cell(by_name.get(r.comparison or "")),
            )
            for r in record.ratios
        ]
        headers = ["model", "branch", "batch", "decode tok/s [95% CI]", "end to end [95% CI]", "rounds"]
        parts += [
            "### fast over hf (same run, interleaved)",
            tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True),
        ]
    if any(r.peak_allocated_bytes is not None or r.error for r in record.rows):
        parts += ["### Minimum VRAM by batch size", vram_table(record.rows, CONSOLE_VRAM)]
    if record.shared_trunk is not None:
        parts += ["### Shared trunk", trunk_tables(record.shared_trunk, record.comparisons)]
    if record.speculative is not None:
        table = spec_tables(record.speculative, record.environment.device_type, record.comparisons)
        parts += ["### Self-speculative decoding", table]
    parts += warnings(record)
    return "\n\n".join(parts) + "\n"


def method_lines(record: BenchRecord) -> list[str]:
    """The defaults taken, the machine's state and the measurement rule, for a record's header."""
    lines = []
    if record.defaults:
        lines.append(f"Defaults: {record.defaults}")
    if record.machine is not None:
        lines.append(f"Machine: {describe_machine(record.machine)}")
    p = record.protocol
    if "ci_target" in p:
        lines.append(
            f"Method: conditions interleaved in rounds (order: {p.get('order', 'shuffled')}), at least "
            f"{p.get('iterations')} rounds, then until every ratio's 95% interval is within "
            f"±{float(p['ci_target']):.0%} or {float(p.get('time_budget_s', 0)):g} s per comparison; a ratio is "
            "the median over rounds of the round's ratio, its interval a bootstrap over the rounds"
        )
    return lines


def describe_machine(m: Machine) -> str:
    threads = f"{m.torch_threads} thread{'s' if m.torch_threads != 1 else ''}"
    text = f"{m.cpu_model}, {m.logical_cpus} logical CPUs, torch {threads}"
    if m.load_before or m.load_after:
        before = f"{m.load_before[0]:.2f}" if m.load_before else "?"
        after = f"{m.load_after[0]:.2f}" if m.load_after else "?"
        text += f", load average {before} before / {after} after (1-minute)"
    if m.gpu_sm_mhz is not None:
        text += f", GPU clocks SM {m.gpu_sm_mhz}/{m.gpu_max_sm_mhz or '?'} MHz"
        text += f", memory {m.gpu_mem_mhz or '?'}/{m.gpu_max_mem_mhz or '?'} MHz (now/max)"
    return text


def warnings(record: BenchRecord) -> list[str]:
    return [f"Warning ({f.kind}): {f.message}" for f in record.flags]


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
        fast_over_hf = (
            f"{with_interval(ratio.decode_speedup, ratio.decode_speedup_ci)} "
            f"({with_interval(ratio.e2e_speedup, ratio.e2e_speedup_ci)})"
        )
    return {
        "ttft": f"{r.ttft_s.median * 1e3:.1f}",
        "tpot p50/p99": f"{tp.median * 1e3:.2f} / {tp.p99 * 1e3:.2f}",
        "tpot p50/p90/p99": f"{tp.median * 1e3:.2f} / {tp.p90 * 1e3:.2f} / {tp.p99 * 1e3:.2f}",
        "decode": f"{r.decode_tok_s.median:.1f}",
        "e2e": f"{r.e2e_s.median:.3f}",
        "memory": memory,
        "bytes": format_bytes(r.bytes_per_token),
        "mbu": "–" if r.mbu is None else f"{100 * r.mbu:.1f}%",
        "mbu attained": "–" if r.mbu_attained is None else f"{100 * r.mbu_attained:.1f}%",
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


def trunk_tables(trunk: SharedTrunk, comparisons: Sequence[Comparison] = ()) -> str:
    by_name = {c.name: c for c in comparisons}
    out: list[str] = []
    if trunk.decode:
        rows = [
            (
                d.batch_size,
                len(d.branches),
                f"{d.shared_step_s.median * 1e3:.2f}",
                f"{d.last_step_s.median * 1e3:.2f}",
                f"{d.separate_step_s * 1e3:.2f}",
                with_interval(d.decode_shared_over_last, d.decode_shared_over_last_ci),
                with_interval(d.decode_separate_over_last, d.decode_separate_over_last_ci),
                rounds_cell(by_name.get(d.comparison or "")),
            )
            for d in trunk.decode
        ]
        headers = [
            "batch",
            "branches",
            "all together ms/step",
            "last alone ms/step",
            "each alone, summed ms/step",
            "together / last [95% CI]",
            "separate / last [95% CI]",
            "rounds",
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
                with_interval(s.scoring_shared_over_last, s.scoring_shared_over_last_ci),
                with_interval(s.scoring_separate_over_last, s.scoring_separate_over_last_ci),
                rounds_cell(by_name.get(s.comparison or "")),
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
            "together / last [95% CI]",
            "separate / last [95% CI]",
            "rounds",
        ]
        table = tabulate(scoring, headers=headers, tablefmt="github", disable_numparse=True)
        out += [f"Scoring ({trunk.model}):", table]
    if trunk.decode or trunk.scoring:
        out.append(
            "Times are each condition's median; a ratio is the median of the per-round ratios, so it need not "
            "equal the ratio of the medians shown."
        )
    for e in trunk.e2e:
        ratio = f"stock / evalkit {with_interval(e.e2e_stock_over_evalkit, e.e2e_stock_over_evalkit_ci)}"
        runs = (
            "a single measurement of each side, no interval (--e2e-rounds 2 or more gives one)"
            if e.rounds == 1
            else f"median of {e.rounds} interleaved rounds"
        )
        out += [
            f"End to end ({trunk.model}, {e.suite} suite, {e.limit} items per dataset, {len(e.branches)} branches "
            f"x {len(e.datasets)} datasets): evalkit run {e.evalkit_s:.1f} s, stock OpenCompass {e.stock_s:.1f} s, "
            f"{ratio} ({runs}); predictions identical: "
            f"{str(e.predictions_identical).lower()} ({e.items_compared} items).",
            f"Baseline: {e.baseline}.",
        ]
    out += [f"Note: {n}" for n in trunk.notes]
    return "\n\n".join(out)


def _gbps(record: BenchRecord) -> str:
    if record.peak_bandwidth_gbps is None:
        datasheet = "datasheet peak unknown (MBU datasheet not reported; pass --peak-bandwidth)"
    else:
        datasheet = f"datasheet peak {record.peak_bandwidth_gbps:g} GB/s ({record.peak_bandwidth_source})"
    a = record.attained_bandwidth
    if a is None:
        return datasheet
    return f"{datasheet}; attained {a.gbps:.0f} GB/s (range {a.low_gbps:.0f}-{a.high_gbps:.0f}; {a.method})"


def _backends(record: BenchRecord) -> str:
    """What "hf" and "fast" were in this run."""
    attn = record.config.get("attn", "sdpa")
    mode = record.protocol.get("decode_mode") or record.config.get("decode_mode", "auto")
    graphs = {"cudagraph": "replayed as a CUDA graph", "compile": "torch.compile", "eager": "eager"}
    return (
        f"Backends: hf = stock transformers `generate` ({attn} attention); "
        f"fast = evalkit's static-KV-cache decoder, {graphs.get(mode, mode)}"
    )
