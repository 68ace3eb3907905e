"""The performance section of report.md: bench records read beside the results records.

Per bench record: the device it ran on (CPU or which GPU, stated next to every table), one speed
table per branch (backend x batch size), the minimum VRAM by batch size in the shape of the Yi
README's table, decode speed against size, and accuracy against decode speed with its Pareto
frontier. Accuracy is a model's average over datasets from the results records; speed is the
bench's median decode tokens/s at batch 1 with the faster backend. Bench models are matched to
results by name: a family by its name (checkpoint names normalised, 'AI-Flow-Ruyi-7B' = 'ruyi-7b')
and its branches by branch name; a baseline when its bench name or title equals the results
model's abbr or display name. Anything unmatched is left out with a note.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evalkit.analysis.family_view import common_datasets
from evalkit.records.bench import BenchRecord, BenchRow
from evalkit.records.results import ModelInfo, ResultsRecord
from evalkit.reporting import plots
from evalkit.reporting.bench_tables import (
    REPORT_SPEED,
    REPORT_VRAM,
    method_lines,
    row_name,
    speed_table,
    trunk_tables,
    vram_table,
    warnings,
)
from evalkit.reporting.spec_tables import spec_tables
from evalkit.reporting.tables import row_average
from evalkit.reporting.units import format_params

BACKEND_TITLES = {"fast": "fast (evalkit's static-cache decoder)", "hf": "hf (stock transformers generate)"}


@dataclass(frozen=True)
class Speed:
    """A model's batch-1 decode speed: the faster backend's median tokens/s."""

    row: BenchRow
    tokens_per_s: float

    @property
    def backend(self) -> str:
        return self.row.backend


def performance(
    benches: Sequence[tuple[Path, BenchRecord]], record: ResultsRecord, plot_dir: Path, queue: plots.PlotQueue
) -> str:
    if not benches:
        return ""
    parts = ["## Performance\n"]
    for path, bench in benches:
        parts.append(_bench_block(path, bench, record, plot_dir, queue))
    return "\n".join(parts)


# --- device and protocol -----------------------------------------------------------------------


def device_label(bench: BenchRecord) -> str:
    """'CPU (x86_64, 2 threads)' or 'GPU: NVIDIA H100 80GB HBM3 (CUDA 12.4)'."""
    env = bench.environment
    if env.device_type == "cpu":  # the record says "cpu (x86_64, 2 threads)"
        return "CPU" + (env.device[3:] if env.device.lower().startswith("cpu") else f": {env.device}")
    cuda = f" (CUDA {env.cuda})" if env.cuda else ""
    return f"GPU: {env.device}{cuda}"


def _caption(bench: BenchRecord, what: str) -> str:
    return f"*{what} · **{device_label(bench)}** · {bench.dtype}*"


def _protocol(bench: BenchRecord) -> str:
    p, c, env = bench.protocol, bench.config, bench.environment
    lines = [
        f"Device: **{device_label(bench)}** · {bench.dtype} · torch {env.torch} · transformers {env.transformers}"
        + (f" · git {_short(env.git_revision)}" if env.git_revision else ""),
        f"Protocol: {p.get('warmup', '?')} warm-up and at least {p.get('iterations', '?')} timed runs per cell "
        f"({p.get('timer', '?')}); prompt {c.get('prompt_len', '?')} tokens, {c.get('gen_len', '?')} generated "
        "(fixed length). Times are medians unless a percentile is named.",
        *method_lines(bench),
    ]
    if bench.peak_bandwidth_gbps is None:
        lines.append("Datasheet memory bandwidth: unknown, so no datasheet MBU (pass `--peak-bandwidth`).")
    else:
        lines.append(
            f"Datasheet memory bandwidth: {bench.peak_bandwidth_gbps:g} GB/s ({bench.peak_bandwidth_source}); "
            "MBU = bytes per token × tokens/s ÷ that peak."
        )
    if (a := bench.attained_bandwidth) is not None:
        lines.append(
            f"Attained memory bandwidth: {a.gbps:.0f} GB/s, measured in the same run ({a.method}); "
            "MBU attained = bytes per token × tokens/s ÷ that figure."
        )
    if c.get("shapes"):
        lines.append(
            "Models are real shapes with random weights (`--shape`): at a fixed output length their "
            "speed is that of the real checkpoints."
        )
    if bench.environment.device_type == "cpu":
        lines.append("These are CPU timings; they say nothing about speed on a GPU.")
    lines.append(f"Command: `{bench.command}` · {bench.created_at}")
    return "\n".join(f"{line}  " for line in lines).rstrip() + "\n"


def _bench_block(path: Path, bench: BenchRecord, record: ResultsRecord, plot_dir: Path, queue: plots.PlotQueue) -> str:
    parts = [f"### Bench {bench.run_id} (`{path.name}`)\n", _protocol(bench), *(f"Note: {n}\n" for n in bench.notes)]
    parts += [f"**{w}**\n" for w in warnings(bench)]
    if not bench.rows and bench.shared_trunk is None and bench.speculative is None:
        parts.append("This bench record has no measurements.\n")
    if bench.rows:
        parts.append(_speed_tables(bench))
        parts.append("#### Minimum VRAM by batch size\n\n" + _vram(bench))
        stem = plot_dir / f"speed_size_{_slug(bench.run_id)}"
        if _speed_size(bench, stem, queue):
            what = "Median decode tokens/s against parameters, the faster backend per point"
            parts.append(
                f"#### Speed against size\n\n{_caption(bench, what)}\n\n![speed against size](plots/{stem.name}.png)\n"
            )
        parts.append("#### Accuracy against speed\n\n" + _pareto(bench, record, plot_dir, queue))
    if bench.shared_trunk is not None:
        parts.append(
            f"#### Shared trunk\n\n{_caption(bench, 'All branches at once vs one')}\n\n"
            + trunk_tables(bench.shared_trunk, bench.comparisons)
            + "\n"
        )
    if bench.speculative is not None:
        what = "A shallow branch drafts, the target verifies; against the target alone"
        parts.append(
            f"#### Self-speculative decoding\n\n{_caption(bench, what)}\n\n"
            + spec_tables(bench.speculative, bench.environment.device_type, bench.comparisons)
            + "\n"
        )
    return "\n".join(parts)


# --- speed tables ------------------------------------------------------------------------------


def _speed_tables(bench: BenchRecord) -> str:
    by_branch: dict[tuple[str, str], list[BenchRow]] = {}
    for r in bench.rows:
        by_branch.setdefault((r.model, r.branch), []).append(r)
    parts = [
        "#### Speed per branch\n\nTTFT: time to the first token (prefill). TPOT: time per output token "
        "after the first. Decode tok/s counts every row of the batch. fast/hf: the two backends measured in "
        "the same run on the same prompts, interleaved round by round; the median of the per-round ratios "
        "with its 95% interval (a bare ratio of medians in records written before intervals).\n"
    ]
    for rows in by_branch.values():
        first = rows[0]
        table = speed_table(sorted(rows, key=lambda r: (r.backend != "hf", r.batch_size)), REPORT_SPEED, bench.ratios)
        what = f"{row_name(first)}, {format_params(first.num_params)} parameters"
        parts.append(f"{_caption(bench, what)}\n\n{table}\n")
    return "\n".join(parts)


def _vram(bench: BenchRecord) -> str:
    """Yi README's shape: one row per model, GB by batch size; the smaller backend's figure per cell."""
    if not any(r.min_vram_bytes is not None or r.error == "out of memory" for r in bench.rows):
        where = (
            "the bench ran on a CPU, which has no GPU memory counters"
            if bench.environment.device_type == "cpu"
            else "this record has no memory figures"
        )
        return f"{_caption(bench, 'Minimum VRAM')}\n\nNot measured: {where}.\n"
    table = vram_table(bench.rows, REPORT_VRAM)
    intro = (
        "Peak allocated GPU memory while generating, less the family's tensors the branch does not read "
        "(what the branch alone would need), the smaller of the backends measured; "
        '"> device" where every backend ran out of memory.'
    )
    return f"{intro}\n\n{_caption(bench, 'Minimum VRAM')}\n\n{table}\n"


# --- plots -------------------------------------------------------------------------------------


def batch1_speeds(bench: BenchRecord) -> dict[tuple[str, str], Speed]:
    """(model, branch) -> the faster backend's median decode tokens/s at batch 1."""
    return _best(bench, 1)


def _best(bench: BenchRecord, batch: int) -> dict[tuple[str, str], Speed]:
    out: dict[tuple[str, str], Speed] = {}
    for r in bench.rows:
        if r.batch_size != batch or r.error or r.decode_tok_s is None:
            continue
        s = Speed(r, r.decode_tok_s.median)
        if (r.model, r.branch) not in out or s.tokens_per_s > out[(r.model, r.branch)].tokens_per_s:
            out[(r.model, r.branch)] = s
    return out


def _speed_size(bench: BenchRecord, stem: Path, queue: plots.PlotQueue) -> bool:
    families = list(dict.fromkeys(r.model for r in bench.rows if r.role == "ours"))
    lines: dict[str, list[plots.SpeedPoint]] = {}
    for b in sorted({r.batch_size for r in bench.rows}):
        best = _best(bench, b)
        for fam in families:
            pts = sorted(
                (
                    plots.SpeedPoint(s.row.branch, s.row.num_params, s.tokens_per_s)
                    for (m, _), s in best.items()
                    if m == fam
                ),
                key=lambda p: p.params,
            )
            if pts:
                lines[f"batch={b}" if len(families) == 1 else f"{fam} batch={b}"] = pts
    others = [
        plots.SpeedPoint(s.row.title, s.row.num_params, s.tokens_per_s)
        for s in batch1_speeds(bench).values()
        if s.row.role != "ours"
    ]
    if not lines and not others:
        return False
    queue.add(
        plots.speed_size_plot,
        lines=lines,
        others=others,
        stem=stem,
        title=f"Decode speed against size\n{device_label(bench)}",
    )
    return True


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower()).removeprefix("aiflow")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "bench"


def _match(row: BenchRow, record: ResultsRecord) -> ModelInfo | None:
    ours = row.role == "ours"
    for m in record.models:
        if ours and m.role == "ours":
            same = (
                bool(m.family)
                and _norm(m.family or "") == _norm(row.model)
                and (m.branch or "").lower() == row.branch.lower()
            )
        elif not ours and m.role != "ours":
            same = bool({_norm(row.model), _norm(row.title), _norm(row.branch)} & {_norm(m.abbr), _norm(m.name)})
        else:
            same = False
        if same:
            return m
    return None


def _pareto(bench: BenchRecord, record: ResultsRecord, plot_dir: Path, queue: plots.PlotQueue) -> str:
    speeds = batch1_speeds(bench)
    if not speeds:
        return "No batch-1 measurements in this bench, so no accuracy-against-speed plot.\n"
    matched = {key: (s, m) for key, s in speeds.items() if (m := _match(s.row, record)) is not None}
    notes = [
        f"{row_name(s.row)} (bench) has no results with a corresponding name; left out."
        for key, s in speeds.items()
        if key not in matched
    ]
    branches = [m for s, m in matched.values() if m.role == "ours"]
    keys = common_datasets(record, branches)
    if not branches or not keys:
        why = "no bench branch matches a results branch" if not branches else "the branches share no dataset"
        return f"No accuracy-against-speed plot: {why}.\n" + "".join(f"\n- {n}" for n in notes) + "\n"
    n_families = len({m.family for m in branches})
    accuracy: dict[str, float] = {}
    speed: dict[str, float] = {}
    backends: dict[str, str] = {}
    base_names = []
    for s, m in matched.values():
        value = row_average(record, m, keys)
        if value is None:
            notes.append(f"{m.name} lacks some of the {len(keys)} datasets the branches have; left out.")
            continue
        label = (m.branch or m.name) if m.role == "ours" and n_families == 1 else m.name
        accuracy[label], speed[label], backends[label] = value, s.tokens_per_s, s.backend
        if m.role != "ours":
            base_names.append(label)
    stem = plot_dir / f"pareto_{_slug(bench.run_id)}"
    queue.add(
        plots.pareto_plot,
        accuracy=accuracy,
        tokens_per_s=speed,
        baselines=base_names,
        stem=stem,
        title=f"Accuracy against decode speed at batch 1\n{device_label(bench)}",
    )
    used = sorted(set(backends.values()))
    which = (
        f"the {BACKEND_TITLES.get(used[0], used[0])} backend for every point"
        if len(used) == 1
        else "the faster backend per point: " + ", ".join(f"{k} {v}" for k, v in backends.items())
    )
    front = plots.pareto_front({k: (speed[k], accuracy[k]) for k in accuracy})
    caption = (
        f"Accuracy: the average over the {len(keys)} datasets every matched branch has, from the results "
        f"records. Speed: median decode tokens/s at batch 1 with {which}. The dotted line is the Pareto "
        f"frontier (nothing else both faster and more accurate): {', '.join(front)}."
    )
    return (
        f"{caption}\n\n{_caption(bench, 'Accuracy against decode speed')}\n\n"
        f"![accuracy against speed](plots/{stem.name}.png)\n"
        + "".join(f"\n- {n}" for n in notes)
        + ("\n" if notes else "")
    )


def _short(revision: str) -> str:
    return revision[:10] + ("+dirty" if revision.endswith("+dirty") else "")
