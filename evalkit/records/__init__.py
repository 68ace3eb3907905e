"""Records stage: the typed, versioned documents that pass between stages, and how they are written.

Owns the results record (`results`: one per run, per-item outcomes included), its provenance, the bench
record (`bench`), published score tables read into records (`published`, with `markdown` finding the
tables), the estimator that turns per-item outcomes into a score's value (`estimator`), strict JSON
reading and field checks (`checks`), the rule for run ids (`run_ids`), and the one atomic writer every
file evalkit writes goes through (`io`). It imports only catalog and errors; every later stage reads and
writes records through it.
"""

from evalkit.records.bench import BenchRecord, load_bench, save_bench
from evalkit.records.io import (
    UnwritableError,
    atomic_directory,
    cannot_write,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from evalkit.records.published import import_table, parse_sizes
from evalkit.records.results import ResultsRecord, load_record, save_record
from evalkit.records.run_ids import check_run_id

__all__ = [
    "BenchRecord",
    "ResultsRecord",
    "UnwritableError",
    "atomic_directory",
    "cannot_write",
    "check_run_id",
    "import_table",
    "load_bench",
    "load_record",
    "parse_sizes",
    "save_bench",
    "save_record",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
