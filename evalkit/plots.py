"""Figures for the report, drawn with matplotlib's object API on the Agg canvas (no pyplot state).

Every figure is written as PNG and SVG next to each other; SVGs carry no date, so rebuilding a
report from the same record gives the same files.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure

BRANCH_COLOUR = "#1f5fa8"
BASELINE_COLOURS = ("#7f7f7f", "#b5651d", "#2e8b57", "#8e44ad", "#c0392b", "#16a085")
INVERSION_COLOUR = "#d62728"


@dataclass(frozen=True)
class Point:
    label: str  # branch name, e.g. "E3B"
    params: float  # parameters (count)
    value: float  # score, points
    se: float | None  # standard error, points


def _save(fig: Figure, stem: Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        metadata = {"Date": None} if fmt == "svg" else {"Software": None}
        # Stable element ids; text kept as text (smaller, searchable, and much faster than glyph paths).
        with rc_context({"svg.hashsalt": "evalkit", "svg.fonttype": "none"}):
            fig.savefig(path, format=fmt, dpi=110, metadata=metadata)
        paths.append(path)
    return paths


def _tidy(ax) -> None:  # type: ignore[no-untyped-def]
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, axis="y", color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)


def monotonicity_plot(
    points: Sequence[Point],
    baselines: Mapping[str, float],
    *,
    title: str,
    stem: Path,
    nominal: bool = False,
    inverted: Sequence[tuple[str, str]] = (),
) -> list[Path]:
    """Score against branch size with 95% CI bars; baselines as labelled horizontal lines.

    `inverted` lists (smaller, larger) branch pairs whose inversion is significant; their points
    are ringed in red.
    """
    fig = Figure(figsize=(7.6, 4.0))
    fig.subplots_adjust(left=0.085, right=0.74, top=0.91, bottom=0.17)
    ax = fig.add_subplot()
    x = np.array([p.params for p in points]) / 1e9
    y = np.array([p.value for p in points])
    err = np.array([1.96 * p.se if p.se is not None else 0.0 for p in points])
    ax.errorbar(x, y, yerr=err, color=BRANCH_COLOUR, marker="o", markersize=6, linewidth=1.8,
                capsize=4, elinewidth=1.2, label="branches (95% CI)", zorder=3)
    label_box = {"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"}
    for xi, yi in zip(x, y, strict=True):
        ax.annotate(f"{yi:.1f}", (xi, yi), textcoords="offset points", xytext=(-7, 6), ha="right",
                    fontsize=8, color="#333333", bbox=label_box, zorder=5)
    flagged = {name for pair in inverted for name in pair}
    for xi, yi, p in zip(x, y, points, strict=True):
        if p.label in flagged:
            ax.scatter([xi], [yi], s=170, facecolors="none", edgecolors=INVERSION_COLOUR, linewidths=1.6, zorder=4)
    for (name, value), colour in zip(baselines.items(), BASELINE_COLOURS * 4, strict=False):
        ax.axhline(value, color=colour, linestyle="--", linewidth=1.1, zorder=2)
        ax.annotate(f"{name} {value:.1f}", (1.0, value), xycoords=("axes fraction", "data"),
                    xytext=(6, 0), textcoords="offset points", ha="left", va="center", fontsize=8,
                    color=colour, annotation_clip=False)
    ticks = [p.label if nominal else f"{p.label}\n{p.params / 1e9:.2f}B" for p in points]
    ax.set_xticks(x, ticks)
    ax.set_xlabel("branch size (nominal, from the branch name)" if nominal else "branch parameters")
    ax.set_ylabel("score (points)")
    ax.set_title(title, fontsize=11, loc="left")
    ax.margins(x=0.07)
    _tidy(ax)
    if flagged:
        ax.scatter([], [], s=80, facecolors="none", edgecolors=INVERSION_COLOUR, label="significant inversion")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return _save(fig, stem)


def _floor_tenth(values: np.ndarray) -> float:
    return max(0.0, float(np.floor(values.min() * 10) / 10))


def _heatmap(ax, matrix: np.ndarray, labels: Sequence[str], *, annotate: bool = True,  # type: ignore[no-untyped-def]
             vmin: float | None = None):
    im = ax.imshow(matrix, vmin=_floor_tenth(matrix) if vmin is None else vmin, vmax=1.0, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    if annotate:
        mid = (im.norm.vmin + im.norm.vmax) / 2
        for i in range(len(labels)):
            for j in range(len(labels)):
                colour = "white" if matrix[i, j] > mid else "black"
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7, color=colour)
    return im


def agreement_heatmap(matrix: np.ndarray, labels: Sequence[str], *, title: str, stem: Path) -> list[Path]:
    """One agreement matrix (fraction of items with the same outcome) as an annotated heatmap."""
    fig = Figure(figsize=(4.6, 3.9), layout="constrained")
    ax = fig.add_subplot()
    im = _heatmap(ax, matrix, labels)
    fig.colorbar(im, ax=ax, shrink=0.85, label="same outcome (fraction of items)")
    ax.set_title(title, fontsize=10, loc="left")
    return _save(fig, stem)


def agreement_grid(matrices: Mapping[str, np.ndarray], labels: Sequence[str], *, stem: Path) -> list[Path]:
    """Small multiples: one agreement heatmap per dataset, on a shared colour scale."""
    n = len(matrices)
    cols = min(4, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(2.6 * cols, 2.5 * rows))
    fig.subplots_adjust(left=0.06, right=0.98, top=0.95, bottom=0.04, wspace=0.35, hspace=0.45)
    axes = fig.subplots(rows, cols, squeeze=False)
    vmin = min(_floor_tenth(m) for m in matrices.values())
    im = None
    for k, (ax, (title, m)) in enumerate(zip(axes.flat, matrices.items(), strict=False)):
        im = _heatmap(ax, m, labels, annotate=False, vmin=vmin)
        ax.set_title(title, fontsize=9)
        if k % cols:
            ax.set_yticklabels([])
        if k < n - cols:
            ax.set_xticklabels([])
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    if im is not None:
        fig.colorbar(im, ax=list(axes.flat), shrink=0.6, label="same outcome (fraction of items)")
    return _save(fig, stem, formats=("png",))


def pareto_plot(accuracy: Mapping[str, float], tokens_per_s: Mapping[str, float], *, title: str,
                stem: Path) -> list[Path]:
    """Accuracy against decode speed per branch, with the Pareto frontier (faster and better) drawn.

    Takes the minimal shapes {branch: accuracy points} and {branch: tokens per second}; branches
    missing from either are left out.
    """
    names = [b for b in accuracy if b in tokens_per_s]
    speed = np.array([tokens_per_s[b] for b in names], dtype=float)
    acc = np.array([accuracy[b] for b in names], dtype=float)
    frontier = pareto_front(dict(zip(names, zip(speed, acc, strict=True), strict=True)))
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(speed, acc, color=BRANCH_COLOUR, zorder=3)
    for name, s, a in zip(names, speed, acc, strict=True):
        ax.annotate(name, (s, a), textcoords="offset points", xytext=(6, 4), fontsize=8)
    fs = sorted((tokens_per_s[b], accuracy[b]) for b in frontier)
    if fs:
        ax.step([p[0] for p in fs], [p[1] for p in fs], where="post", color=INVERSION_COLOUR, linewidth=1.2,
                linestyle=":", label="Pareto frontier")
        ax.legend(loc="lower left", fontsize=8, frameon=False)
    ax.set_xlabel("decode speed (tokens/s)")
    ax.set_ylabel("accuracy (points)")
    ax.set_title(title, fontsize=11, loc="left")
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


@dataclass
class PlotQueue:
    """Figures to draw, collected while the report text is built and drawn together at the end.

    Drawing dominates a report's build time, so with several figures and more than one CPU the
    figures are drawn in parallel worker processes (fork, where the platform has it).
    """

    jobs: list[tuple[Callable[..., list[Path]], dict[str, Any]]] = field(default_factory=list)

    def add(self, fn: Callable[..., list[Path]], **kwargs: Any) -> None:
        self.jobs.append((fn, kwargs))

    def run(self) -> list[Path]:
        workers = min(len(self.jobs), os.cpu_count() or 1, 4)
        if workers < 2 or len(self.jobs) < 4 or "fork" not in mp.get_all_start_methods():
            return [p for fn, kw in self.jobs for p in fn(**kw)]
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            futures = [pool.submit(fn, **kw) for fn, kw in self.jobs]
            return [p for f in futures for p in f.result()]
