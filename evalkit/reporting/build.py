"""The report: saved results records in, a directory with report.md, plots and monotonicity.json out.

It reads records only (no model, no GPU). Every number comes from a record; nothing is retyped.

    reports/<name>/
      report.html          the same in one self-contained file (plots inline), with a per-item browser
      report.md            provenance, score tables, branch tables, monotonicity, deltas, routing,
                           cascade, performance (with --bench: speed tables, minimum VRAM, Pareto plot)
      monotonicity.json    every inversion with its test
      routing.json         every cascade point (fixed branches, oracle, each signal's cascade), the
                           headline, the agreement table
      plots/*.png, *.svg   monotonicity per dataset and average (PNG and SVG); agreement heatmaps;
                           with bench records: speed against size, accuracy against speed (PNG and SVG)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from evalkit.analysis.monotonic import find_inversions
from evalkit.catalog.datasets import SUITE_TITLES
from evalkit.errors import EvalkitError
from evalkit.records.bench import load_bench
from evalkit.records.io import write_json_atomic, write_text_atomic
from evalkit.records.results import ResultsRecord, load_record, merge_records
from evalkit.records.run_ids import run_path
from evalkit.reporting import cascade as cascade
from evalkit.reporting import perf as perf
from evalkit.reporting import sections as sections
from evalkit.reporting.html import write_html
from evalkit.reporting.items import browser_payload
from evalkit.reporting.plots import PlotQueue
from evalkit.reporting.tables import named_table


def report(
    records: Sequence[str | Path],
    out: str | Path | None = None,
    *,
    stderr: bool = False,
    bench: Sequence[str | Path] = (),
) -> Path:
    """Build the report for one or more results records; returns the path of report.md.

    Several records are merged (a later record wins on the same model and dataset), so a measured
    run and an imported published table can sit in one report. `out` defaults to reports/<run id>.
    """
    if not records:
        raise EvalkitError("report needs at least one results record; pass the results.json of a run")
    loaded = [load_record(p) for p in records]
    benches = [(Path(p), load_bench(p)) for p in bench]  # read first, so a wrong path fails early
    merged = merge_records(loaded, run_id="+".join(r.run_id for r in loaded))
    out_dir = Path(out) if out is not None else _default_out([r.run_id for r in loaded])
    plot_dir = out_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)

    inversions = find_inversions(merged)
    queue = PlotQueue()
    write_json_atomic(
        out_dir / "monotonicity.json",
        {
            "alpha": 0.05,
            "pairs": "all ordered pairs of each family's branches; Holm across the pairs of one dataset",
            "inversions": [i.to_json() for i in inversions],
        },
    )
    cascade_text, routing_doc = cascade.section(merged, benches, plot_dir, queue)
    write_json_atomic(out_dir / "routing.json", routing_doc)
    text = "\n".join(
        [
            f"# Evaluation report: {merged.run_id}\n",
            provenance_section(loaded),
            tables_section(merged, stderr=stderr),
            "## Monotonicity across branches\n\n" + sections.monotonicity(merged, inversions, plot_dir, queue),
            "## Branches against baselines\n\n" + sections.versus_baselines(merged),
            "## Routing headroom\n\n" + sections.routing(merged, plot_dir, queue),
            "## Cascade\n\n" + cascade_text,
            perf.performance(benches, merged, plot_dir, queue),
        ]
    )
    queue.run()
    text = text.rstrip("\n") + "\n"
    payload = browser_payload(merged, [(Path(p), r) for p, r in zip(records, loaded, strict=True)])
    write_html(out_dir, text, payload, f"Evaluation report: {merged.run_id}")
    return write_text_atomic(out_dir / "report.md", text)


def _default_out(run_ids: Sequence[str]) -> Path:
    """reports/<run id>, or reports/<id>+<id>... for several records: one folder directly inside reports/."""
    fix = "fix the record's run_id, or pass --out"
    for run_id in run_ids:
        run_path(Path("reports"), run_id, "run id", fix)  # each is one safe path component
    name = "+".join(run_ids)
    if len(name) > 200:  # within a file name's 255 bytes, still naming the first record
        name = f"{run_ids[0]}+{len(run_ids) - 1}-more"
    return Path("reports") / name


def provenance_section(records: Sequence[ResultsRecord]) -> str:
    """Where the numbers come from: one row per record."""
    rows = []
    for r in records:
        p = r.provenance
        rows.append(
            [
                r.run_id,
                r.kind,
                p.git_revision or "–",
                p.device or "–",
                p.dtype or "–",
                p.data_source or p.source or "–",
                p.finished_at or p.started_at or "–",
            ]
        )
    headers = ["Run", "Kind", "Git revision", "Device", "Dtype", "Data source", "Finished"]
    table = tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
    packages = _packages(records)
    trunk = "".join(_shared_trunk(r, named=len(records) > 1) for r in records)
    return "## Provenance\n\n" + table + "\n" + (f"\nPackages: {packages}.\n" if packages else "") + trunk


def _shared_trunk(record: ResultsRecord, *, named: bool) -> str:
    """Which models of a measured record ran on the shared trunk (nothing for a record without model configs)."""
    on = record.provenance.configs.shared_trunk()
    if on is None:
        return ""
    where = f" in {record.run_id}" if named else ""
    shared = [a for a, v in on.items() if v]
    if not shared:
        return f"\nShared trunk{where}: off for every model.\n"
    alone = [a for a, v in on.items() if not v]
    return (
        f"\nShared trunk{where}: on for {', '.join(shared)}"
        + (f"; off for {', '.join(alone)}" if alone else "")
        + ". The branches on it were scored and decoded together; "
        + (
            "in bf16 about 1 generation in 6 differs from per-branch decoding, as often as stock transformers' "
            "own outputs differ across batch shapes"
            if _half(record.provenance.dtype)
            else "in fp32 its scores equal per-branch evaluation within 1e-5 and its greedy outputs each branch's own"
        )
        + " (README, shared-trunk evaluation).\n"
    )


def _half(dtype: str | None) -> bool:
    """Whether a record's dtype is a 16-bit one; unknown counts as one, the cautious reading."""
    return dtype is None or "16" in dtype


def _packages(records: Sequence[ResultsRecord]) -> str:
    wanted = ("evalkit", "opencompass", "torch", "transformers")
    seen: dict[str, str] = {}
    for r in records:
        for name in wanted:
            if name in r.provenance.packages:
                seen.setdefault(name, str(r.provenance.packages[name]))
    return ", ".join(f"{k} {v}" for k, v in seen.items())


def tables_section(record: ResultsRecord, *, stderr: bool = False) -> str:
    """Suite tables (baselines, then ours in bold) and the branch tables, in the model card's shape."""
    parts = ["## Scores\n"]
    if any(m.role == "ours" for m in record.models):
        parts.append(
            "The suite tables show each family by its default branch (in bold) beside any baselines, as the "
            "model card does; the Branches tables show every branch.\n"
        )
    if stderr:
        parts.append(
            "± is one standard error from per-item outcomes (for MMLU, MMLU-Pro, CMMLU and BBH that of the mean "
            "of subject/task means, the score reported), binomial from n for aggregate-only scores; none where "
            "n is unknown. The average's SE treats datasets as independent.\n"
        )
    branch_tables = [
        ("branches" if suite == "general" else f"branches-{suite}", f"Branches: {name}")
        for suite, name in SUITE_TITLES.items()
    ]
    for table_name, heading in [*SUITE_TITLES.items(), *branch_tables]:
        table = named_table(record, table_name, stderr=stderr)
        if table is not None:
            parts.append(f"### {heading}\n\n{table}\n")
    return "\n".join(parts)
