"""Figures for the report, drawn with matplotlib's object API on the Agg canvas (no pyplot state).

Monotonicity plots and the Pareto plot are written as PNG and SVG side by side; the other figures
as PNG only. SVGs carry no date, so rebuilding a report from the same record gives the same files.

Drawing dominates a report's build time, and most of it is text: measuring and rasterising tick
labels, titles and value labels. A figure that is cleared and drawn again keeps its Agg renderer,
whose text metrics are cached, so `Figures` hands out one reusable figure per size and the plots
of a report are drawn one after the other on it. matplotlib is imported on first use, so importing
this module (and the report) stays cheap.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evalkit.records.io import write_bytes_atomic
from evalkit.reporting.units import axis_scale, format_params

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BRANCH_COLOUR = "#1f5fa8"
BASELINE_COLOURS = ("#7f7f7f", "#b5651d", "#2e8b57", "#8e44ad", "#c0392b", "#16a085")
INVERSION_COLOUR = "#d62728"
SERIES_COLOURS = ("#1f5fa8", "#2e8b57", "#b5651d", "#8e44ad", "#c0392b", "#16a085")
DPI = 110
# Stable SVG element ids; text kept as text (smaller, searchable, and much faster than glyph paths).
_SVG_RC: dict[Any, Any] = {"svg.hashsalt": "evalkit", "svg.fonttype": "none"}


@dataclass(frozen=True)
class Point:
    label: str  # branch name, e.g. "E3B"
    params: float  # parameters (count)
    value: float  # score, points
    ci: tuple[float, float] | None  # 95% confidence interval, points, within 0..100; None when n is unknown


@dataclass(frozen=True)
class SpeedPoint:
    label: str  # branch or model name
    params: float  # parameters (count)
    tokens_per_s: float


class Figures:
    """One reusable figure per size, each on its own Agg canvas; `get` returns it cleared."""

    def __init__(self) -> None:
        self._by_size: dict[tuple[float, float], Figure] = {}

    def get(self, size: tuple[float, float]) -> Figure:
        fig = self._by_size.get(size)
        if fig is None:
            fig = self._by_size[size] = _new_figure(size)
        else:
            fig.clear()
        return fig


def _new_figure(size: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _figure(figures: Figures | None, size: tuple[float, float]) -> Figure:
    return figures.get(size) if figures is not None else _new_figure(size)


def _save(fig: Figure, stem: Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Render each format in memory, then write it atomically: a failed write keeps the old plot."""
    from matplotlib import rc_context

    paths = []
    for fmt in formats:
        buf = io.BytesIO()
        if fmt == "png":  # fast zlib level: the files are a little larger and written several times faster
            fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
        else:
            with rc_context(_SVG_RC):
                fig.savefig(buf, format=fmt, dpi=DPI, metadata={"Date": None})
        paths.append(write_bytes_atomic(stem.with_suffix(f".{fmt}"), buf.getvalue()))
    return paths


def _tidy(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, axis="y", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)


def _title(ax: Axes, text: str, size: float = 11, pad: float = 6) -> None:
    # A fixed y skips matplotlib's search for overlapping tick labels at every draw.
    ax.set_title(text, fontsize=size, loc="left", y=1.0, pad=pad)


def all_zero_note(ax: Any, text: str, fontsize: float) -> None:
    """The boxed note a plot whose every score is 0 carries, so a flat line at 0 does not pass for data."""
    ax.text(
        0.5,
        0.55,
        text,
        transform=ax.transAxes,
        ha="center",
        fontsize=fontsize,
        color="#555555",
        bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#cccccc"},
        zorder=6,
    )


def bar_lengths(values: Any, lows: Any, highs: Any) -> np.ndarray:
    """matplotlib's (2, n) error-bar lengths for intervals [low, high] around values. Never negative: an
    estimate a hair outside its own interval (floating point, or a percentile bootstrap's skew) draws a
    zero-length arm, not an exception."""
    y = np.asarray(values, dtype=float)
    return np.clip(np.vstack([y - np.asarray(lows, dtype=float), np.asarray(highs, dtype=float) - y]), 0.0, None)


def monotonicity_plot(
    points: Sequence[Point],
    baselines: Mapping[str, float],
    *,
    title: str,
    stem: Path,
    nominal: bool = False,
    inverted: Sequence[tuple[str, str]] = (),
    figures: Figures | None = None,
) -> list[Path]:
    """Score against branch size with 95% CI bars; baselines as labelled horizontal lines.

    `inverted` lists (smaller, larger) branch pairs whose inversion is significant; their points
    are ringed in red.
    """
    from matplotlib.ticker import MaxNLocator

    fig = _figure(figures, (7.6, 4.0))
    fig.subplots_adjust(left=0.085, right=0.74, top=0.91, bottom=0.17)
    ax = fig.add_subplot()
    scale, _, word = axis_scale(max(p.params for p in points))
    x = np.array([p.params for p in points]) / scale
    y = np.array([p.value for p in points])
    lows = np.array([p.ci[0] if p.ci else p.value for p in points])
    highs = np.array([p.ci[1] if p.ci else p.value for p in points])
    ax.errorbar(
        x,
        y,
        yerr=bar_lengths(y, lows, highs),
        color=BRANCH_COLOUR,
        marker="o",
        markersize=6,
        linewidth=1.8,
        capsize=4,
        elinewidth=1.2,
        zorder=3,
    )
    label_box = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"}
    for xi, yi, p in zip(x, y, points, strict=True):
        ax.annotate(
            f"{yi:.1f}" if p.ci else f"{yi:.1f} (n unknown)",
            (xi, yi),
            textcoords="offset points",
            xytext=(6, 5),  # right of the point: the first label stays clear of the y axis and its ticks
            ha="left",
            fontsize=8,
            color="#333333",
            bbox=label_box,
            zorder=5,
        )
    flagged = {name for pair in inverted for name in pair}
    ringed = [i for i, p in enumerate(points) if p.label in flagged]
    if ringed:
        ax.scatter(
            x[ringed],
            y[ringed],
            s=170,
            facecolors="none",
            edgecolors=INVERSION_COLOUR,
            linewidths=1.6,
            zorder=4,
            label="significant inversion",
        )
    for (name, value), colour in zip(baselines.items(), BASELINE_COLOURS * 4, strict=False):
        ax.axhline(value, color=colour, linestyle="--", linewidth=1.1, zorder=2)
        ax.annotate(
            f"{name} {value:.1f}",
            (1.0, value),
            xycoords=("axes fraction", "data"),
            xytext=(6, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=8,
            color=colour,
            annotation_clip=False,
        )
    ticks = [p.label if nominal else f"{p.label}\n{format_params(p.params)}" for p in points]
    ax.set_xticks(x, ticks)
    ax.set_ylim(*_score_limits([*lows, *highs, *baselines.values()]))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    if not y.any() and not any(baselines.values()):
        all_zero_note(ax, "every model scores 0 here: no answer was right", 9)
    ax.set_xlabel("branch size (nominal, from the branch name)" if nominal else f"branch parameters ({word})")
    ax.set_ylabel("score (points), 95% CI")
    # Fixed label positions: matplotlib otherwise measures every tick label to place them, each draw.
    ax.xaxis.set_label_coords(0.5, -0.15)
    ax.yaxis.set_label_coords(-0.065, 0.5)
    _title(ax, title)
    ax.margins(x=0.07)
    _tidy(ax)
    if ringed:  # the rest is said by the axis labels and the report's caption; outside, so it covers no point
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.1), fontsize=8, frameon=False)
    return _save(fig, stem)


def _score_limits(values: Sequence[float]) -> tuple[float, float]:
    """y limits for scores: the data with a margin, at least 10 points tall, never outside 0..100 (+ room
    above 0 for the value labels, which sit above their points)."""
    lo, hi = min(values), max(values)
    pad = max(2.0, 0.08 * (hi - lo))
    lo, hi = max(0.0, lo - pad), min(100.0, hi + pad)
    if hi - lo < 10.0:
        hi = min(100.0, lo + 10.0)
        lo = max(0.0, hi - 10.0)
    return lo - 0.02 * (hi - lo) if lo == 0.0 else lo, hi + 0.06 * (hi - lo)


def _floor_tenth(values: np.ndarray) -> float:
    return max(0.0, float(np.floor(values.min() * 10) / 10))


def _heatmap(ax: Axes, matrix: np.ndarray, labels: Sequence[str]) -> Any:
    im = ax.imshow(matrix, vmin=_floor_tenth(matrix), vmax=1.0, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    lo, hi = im.get_clim()
    mid = (float(lo) + float(hi)) / 2
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if matrix[i, j] > mid else "black"
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7, color=colour)
    return im


def agreement_heatmap(
    matrix: np.ndarray, labels: Sequence[str], *, title: str, stem: Path, figures: Figures | None = None
) -> list[Path]:
    """One agreement matrix (fraction of items with the same outcome) as an annotated heatmap (PNG)."""
    fig = _figure(figures, (4.6, 3.9))
    ax = fig.add_axes((0.13, 0.1, 0.6, 0.78))
    im = _heatmap(ax, matrix, labels)
    fig.colorbar(im, cax=fig.add_axes((0.78, 0.1, 0.035, 0.78)), label="same outcome (fraction of items)")
    _title(ax, title, 10)
    return _save(fig, stem, formats=("png",))


def agreement_grid(
    matrices: Mapping[str, np.ndarray], labels: Sequence[str], *, stem: Path, figures: Figures | None = None
) -> list[Path]:
    """Small multiples: one agreement heatmap per dataset, on a shared colour scale, values written in.

    The heatmaps are tiles of one image on one axes (a blank cell between tiles), which draws in a
    fraction of the time of one axes per dataset; branch labels sit on the left edge and under the last
    tile of each column, so a short last row leaves no labelled empty slots.
    """
    n, k = len(matrices), len(labels)
    cols = min(4, n)
    rows = -(-n // cols)
    step = k + 1
    mosaic = np.full((rows * step - 1, cols * step - 1), np.nan)
    for i, m in enumerate(matrices.values()):
        r, c = divmod(i, cols)
        mosaic[r * step : r * step + k, c * step : c * step + k] = m
    fig = _figure(figures, (2.3 * cols + 1.2, 2.3 * rows + 0.3))
    ax = fig.add_axes((0.07, 0.04, 0.8, 0.92))
    vmin = min(_floor_tenth(m) for m in matrices.values())
    im = ax.imshow(mosaic, vmin=vmin, vmax=1.0, cmap="Blues", interpolation="nearest")
    mid = (vmin + 1.0) / 2
    for i, (title, m) in enumerate(matrices.items()):
        r, c = divmod(i, cols)
        ax.text(c * step + (k - 1) / 2, r * step - 0.65, title, ha="center", va="bottom", fontsize=9)
        for a in range(k):
            for b in range(k):
                colour = "white" if m[a, b] > mid else "black"
                ax.text(
                    c * step + b, r * step + a, f"{m[a, b]:.2f}", ha="center", va="center", fontsize=6, color=colour
                )
        if r == (n - 1 - c) // cols:  # the last tile of its column: branch names under it, not under a gap
            for j, label in enumerate(labels):
                ax.text(c * step + j, r * step + k - 0.4, label, ha="center", va="top", fontsize=7, rotation=90)
    ax.set_xticks([])
    ax.set_yticks([r * step + j for r in range(rows) for j in range(k)], list(labels) * rows, fontsize=7)
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    fig.colorbar(im, cax=fig.add_axes((0.9, 0.3, 0.015, 0.4)), label="same outcome (fraction of items)")
    return _save(fig, stem, formats=("png",))


def pareto_plot(
    accuracy: Mapping[str, float],
    tokens_per_s: Mapping[str, float],
    *,
    title: str,
    stem: Path,
    baselines: Sequence[str] = (),
    figures: Figures | None = None,
) -> list[Path]:
    """Accuracy against decode speed per branch, with the Pareto frontier (faster and better) drawn.

    Takes the minimal shapes {name: accuracy points} and {name: tokens per second}; names missing
    from either are left out. Names in `baselines` are drawn as grey squares, the rest as branches.
    """
    names = [b for b in accuracy if b in tokens_per_s]
    frontier = pareto_front({b: (tokens_per_s[b], accuracy[b]) for b in names})
    fig = _figure(figures, (6.4, 4.2))
    fig.subplots_adjust(left=0.11, right=0.96, top=0.86, bottom=0.13)
    ax = fig.add_subplot()
    for group, colour, marker, label in (
        (False, BRANCH_COLOUR, "o", "branches"),
        (True, BASELINE_COLOURS[0], "s", "baselines"),
    ):
        members = [b for b in names if (b in baselines) is group]
        if members:
            ax.scatter(
                [tokens_per_s[b] for b in members],
                [accuracy[b] for b in members],
                color=colour,
                marker=marker,
                zorder=3,
                label=label,
            )
    for name in names:
        ax.annotate(name, (tokens_per_s[name], accuracy[name]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    fs = sorted((tokens_per_s[b], accuracy[b]) for b in frontier)
    if len(fs) > 1:  # one point that beats the rest is no trade-off: no frontier to draw or name
        # Accuracy attainable at each speed: a step down just after each frontier point's speed.
        ax.step(
            [p[0] for p in fs],
            [p[1] for p in fs],
            where="pre",
            color=INVERSION_COLOUR,
            linewidth=1.2,
            linestyle=":",
            label="Pareto frontier",
        )
    if len(fs) > 1 or (baselines and len(names) > len([b for b in names if b in baselines])):
        ax.legend(loc="best", fontsize=8, frameon=False)
    elif len(fs) == 1 and len(names) > 1:
        ax.text(
            0.02,
            0.02,
            f"{frontier[0]} is fastest and most accurate: no trade-off",
            transform=ax.transAxes,
            fontsize=8,
            color="#555555",
        )
    ax.margins(x=0.12, y=0.1)
    ax.set_xlabel("decode speed (tokens/s)")
    ax.set_ylabel("accuracy (points)")
    _title(ax, title, 10)
    _tidy(ax)
    return _save(fig, stem)


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """Names not dominated in (speed, accuracy): nothing else is at least as fast and as accurate."""
    front = []
    for name, (s, a) in points.items():
        dominated = any(
            s2 >= s and a2 >= a and (s2 > s or a2 > a) for other, (s2, a2) in points.items() if other != name
        )
        if not dominated:
            front.append(name)
    return front


def speed_size_plot(
    lines: Mapping[str, Sequence[SpeedPoint]],
    others: Sequence[SpeedPoint],
    *,
    title: str,
    stem: Path,
    figures: Figures | None = None,
) -> list[Path]:
    """Decode tokens/s against parameters: one line per series (a family at one batch size), and
    single models (baselines, at batch 1) as labelled grey squares. Log-scaled when speeds span over 10x (PNG)."""
    everything = [p for pts in lines.values() for p in pts] + list(others)
    scale, _, unit = axis_scale(max((p.params for p in everything), default=1.0))
    fig = _figure(figures, (6.4, 4.2))
    fig.subplots_adjust(left=0.12, right=0.96, top=0.86, bottom=0.13)
    ax = fig.add_subplot()
    for (label, pts), colour in zip(lines.items(), SERIES_COLOURS * 4, strict=False):
        ax.plot(
            [p.params / scale for p in pts],
            [p.tokens_per_s for p in pts],
            color=colour,
            marker="o",
            linewidth=1.6,
            label=label,
        )
    if others:
        ax.scatter(
            [p.params / scale for p in others],
            [p.tokens_per_s for p in others],
            color=BASELINE_COLOURS[0],
            marker="s",
            zorder=3,
            label="baselines, batch=1",
        )
        for p in others:
            ax.annotate(
                p.label, (p.params / scale, p.tokens_per_s), textcoords="offset points", xytext=(6, 4), fontsize=8
            )
    speeds = [p.tokens_per_s for p in everything]
    if speeds and min(speeds) > 0 and max(speeds) / min(speeds) > 10:
        ax.set_yscale("log")
    ax.margins(x=0.15)
    ax.set_xlabel(f"parameters ({unit})")
    ax.set_ylabel("decode speed (tokens/s)")
    _title(ax, title, 10)
    _tidy(ax)
    if speeds:
        ax.legend(loc="best", fontsize=8, frameon=False)
    return _save(fig, stem, formats=("png",))


@dataclass
class PlotQueue:
    """Figures to draw, collected while the report text is built and drawn together at the end.

    Each process draws its share one after the other on figures reused by size (see `Figures`).
    With more than one CPU and enough figures, one forked child draws every other figure while
    this process draws the rest; matplotlib is imported before the fork, so the child starts warm.
    """

    jobs: list[tuple[Callable[..., list[Path]], dict[str, Any]]] = field(default_factory=list)

    def add(self, fn: Callable[..., list[Path]], **kwargs: Any) -> None:
        self.jobs.append((fn, kwargs))

    def run(self) -> list[Path]:
        if len(self.jobs) < 4 or (os.cpu_count() or 1) < 2 or "fork" not in mp.get_all_start_methods():
            return _draw(self.jobs)
        import matplotlib.backends.backend_agg  # noqa: F401  (imported once, before the fork)
        import matplotlib.backends.backend_svg  # noqa: F401

        theirs, ours = self.jobs[1::2], self.jobs[0::2]
        with ProcessPoolExecutor(1, mp_context=mp.get_context("fork")) as pool:
            future = pool.submit(_draw, theirs)
            mine = _draw(ours)
            return mine + future.result()


def _draw(jobs: Sequence[tuple[Callable[..., list[Path]], dict[str, Any]]]) -> list[Path]:
    figures = Figures()
    return [p for fn, kw in jobs for p in fn(**kw, figures=figures)]
