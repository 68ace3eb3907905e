"""The report's Cascade section, its plot, and routing.json: every point behind them.

Reads the merged results record (per-item outcomes and signals) and, with `report --bench`, bench
records for measured seconds; the numbers come from `evalkit.analysis.cascade_summary` and
`evalkit.analysis.agreement`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.analysis.agreement import DRAFT_KS, FamilyAgreement, agreement_tables
from evalkit.analysis.cascade import BOOTSTRAP, Point, Timing
from evalkit.analysis.cascade_summary import DatasetCascade, FamilyCascade, cascades
from evalkit.catalog.datasets import title
from evalkit.records.bench import BenchRecord
from evalkit.records.results import ResultsRecord
from evalkit.reporting import plots
from evalkit.reporting.perf import device_label
from evalkit.reporting.tables import pipe_table

CASCADE_COLOUR = "#d35400"
ORACLE_COLOUR = "#b7950b"


def section(
    record: ResultsRecord, benches: Sequence[tuple[Path, BenchRecord]], plot_dir: Path, queue: plots.PlotQueue
) -> tuple[str, dict[str, Any]]:
    """The section's markdown and the routing.json document."""
    fams = cascades(record, timings=bench_timings([b for _, b in benches]))
    agree = agreement_tables(record)
    doc: dict[str, Any] = {
        "policy": "start at the smallest branch; escalate while its signal is below its threshold",
        "thresholds": "per-branch quantiles of the signal on the training folds; best training accuracy within "
        "each budget; applied to the held-out fold",
        "cost_unit": "layer passes per token (one decoder layer on one token), over the tokens the last branch "
        "alone processes; heads not counted",
        "bootstrap": BOOTSTRAP,
        "families": [_family_json(f) for f in fams],
        "agreement": [_agreement_json(a) for a in agree],
    }
    if not fams:
        return "No family with two or more branches and per-item outcomes in these records.\n", doc
    parts = [_intro(fams[0])]
    where = "; ".join(dict.fromkeys(f"{device_label(b)}, {b.dtype}" for _, b in benches))
    for fam in fams:
        parts.append(_family_text(fam, plot_dir, queue, where))
    parts.append(_agreement_text(agree))
    return "\n".join(parts), doc


def bench_timings(benches: Sequence[BenchRecord]) -> dict[str, Timing]:
    """family -> per-branch measured seconds at batch 1 (the faster backend), where a bench has every branch."""
    rows: dict[str, dict[int, tuple[float, float, float]]] = {}
    for bench in benches:
        for r in bench.rows:
            if r.role != "ours" or r.batch_size != 1 or r.error or r.ttft_s is None or r.tpot_s is None:
                continue
            cell = (r.tpot_s.median, r.ttft_s.median / max(r.prompt_len, 1), r.ttft_s.median)
            known = rows.setdefault(r.model, {}).get(r.exit_layer)
            if known is None or cell[0] < known[0]:
                rows[r.model][r.exit_layer] = cell
    return {
        fam: Timing(tuple(c[1] for _, c in sorted(by.items())), tuple(c[0] for _, c in sorted(by.items())))
        for fam, by in rows.items()
    }


def _intro(fam: FamilyCascade) -> str:
    return (
        "A confidence cascade answers each item with the smallest branch and escalates to the next while the "
        "branch's signal is below its threshold. The signal is the choice margin (probability of the chosen "
        "candidate over the runner-up) on datasets scored by perplexity or loglikelihood, and the mean token "
        "log-probability of the answer on generated ones; both cost no extra model call. Thresholds are chosen "
        f"by {fam.folds}-fold cross-validation over items (seed {fam.seed}), so every cascade point is out of "
        "sample; CIs are 95% bootstrap intervals over items. The matched cascade is, in each fold, the cheapest "
        "whose training accuracy reaches the last branch's, applied to the held-out fold. Cost is in layer "
        "passes per token (heads not counted; the README's cost accounting): a familial cascade reuses the "
        "prompt's trunk below the exit it escalates from and re-decodes the answer, while a cascade of separate "
        "models of the same sizes pays every model in full. routing.json holds every point, with the curves "
        "of the other signals.\n"
    )


def _family_text(fam: FamilyCascade, plot_dir: Path, queue: plots.PlotQueue, where: str = "") -> str:
    last = fam.branches[-1].label
    exits = "/".join(str(e) for e in fam.cost.exits)
    head = f"### {fam.family} (exits {exits})\n\n"
    shown = [d for d in fam.datasets if d.signal is not None]
    if not shown:
        return head + (
            "No item carries confidence signals (a record from before schema version 2, or a run through "
            "OpenCompass's own runners): only the fixed branches and the oracle are known, in the Routing "
            "headroom section.\n"
        )
    panels = ([fam.overall] if fam.overall is not None else []) + shown
    rows = [_headline_row(d, last) for d in panels]
    headers = [
        "Dataset",
        "Items",
        "Signal",
        f"{last} accuracy [95% CI]",
        "Matched cascade accuracy [95% CI]",
        f"Within {last}'s CI",
        "Cost, layer passes/token [95% CI]",
        f"% of {last}'s compute",
        "Separate models' cost",
        "Oracle accuracy (cost)",
    ]
    stem = plot_dir / f"cascade_{fam.family}"
    queue.add(cascade_plot, panels=[_panel(d) for d in panels], last=last, stem=stem)
    lines = [head, _sentence(fam.overall or shown[0], last), "\n", pipe_table(rows, headers), "\n"]
    if fam.missing_signals:
        names = ", ".join(title(d) for d in fam.missing_signals)
        lines.append(f"\nNo signals for {names}: left out of the cascade.\n")
    if any(p.seconds is not None for d in panels for p in d.fixed):
        lines.append("\n" + _seconds_table(panels, last, where))
    lines.append(
        f"\n![cascade](plots/{stem.name}.png)\n\nEach panel: fixed branches (blue, 95% CI; named on the top "
        "axis), the oracle (gold star, a bound no realisable policy reaches), the out-of-sample cascade at each "
        "cost budget (orange, with its accuracy CI shaded), the cascade matched to the last branch (diamond) and "
        "the same cascade's cost as separate models (grey, dashed); the band is the last branch's accuracy CI.\n"
    )
    return "".join(lines)


def _sentence(d: DatasetCascade, last: str) -> str:
    h = d.headline
    where = "overall (datasets weighted equally)" if d.dataset == "overall" else f"on {title(d.dataset)}"
    if h is None or h.trivial or h.point is None or h.fraction is None:
        return f"**{where.capitalize()}, {last} answers no item correctly: a cascade has no accuracy to match.**\n"
    p = h.point
    numbers = (
        f"{p.accuracy:.1f} [{p.accuracy_ci[0]:.1f}, {p.accuracy_ci[1]:.1f}] against {h.target:.1f} "
        f"[{h.target_ci[0]:.1f}, {h.target_ci[1]:.1f}], at {p.cost:.1f} layer passes per token against "
        f"{d.fixed[-1].cost:.1f}; a cascade of separate models would pay {p.separate_cost or float('nan'):.1f}"
    )
    if h.reached:
        return (
            f"**At {last}'s accuracy (within its CI), the cascade uses {100 * h.fraction:.0f}% of its compute "
            f"{where}**: {numbers}.\n"
        )
    return (
        f"**Matched to {last}'s accuracy on the training folds, the cascade falls below {last}'s CI on held-out "
        f"items {where}**, at {100 * h.fraction:.0f}% of its compute: {numbers}.\n"
    )


def _headline_row(d: DatasetCascade, last: str) -> list[str]:
    h, lastp = d.headline, d.fixed[-1]
    name = "Overall" if d.dataset == "overall" else title(d.dataset)
    signal = "per dataset" if d.dataset == "overall" else str(d.signal)
    base = [name, str(d.n), signal, _acc(lastp)]
    oracle = f"{d.oracle.accuracy:.1f} ({d.oracle.cost:.1f})"
    if h is None or h.trivial or h.point is None or h.fraction is None:
        return [*base, f"nothing to match: {last} scores 0", "–", "–", "–", "–", oracle]
    p = h.point
    cost = f"{p.cost:.1f} [{p.cost_ci[0]:.1f}, {p.cost_ci[1]:.1f}]"
    separate = "–" if p.separate_cost is None else f"{p.separate_cost:.1f}"
    reached = "yes" if h.reached else "no"
    return [*base, _acc(p), reached, cost, f"{100 * h.fraction:.0f}%", separate, oracle]


def _acc(p: Point) -> str:
    return f"{p.accuracy:.1f} [{p.accuracy_ci[0]:.1f}, {p.accuracy_ci[1]:.1f}]"


def _seconds_table(panels: Sequence[DatasetCascade], last: str, where: str) -> str:
    rows = []
    for d in panels:
        h = d.headline
        if d.fixed[-1].seconds is None:
            continue
        cascade = "–" if h is None or h.point is None or h.point.seconds is None else f"{h.point.seconds:.3f}"
        rows.append(
            ["Overall" if d.dataset == "overall" else title(d.dataset), *(f"{p.seconds:.3f}" for p in d.fixed), cascade]
        )
    headers = ["Dataset", *(p.label for p in panels[0].fixed), "Matched cascade"]
    return (
        f"Measured seconds per item (bench at batch 1 on {where}: prefill per prompt token and time per output "
        "token of each branch, scaled by each item's recorded token counts; generated datasets only):\n\n"
        + pipe_table(rows, headers)
        + "\n"
    )


def _agreement_text(families: Sequence[FamilyAgreement]) -> str:
    if not families:
        return (
            "\nPer-token agreement: none recorded (it needs a run of several branches on the shared trunk, "
            "schema version 2).\n"
        )
    parts = [
        "\n**Per-token agreement with the last branch** (fraction of its answer tokens each branch predicts, "
        "teacher-forced on that answer), and the draft branch and k with the best estimated speedup for "
        f"self-speculative decoding (k in {', '.join(map(str, DRAFT_KS))}; expected tokens per target step "
        "(1 − a^(k+1))/(1 − a), positions agreeing independently; speedup in layer weights read, heads not "
        "counted; `bench --speculative` measures it; – where no draft is estimated to beat the target alone):\n"
    ]
    for fam in families:
        labels = list(fam.rows[0].agreement)
        rows = [
            [
                title(r.dataset),
                str(r.n),
                *(f"{r.agreement[lab]:.3f}" for lab in labels),
                "–" if r.best is None else f"{r.best.draft}, k={r.best.k}",
                "–" if r.best is None else f"{r.best.tokens_per_step:.2f}",
                "–" if r.best is None else f"{r.best.speedup:.2f}×",
            ]
            for r in fam.rows
        ]
        headers = ["Dataset", "Items", *labels, "Best draft", "Tokens/step", f"Est. speedup over {fam.target}"]
        parts.append(f"\n{fam.family}:\n\n" + pipe_table(rows, headers) + "\n")
    return "".join(parts)


# --- routing.json --------------------------------------------------------------------------------


def _point_json(p: Point) -> dict[str, Any]:
    return {
        "label": p.label,
        "accuracy": p.accuracy,
        "accuracy_ci": list(p.accuracy_ci),
        "cost": p.cost,
        "cost_ci": list(p.cost_ci),
        "separate_cost": p.separate_cost,
        "budget": p.budget,
        "share": p.share,
        "seconds_per_item": p.seconds,
    }


def _dataset_json(d: DatasetCascade) -> dict[str, Any]:
    h = d.headline
    return {
        "dataset": d.dataset,
        "items": d.n,
        "signal": d.signal,
        "fixed": [_point_json(p) for p in d.fixed],
        "oracle": _point_json(d.oracle),
        "cascade": {s: [_point_json(p) for p in pts] for s, pts in d.curves.items()},
        "matched": {s: _point_json(p) for s, p in d.matched.items()},
        "headline": None
        if h is None
        else {
            "target_accuracy": h.target,
            "target_ci": list(h.target_ci),
            "point": None if h.point is None else _point_json(h.point),
            "fraction_of_last_branch_compute": h.fraction,
            "within_last_branch_ci": h.reached,
            "nothing_to_match": h.trivial,
        },
    }


def _family_json(f: FamilyCascade) -> dict[str, Any]:
    return {
        "family": f.family,
        "branches": [{"branch": b.label, "exit_layer": e} for b, e in zip(f.branches, f.cost.exits, strict=True)],
        "folds": f.folds,
        "seed": f.seed,
        "head_layer_passes": f.cost.head,
        "datasets": [_dataset_json(d) for d in f.datasets],
        "overall": None if f.overall is None else _dataset_json(f.overall),
    }


def _agreement_json(a: FamilyAgreement) -> dict[str, Any]:
    return {
        "family": a.family,
        "target": a.target,
        "datasets": [
            {
                "dataset": r.dataset,
                "items": r.n,
                "agreement": r.agreement,
                "best": None
                if r.best is None
                else {
                    "draft": r.best.draft,
                    "k": r.best.k,
                    "tokens_per_step": r.best.tokens_per_step,
                    "speedup": r.best.speedup,
                },
            }
            for r in a.rows
        ],
    }


# --- the plot ------------------------------------------------------------------------------------


def _panel(d: DatasetCascade) -> dict[str, Any]:
    """Plain data for one panel (the plot may draw in a forked process)."""
    curve = sorted(
        d.curves[next(iter(d.curves))] if d.dataset == "overall" else d.curves[str(d.signal)], key=lambda p: p.cost
    )
    return {
        "title": "Overall" if d.dataset == "overall" else f"{title(d.dataset)} ({d.signal})",
        "fixed": [(p.label, p.cost, p.accuracy, *p.accuracy_ci) for p in d.fixed],
        "oracle": (d.oracle.cost, d.oracle.accuracy),
        "cascade": [(p.cost, p.accuracy, *p.accuracy_ci, p.separate_cost) for p in curve],
        "matched": None
        if d.headline is None or d.headline.point is None
        else (
            d.headline.point.cost,
            d.headline.point.accuracy,
        ),
    }


def cascade_plot(
    panels: Sequence[dict[str, Any]], *, last: str, stem: Path, figures: plots.Figures | None = None
) -> list[Path]:
    """Accuracy against layer passes per token: one panel per dataset (overall first)."""
    n = len(panels)
    cols = min(3, n)
    rows = -(-n // cols)
    height = 3.4 * rows + 0.8
    fig = plots._figure(figures, (4.4 * cols, height))
    fig.subplots_adjust(left=0.07, right=0.98, top=1 - 0.5 / height, bottom=0.95 / height, wspace=0.25, hspace=0.55)
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        _draw_panel(ax, panel, last)
        if i == 0:
            handles, labels = ax.get_legend_handles_labels()
            fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    return plots._save(fig, stem, formats=("png",))


def _draw_panel(ax: Any, panel: dict[str, Any], last: str) -> None:
    fixed, cascade = panel["fixed"], np.array(panel["cascade"], dtype=float)
    _, _, last_acc, lo, hi = fixed[-1]
    ax.axhspan(lo, hi, color=plots.BRANCH_COLOUR, alpha=0.08, lw=0)
    if len(cascade):
        ax.fill_between(cascade[:, 0], cascade[:, 2], cascade[:, 3], color=CASCADE_COLOUR, alpha=0.18, lw=0)
        ax.plot(cascade[:, 0], cascade[:, 1], "-o", color=CASCADE_COLOUR, ms=3, lw=1.4, label="cascade (familial)")
        if not np.isnan(cascade[:, 4]).any():
            ax.plot(cascade[:, 4], cascade[:, 1], "--", color="#7f7f7f", lw=1, label="same, separate models")
    xs = [f[1] for f in fixed]
    ys = [f[2] for f in fixed]
    err = plots.bar_lengths(ys, [f[3] for f in fixed], [f[4] for f in fixed])
    ax.errorbar(xs, ys, yerr=err, fmt="o", color=plots.BRANCH_COLOUR, ms=5, capsize=2, label="fixed branch", zorder=3)
    # Branch names on a top axis at their costs: labels next to the points collide with the error bars.
    top = ax.secondary_xaxis("top")
    top.set_xticks(xs, [f[0] for f in fixed], fontsize=7, color=plots.BRANCH_COLOUR)
    top.tick_params(length=2, pad=1)
    ax.plot(*panel["oracle"], marker="*", color=ORACLE_COLOUR, ms=11, ls="none", label="oracle (bound)", zorder=4)
    if panel["matched"] is not None:
        ax.plot(
            *panel["matched"],
            marker="D",
            color=CASCADE_COLOUR,
            mec="black",
            ms=6,
            ls="none",
            label=f"cascade matched to {last}",
            zorder=5,
        )
    right = max([*xs, *(cascade[:, 0] if len(cascade) else []), *(panel["matched"] or (0.0,))[:1]])
    ax.set_xlim(0, right * 1.08)
    values = [v for f in fixed for v in f[2:]] + [panel["oracle"][1]]
    values += [panel["matched"][1]] if panel["matched"] is not None else []
    values += list(cascade[:, 1:4].ravel()) if len(cascade) else []
    lo, hi = max(0.0, min(values) - 5), min(100.0, max(values) + 5)
    if hi - lo < 10:  # accuracy is 0..100: never a negative axis, never a sliver
        lo, hi = max(0.0, hi - 10), max(10.0, hi)
    # Headroom above the top point for its label (above 100 when a branch aces the set), no tick past 100.
    ax.set_ylim(lo, hi + 0.12 * (hi - lo))
    ax.set_yticks([t for t in ax.get_yticks() if lo <= t <= min(hi, 100.0)])
    if not any(values):
        plots.all_zero_note(ax, "every branch scores 0", 8)
    ax.set_xlabel("layer passes per token", fontsize=8)
    ax.set_ylabel("accuracy (points)", fontsize=8)
    ax.tick_params(labelsize=7)
    plots._tidy(ax)
    plots._title(ax, panel["title"], 9, pad=18)  # above the branch names on the top axis
