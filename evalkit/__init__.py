"""evalkit: evaluate and benchmark a familial early-exit LLM branch by branch against its baselines.

The names below are imported lazily, so `import evalkit` (and `python -m evalkit --help`) stays
instant; torch and OpenCompass load only when a function that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._errors import EvalkitError
from .results import ResultsRecord, load_record, save_record

__version__ = "0.1.0"

_LAZY = {
    "Branch": "family",
    "Family": "family",
    "load_family": "family",
    "parse_branches": "family",
    "make_tiny": "tiny",
    "default_model_path": "tiny",
    "generate_fast": "_generate",
    "generate_branches": "_generate",
    "load_bench": "bench",
}

__all__ = ["EvalkitError", "ResultsRecord", "load_record", "save_record", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
