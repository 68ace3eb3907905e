"""Reporting stage: saved records in, what a person reads out.

Owns the report directory (`build`: report.md, plots, monotonicity.json), its sections (`sections`,
`perf`), score tables in the model card's shape (`tables`), bench tables (`bench_tables`), figures
(`plots`) and README tables kept up to date between markers (`readme`). It imports analysis, records
and catalog.
"""

from evalkit.reporting.bench_tables import bench_markdown
from evalkit.reporting.build import report
from evalkit.reporting.readme import update_readme

__all__ = ["bench_markdown", "report", "update_readme"]
