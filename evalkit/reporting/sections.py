"""The analysis sections of report.md: monotonicity, branches against baselines, routing headroom."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalkit.analysis.family_view import Sized, all_dataset_keys, baselines, common_datasets, families
from evalkit.analysis.monotonic import Inversion
from evalkit.analysis.routing import Headroom, agreement, headroom, outcome_matrix
from evalkit.analysis.stats import (
    Comparison,
    clipped_interval,
    compare,
    format_p,
    mean_comparison,
    mean_se,
    score_interval,
    standard_error,
)
from evalkit.catalog.datasets import AVERAGE, title
from evalkit.records.results import ResultsRecord
from evalkit.reporting import plots
from evalkit.reporting.tables import pipe_table, row_average
from evalkit.reporting.units import format_params

# --- monotonicity ------------------------------------------------------------------------------


def monotonicity(record: ResultsRecord, inversions: list[Inversion], plot_dir: Path, queue: plots.PlotQueue) -> str:
    fams = families(record)
    if not fams:
        return "No family branches in these records; nothing to check.\n"
    parts = [_inversion_table(inversions)]
    for family, branches in fams.items():
        parts.append(_plots(record, family, branches, inversions, plot_dir, queue))
    return "\n".join(parts)


def _inversion_table(inversions: list[Inversion]) -> str:
    if not inversions:
        return "Every larger branch scores at least as high as every smaller one, on every dataset.\n"
    n_sig = sum(i.significant for i in inversions)
    rows = [
        [
            title(i.dataset),
            f"{i.from_} → {i.to}",
            f"{i.from_value:.2f}",
            f"{i.to_value:.2f}",
            f"{i.delta:+.2f}",
            format_p(i.p_value),
            "**yes**" if i.significant else "untested" if i.p_value is None else "no",
            i.method,
        ]
        for i in inversions
    ]
    plural = "inversion" if len(inversions) == 1 else "inversions"
    head = (
        f"{len(inversions)} {plural} (a larger branch below a smaller one), {n_sig} significant at "
        "α = 0.05 after Holm correction across the branch pairs of each dataset. All ordered pairs are "
        "checked, not only neighbours. Also in `monotonicity.json`.\n\n"
    )
    headers = ["Dataset", "Pair", "Smaller", "Larger", "Δ", "p (Holm)", "Significant", "Test"]
    return head + pipe_table(rows, headers) + "\n"


def _plots(
    record: ResultsRecord,
    family: str,
    branches: list[Sized],
    inversions: list[Inversion],
    plot_dir: Path,
    queue: plots.PlotQueue,
) -> str:
    keys = all_dataset_keys(record)
    complete = common_datasets(record, [b.model for b in branches])
    nominal = any(b.nominal for b in branches)
    if any(b.params is None for b in branches):
        return f"Branch sizes of {family} are unknown; no plots.\n"
    images: dict[str, str] = {}
    for key in [AVERAGE, *keys]:
        points = _points(record, branches, complete, key)
        if len(points) < 2:
            continue
        bases = _baseline_values(record, complete, key)
        flagged = [(i.from_, i.to) for i in inversions if i.family == family and i.dataset == key and i.significant]
        stem = plot_dir / f"monotonicity_{family}_{key}"
        queue.add(
            plots.monotonicity_plot,
            points=points,
            baselines=bases,
            title=f"{family}: {title(key)}",
            stem=stem,
            nominal=nominal,
            inverted=flagged,
        )
        images[key] = f"![{title(key)}](plots/{stem.name}.png)"
    if not images:
        return ""
    avg = images.pop(AVERAGE, "No dataset has scores for every branch, so there is no average plot.")
    note = " Sizes are nominal (from the branch names)." if nominal else ""
    note += f" The average is over the {len(complete)} datasets every branch has."
    return (
        f"### {family}\n\nScore against branch size. Bars are 95% CIs: Wilson intervals per dataset (for "
        "MMLU, MMLU-Pro, CMMLU and BBH on their effective number of items), ±1.96 SE cut to 0–100 for the "
        'average; a point with no bar says "n unknown". Baselines dashed; red rings mark '
        f"significant inversions.{note} SVGs sit next to the PNGs.\n\n{avg}\n\n"
        "<details><summary>Per dataset</summary>\n\n" + "\n".join(images.values()) + "\n\n</details>\n"
    )


def _points(record: ResultsRecord, branches: list[Sized], keys: list[str], key: str) -> list[plots.Point]:
    out = []
    for b in branches:
        if key == AVERAGE:
            value = row_average(record, b.model, keys)
            if value is None:
                continue
            se = mean_se([standard_error(s) for k in keys if (s := record.score(b.model.abbr, k)) is not None])
            ci = clipped_interval(value, se)
        else:
            s = record.score(b.model.abbr, key)
            if s is None:
                continue
            value, ci = s.value, score_interval(s)
        out.append(plots.Point(b.label, float(b.params or 0), value, ci))
    return out


def _baseline_values(record: ResultsRecord, keys: list[str], key: str) -> dict[str, float]:
    out = {}
    for m in baselines(record):
        v = row_average(record, m, keys) if key == AVERAGE else getattr(record.score(m.abbr, key), "value", None)
        if v is not None:
            out[m.name] = v
    return out


# --- branches against baselines ----------------------------------------------------------------


def versus_baselines(record: ResultsRecord) -> str:
    bases, fams = baselines(record), families(record)
    if not bases or not fams:
        missing = "no baseline" if not bases else "no family branches"
        return (
            f"The records hold {missing}: evaluate baselines beside the branches with `run --baselines NAME,...`, "
            "or pass both runs' records to `report`.\n"
        )
    keys = all_dataset_keys(record)
    parts = [
        "Δ = branch − baseline in points, with a 95% CI. Paired on common item ids where both have "
        "per-item outcomes (of the mean of subject/task means where that is the score); † marks an unpaired CI "
        "(aggregates only, or no common items).\n"
    ]
    branches = [b for bs in fams.values() for b in bs]
    for base in bases:
        table = {k: [_compare(record, base.abbr, b.model.abbr, k) for b in branches] for k in keys}
        rows = [[title(k), *map(_delta_cell, comps)] for k, comps in table.items() if any(comps)]
        complete = [[c for c in comps if c is not None] for comps in table.values() if all(comps)]
        if complete:
            means = [mean_comparison([comps[j] for comps in complete]) for j in range(len(branches))]
            rows.append([f"Average ({len(complete)})", *map(_delta_cell, means)])
        parts.append(f"**vs {base.name}**\n\n" + pipe_table(rows, ["Dataset", *(b.label for b in branches)]) + "\n")
    return "\n".join(parts)


def _compare(record: ResultsRecord, base: str, branch: str, key: str) -> Comparison | None:
    a, b = record.score(base, key), record.score(branch, key)
    return compare(a, b) if a is not None and b is not None else None


def _delta_cell(c: Comparison | None) -> str:
    if c is None:
        return "–"
    mark = "" if c.paired else " †"
    if c.ci is None:
        return f"{c.delta:+.2f} (n unknown){mark}"
    return f"{c.delta:+.2f} [{c.ci[0]:+.1f}, {c.ci[1]:+.1f}]{mark}"


# --- routing headroom --------------------------------------------------------------------------


def routing(record: ResultsRecord, plot_dir: Path, queue: plots.PlotQueue) -> str:
    fams = families(record)
    parts = []
    for family, branches in fams.items():
        keys = all_dataset_keys(record)
        rooms = [h for k in keys if (h := headroom(record, branches, k)) is not None]
        if not rooms:
            parts.append(f"### {family}\n\nNeeds per-item outcomes for every branch; these records have none.\n")
            continue
        parts.append(f"### {family}\n\n" + _headroom_table(rooms, branches) + "\n")
        parts.append(_agreement(record, family, branches, keys, plot_dir, queue))
    return "\n".join(parts) if parts else "No family branches in these records.\n"


def _headroom_table(rooms: list[Headroom], branches: list[Sized]) -> str:
    rows = []
    for h in rooms:
        size = "–" if h.oracle_mean_params is None else format_params(h.oracle_mean_params)
        saving = "–"
        if h.oracle_mean_params is not None and h.largest_params:
            saving = f"{100 * (1 - h.oracle_mean_params / h.largest_params):.0f}%"
        shares = " / ".join(f"{100 * h.share[b.label]:.0f}" for b in branches)
        rows.append(
            [
                title(h.dataset),
                str(h.n),
                f"{h.largest_accuracy:.2f}",
                f"{h.oracle_accuracy:.2f}",
                f"{h.oracle_accuracy - h.largest_accuracy:+.2f}",
                size,
                saving,
                shares,
            ]
        )
    labels = "/".join(b.label for b in branches)
    headers = [
        "Dataset",
        "Items",
        f"{branches[-1].label}",
        "Oracle",
        "Headroom",
        "Oracle mean size",
        "Size saved",
        f"Items routed % ({labels})",
    ]
    intro = (
        "An oracle router sends each item to the smallest branch that answers it correctly; items no "
        "branch answers go to the largest and count wrong. Only items every branch has are used.\n\n"
    )
    return intro + pipe_table(rows, headers)


def _outcome_word(outcomes: np.ndarray) -> str:
    first = float(outcomes.flat[0])
    return "wrong" if first == 0.0 else "right" if first == 1.0 else f"scored {first:g}"


def _agreement(
    record: ResultsRecord, family: str, branches: list[Sized], keys: list[str], plot_dir: Path, queue: plots.PlotQueue
) -> str:
    mats = {k: x for k in keys if (x := outcome_matrix(record, branches, k)) is not None}
    if not mats:
        return ""
    # A dataset on which every branch has the same outcome on every item (all wrong, say) agrees trivially:
    # marked in its panel and left out of the pooled matrix, which it would only pull towards 1.
    trivial = {k for k, x in mats.items() if np.all(x == x.flat[0])}
    informative = [x for k, x in mats.items() if k not in trivial] or list(mats.values())
    pooled = agreement(np.concatenate(informative, axis=1))
    labels = [b.label for b in branches]
    rows = [[labels[i], *(f"{pooled[i, j]:.3f}" for j in range(len(labels)))] for i in range(len(labels))]
    stem = plot_dir / f"agreement_{family}"
    queue.add(
        plots.agreement_heatmap, matrix=pooled, labels=labels, title=f"{family}: same outcome, all datasets", stem=stem
    )
    grid = plot_dir / f"agreement_{family}_by_dataset"
    queue.add(
        plots.agreement_grid,
        matrices={
            title(k) + (f" (all {_outcome_word(x)})" if k in trivial else ""): agreement(x) for k, x in mats.items()
        },
        labels=labels,
        stem=grid,
    )
    n = sum(x.shape[1] for x in informative)
    left_out = [title(k) for k in mats if k in trivial] if len(informative) < len(mats) else []
    note = (
        f"; left out: {', '.join(left_out)}, where every branch has the same outcome on every item" if left_out else ""
    )
    datasets = f"{len(informative)} dataset{'s' if len(informative) != 1 else ''}"
    return (
        f"Agreement: the fraction of items on which two branches have the same outcome "
        f"({n} items over {datasets}{note}).\n\n" + pipe_table(rows, ["", *labels]) + "\n\n"
        f"![agreement](plots/{stem.name}.png)\n\n<details><summary>Per dataset</summary>\n\n"
        f"![agreement by dataset](plots/{grid.name}.png)\n\n</details>\n"
    )
