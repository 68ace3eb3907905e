"""The self-speculative decoding tables of a bench record: the target alone, then every (draft, k), and
the fastest (draft, k) whose every sequence was identical to the target's own output."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from evalkit.records.bench import Comparison, SpecCell, SpeculativeBench
from evalkit.reporting.intervals import rounds_cell, with_interval


def spec_tables(spec: SpeculativeBench, device_type: str, comparisons: Sequence[Comparison] = ()) -> str:
    where = "CPU" if device_type == "cpu" else device_type.upper()
    by_name = {c.name: c for c in comparisons}
    out = [
        f"Target {spec.target} (exit {spec.target_exit}) on {spec.model}; {spec.prompt_len}-token prompts, "
        f"{spec.gen_len} tokens per sequence (EOS ignored); every (draft, k) timed against the target alone "
        "in the same interleaved rounds."
    ]
    if device_type == "cpu":
        out.append(
            "Timings are CPU timings: a CPU is not bound by memory bandwidth as a GPU is at small batch, so they "
            "say nothing about a GPU's speed-up. Acceptance and identity are the point here."
        )
    alone = [(b.batch_size, f"{b.target_s.median * 1e3:.1f}", f"{b.tok_s:.1f}") for b in spec.baselines]
    headers = ["batch", f"target alone ms ({where})", f"tok/s ({where})"]
    out.append(tabulate(alone, headers=headers, tablefmt="github", disable_numparse=True))
    rows = [
        (
            c.draft,
            c.k,
            c.batch_size,
            f"{100 * c.acceptance_rate:.1f}%",
            f"{c.tokens_per_step:.2f}",
            f"{c.tok_s:.1f}",
            with_interval(c.speedup, c.speedup_ci),
            rounds_cell(by_name.get(c.comparison)),
            f"{sum(c.identical_to_target)}/{len(c.identical_to_target)}",
        )
        for c in spec.cells
    ]
    headers = [
        "draft",
        "k",
        "batch",
        "accepted",
        "tokens / target step",
        f"tok/s ({where})",
        f"over target alone ({where}) [95% CI]",
        "rounds",
        "identical to target",
    ]
    out.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    out += spec_best(spec, where)
    out += [f"Note: {n}" for n in spec.notes]
    return "\n\n".join(out)


def spec_best(spec: SpeculativeBench, where: str) -> list[str]:
    """Per batch size, the fastest (draft, k) among those whose every sequence equals the target's output."""
    lines = []
    for b in sorted({c.batch_size for c in spec.cells}):
        exact = [c for c in spec.cells if c.batch_size == b and all(c.identical_to_target)]
        if not exact:
            lines.append(f"Batch {b}: no (draft, k) gave the target's output for every sequence.")
            continue
        best = max(exact, key=lambda c: c.speedup)
        low, high = best.speedup_ci
        lines.append(
            f"Best at batch {b}: draft {best.draft}, k = {best.k}: {best.speedup:.2f}x the target alone "
            f"({where}, 95% CI {low:.2f}–{high:.2f}), {100 * best.acceptance_rate:.0f}% of drafts accepted"
            + _verdict(best)
        )
    return lines


def _verdict(cell: SpecCell) -> str:
    if cell.speedup_ci[1] < 1:
        return "; slower than the target alone (the whole interval is below 1): no draft pays for itself here."
    if cell.speedup < 1:
        return "; no faster than the target alone."
    return "."
