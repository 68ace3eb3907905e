"""evalkit: evaluate and benchmark a familial early-exit LLM branch by branch against its baselines.

The stages, in the order data flows through them (each a subpackage; a stage imports only those
before it, see docs/architecture.md):

    catalog    datasets, baselines and model shapes evalkit knows (pure data)
    records    the typed, versioned results and bench records, and atomic writes
    analysis   statistics, monotonicity, routing headroom and the CI gate, over records
    reporting  report.md, report.html, plots and README tables, from records
    load       checkpoint -> Family of branch models; devices, dtypes, the embedded tiny family
    engine     the model protocol, shared-trunk scoring, batched and fast greedy decoding
    sandbox    running generated code confined, and scoring it
    oc         OpenCompass glue: the model wrapper, configs, suites, fixtures, task driver
    evaluation `evalkit run`: options, plan, execution, resume state
    benchmark  `evalkit bench`: throughput, latency, memory and MBU per branch

The names below are imported lazily, so `import evalkit` (and `python -m evalkit --help`) stays
instant; torch and OpenCompass load only when a function that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "EvalkitError": "evalkit.errors",
    # load
    "Branch": "evalkit.load.branches",
    "Family": "evalkit.load.family",
    "load_family": "evalkit.load.family",
    "parse_branches": "evalkit.load.branches",
    "read_branches": "evalkit.load.branches",
    "branches_table": "evalkit.load.export",
    "export_branch": "evalkit.load.export",
    "make_tiny": "evalkit.load.tiny",
    "default_model_path": "evalkit.load.tiny",
    # engine
    "generate_fast": "evalkit.engine.generate",
    "generate_branches": "evalkit.engine.generate",
    "generate_speculative": "evalkit.engine.speculative",
    # records
    "ResultsRecord": "evalkit.records.results",
    "load_record": "evalkit.records.results",
    "save_record": "evalkit.records.results",
    "import_table": "evalkit.records.published",
    "BenchRecord": "evalkit.records.bench",
    "load_bench": "evalkit.records.bench",
    # run
    "run": "evalkit.evaluation.api",
    "RunConfig": "evalkit.evaluation.options",
    "RunResult": "evalkit.evaluation.state",
    "summary": "evalkit.evaluation.summary",
    # after a run
    "report": "evalkit.reporting.build",
    "update_readme": "evalkit.reporting.readme",
    "bench_markdown": "evalkit.reporting.bench_tables",
    "regress": "evalkit.analysis.regress",
    "score_code": "evalkit.sandbox.code",
    # bench
    "bench": "evalkit.benchmark.main",
    "BenchConfig": "evalkit.benchmark.config",
}
_RENAMED = {"score_code": "score_humaneval"}

__all__ = [
    "BenchConfig",
    "BenchRecord",
    "Branch",
    "EvalkitError",
    "Family",
    "ResultsRecord",
    "RunConfig",
    "RunResult",
    "bench",
    "bench_markdown",
    "branches_table",
    "default_model_path",
    "export_branch",
    "generate_branches",
    "generate_fast",
    "generate_speculative",
    "import_table",
    "load_bench",
    "load_family",
    "load_record",
    "make_tiny",
    "parse_branches",
    "read_branches",
    "regress",
    "report",
    "run",
    "save_record",
    "score_code",
    "summary",
    "update_readme",
    "__version__",
]

if TYPE_CHECKING:
    from evalkit.analysis.regress import regress
    from evalkit.benchmark.config import BenchConfig
    from evalkit.benchmark.main import bench
    from evalkit.engine.generate import generate_branches, generate_fast
    from evalkit.engine.speculative import generate_speculative
    from evalkit.errors import EvalkitError
    from evalkit.evaluation.api import run
    from evalkit.evaluation.options import RunConfig
    from evalkit.evaluation.state import RunResult
    from evalkit.evaluation.summary import summary
    from evalkit.load.branches import Branch, parse_branches, read_branches
    from evalkit.load.export import branches_table, export_branch
    from evalkit.load.family import Family, load_family
    from evalkit.load.tiny import default_model_path, make_tiny
    from evalkit.records.bench import BenchRecord, load_bench
    from evalkit.records.published import import_table
    from evalkit.records.results import ResultsRecord, load_record, save_record
    from evalkit.reporting.bench_tables import bench_markdown
    from evalkit.reporting.build import report
    from evalkit.reporting.readme import update_readme
    from evalkit.sandbox.code import score_humaneval as score_code


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), _RENAMED.get(name, name))
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
