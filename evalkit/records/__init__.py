"""Records stage: the typed, versioned documents that pass between stages, and how they are written.

Owns the results record (`results`: one per run, per-item outcomes included), its provenance, the bench
record (`bench`), published score tables read into records (`published`), the estimator that turns
per-item outcomes into a score's value (`estimator`), strict JSON reading and field checks (`checks`),
and atomic writes. It imports only catalog and errors; every later stage reads and writes records
through it.
"""

from evalkit.records.bench import BenchRecord, load_bench, save_bench
from evalkit.records.published import import_table, parse_sizes
from evalkit.records.results import (
    ResultsRecord,
    UnwritableError,
    cannot_write,
    load_record,
    save_record,
    write_json_atomic,
    write_text_atomic,
)

__all__ = [
    "BenchRecord",
    "ResultsRecord",
    "UnwritableError",
    "cannot_write",
    "import_table",
    "load_bench",
    "load_record",
    "parse_sizes",
    "save_bench",
    "save_record",
    "write_json_atomic",
    "write_text_atomic",
]
