"""How a bench ratio reads in a table: its value with its interval, and the rounds behind it."""

from __future__ import annotations

from collections.abc import Sequence

from evalkit.records.bench import Comparison


def with_interval(value: float, ci: Sequence[float] | None) -> str:
    """'1.52x [1.48, 1.57]'; a bare '1.52x' for a version-1 record, which has no interval."""
    return f"{value:.2f}x" if ci is None else f"{value:.2f}x [{ci[0]:.2f}, {ci[1]:.2f}]"


def rounds_cell(c: Comparison | None) -> str:
    """'23 (converged)', '41 (budget: ±7.2%)': the rounds and why they stopped."""
    if c is None:
        return "–"
    if c.stopped in ("budget", "max-rounds") and c.ratios:
        widest = max(r.half_width for r in c.ratios)
        return f"{c.rounds} ({c.stopped}: ±{widest:.1%})"
    return f"{c.rounds} ({c.stopped})"
