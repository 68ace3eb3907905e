"""Per-item outcomes and headline scores from the result files OpenCompass 0.5.4 writes.

`results/<model>/<abbr>.json` holds the headline metric and, by default, per-item `details`. Two shapes
occur among the suites' evaluators (seen by running each one):

* a list, one entry per item, with each field a list over replicas and correctness in `correct`
  (GPQA, BBH, MATH, GSM8K, LiveCodeBench) or `is_correct` (HumanEval, MBPP); the entry's `example_abbr`
  ends in the item's index;
* a dict `{"type": "GEN", "0": {...}, "1": {...}}` that OpenCompass builds itself when the evaluator gives
  no details (AccEvaluator: MMLU, MMLU-Pro, CMMLU, ARC-c, HellaSwag, WinoGrande); an item is correct when
  its post-processed `predictions` equals its `references`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evalkit.catalog.datasets import BY_KEY, Dataset
from evalkit.errors import EvalkitError

_CORRECT_FIELDS = ("correct", "is_correct")


def headline_score(dataset_key: str, result: Mapping[str, Any]) -> float:
    """The dataset's headline metric (0-100) from one OpenCompass results json."""
    metric = _dataset(dataset_key).opencompass.headline
    if metric not in result:
        raise EvalkitError(
            f"OpenCompass result for {dataset_key} has no {metric!r} (keys: {', '.join(map(str, result))}); "
            f"{result.get('error', 'the evaluation did not finish')}"
        )
    return float(result[metric])


def _dataset(dataset_key: str) -> Dataset:
    """The catalog entry of a dataset key; an unknown key fails, naming the valid ones."""
    if dataset_key not in BY_KEY:
        raise EvalkitError(f"unknown dataset {dataset_key!r}; valid datasets are: {', '.join(BY_KEY)}")
    return BY_KEY[dataset_key]


def _mean(value: Any) -> float:
    values = value if isinstance(value, list) else [value]
    return sum(float(bool(v)) for v in values) / len(values)


def _from_list(details: list) -> list[tuple[str, float]]:
    out = []
    for position, entry in enumerate(details):
        field = next((f for f in _CORRECT_FIELDS if f in entry), None)
        if field is None:
            raise EvalkitError(f"OpenCompass item details carry no correctness field ({', '.join(entry)})")
        suffix = str(entry.get("example_abbr", "")).rsplit("_", 1)[-1]
        out.append((suffix if suffix.isdigit() else str(position), _mean(entry[field])))
    return out


def _from_formatted(details: Mapping[str, Any]) -> list[tuple[str, float]]:
    items = sorted(((k, v) for k, v in details.items() if k.isdigit()), key=lambda kv: int(kv[0]))
    return [(k, float(v["predictions"] == v["references"])) for k, v in items]


def item_outcomes(dataset_key: str, result: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(item id, score) per item from one OpenCompass results json, in dataset order.

    The id is the item's index in the evaluated range, as a string; the score is 1.0 or 0.0 (the mean
    over replicas when a dataset is sampled more than once).
    """
    _dataset(dataset_key)  # an unknown dataset fails here, naming the valid ones
    details = result.get("details")
    if not details:
        raise EvalkitError(
            f"OpenCompass result for {dataset_key} has no per-item details; run OpenCompass with "
            f"--dump-eval-details (the default) so evalkit can pair items across models"
        )
    if isinstance(details, list):
        return _from_list(details)
    return _from_formatted(details)
