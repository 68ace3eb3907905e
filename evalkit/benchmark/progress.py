"""Progress on stderr while a bench runs: one line per comparison, with rounds, interval width and ETA.

On a terminal, a rich progress display: the cells done of those known so far with the time left at
the pace so far, and the comparison in progress with its rounds, the widest interval against the
target and the time against its budget. Elsewhere (a log, CI), one plain line per finished comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from evalkit.benchmark.interleave import Measured, RatioSpec, SoFar, Stopping, interleave
from evalkit.records.bench import Comparison


class BenchProgress:
    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self.live: Any = None
        self.overall: Any = None
        self.current: Any = None

    def __enter__(self) -> BenchProgress:
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.live = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.live.start()
            self.overall = self.live.add_task("bench", total=None, detail="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def expect(self, cells: int) -> None:
        """`cells` more comparisons are coming (one model's, once it has loaded)."""
        self.total += cells
        if self.live is not None:
            self.live.update(self.overall, total=self.total)

    @contextmanager
    def cell(self, label: str) -> Iterator[Callable[[SoFar], None]]:
        """A comparison in progress; yields the `on_round` callback to give `interleave`."""
        if self.live is not None:
            self.current = self.live.add_task(f"  {label}", total=None, detail="")

        def on_round(so_far: SoFar) -> None:
            if self.live is not None:
                self.live.update(self.current, completed=so_far.rounds, detail=_detail(so_far))

        try:
            yield on_round
        finally:
            self.done += 1
            if self.live is not None:
                self.live.remove_task(self.current)
                self.live.update(self.overall, completed=self.done)

    def finished(self, label: str, comparison: Comparison) -> None:
        """One line for a finished comparison: what it found, how it stopped, and the time left."""
        ratios = (
            "; ".join(f"{r.name} {r.value:.2f}x [{r.ci[0]:.2f}, {r.ci[1]:.2f}]" for r in comparison.ratios) or "timed"
        )
        line = (
            f"[{self.done}/{self.total}] {label}: {ratios} ({comparison.rounds} rounds, {comparison.stopped}, "
            f"{comparison.elapsed_s:.1f} s){self._eta()}"
        )
        if self.live is not None:
            self.live.console.print(line, highlight=False, markup=False)
        else:
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def _eta(self) -> str:
        if not self.done or self.done >= self.total:
            return ""
        left = (time.monotonic() - self.started) / self.done * (self.total - self.done)
        return f"; about {int(left // 60)}:{int(left % 60):02d} left"


def _detail(so_far: SoFar) -> str:
    widest = so_far.widest
    width = "interval pending" if widest is None else f"widest ±{widest:.1%} (target {so_far.stopping.target:.0%})"
    return f"round {so_far.rounds}, {width}, {so_far.elapsed_s:.0f}/{so_far.stopping.budget_s:.0f} s"


class Measurer:
    """How a bench runs its comparisons: one stopping rule, warm-up and seed, and progress shown."""

    def __init__(self, stopping: Stopping, warmup: int, seed: int, progress: BenchProgress | None = None) -> None:
        self.stopping, self.warmup, self.seed, self.progress = stopping, warmup, seed, progress

    def compare(
        self,
        label: str,
        conditions: dict[str, Callable[[], Measured]],
        ratios: list[RatioSpec],
        *,
        warmup: int | None = None,
    ) -> Comparison:
        """`interleave` with this bench's rule; `warmup=0` where the caller warmed up already."""
        runs = self.warmup if warmup is None else warmup
        if self.progress is None:
            return interleave(conditions, ratios, stopping=self.stopping, name=label, warmup=runs, seed=self.seed)
        with self.progress.cell(label) as on_round:
            c = interleave(
                conditions, ratios, stopping=self.stopping, name=label, warmup=runs, seed=self.seed, on_round=on_round
            )
        self.progress.finished(label, c)
        return c
