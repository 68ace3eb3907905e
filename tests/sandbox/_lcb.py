"""The sandboxed LiveCodeBench evaluator over a hand-made dataset, for the tests."""

from __future__ import annotations

from typing import Any


def lcb_evaluator(oc: Any, dataset: list[dict]) -> Any:
    """`oc.SandboxedLCBEvaluator` over `dataset` (the stock constructor loads the release from disk)."""
    ev = object.__new__(oc.SandboxedLCBEvaluator)
    ev.__dict__.update(
        timeout=3, memory_limit_bytes=1 << 30, extractor_version="v1", pred_postprocessor=None, _dataset_replica_idx=0
    )
    ev.dataset = dataset
    return ev
