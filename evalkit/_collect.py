"""Reading OpenCompass's results/<model>/<dataset>.json files back into scores with per-item outcomes.

Evaluators write per-item `details` in two shapes: a list of dicts with `correct` / `is_correct`
(one flag per sample), or a dict keyed "0", "1", ... whose entries hold `predictions` and `references`
(plus `correct` where the evaluator gave one). Groups of a clustered dataset (MMLU subjects, BBH tasks)
come back as one score with each item tagged by its group; its value is the mean over all items.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._errors import EvalkitError
from .datasets import BY_KEY
from .results import Item, Score


def collect_scores(work_dir: Path, models: Sequence[str], dataset_abbrs: Sequence[str]) -> list[Score]:
    """One Score per (model, canonical dataset), from every finished result file; missing ones are skipped."""
    from .suites import CONFIGS, dataset_of

    scores = []
    for model in models:
        by_key: dict[str, list[tuple[str | None, dict[str, Any]]]] = {}
        for abbr in dataset_abbrs:
            path = work_dir / "results" / model / f"{abbr}.json"
            if not path.is_file():
                continue
            key, group = dataset_of(abbr)
            by_key.setdefault(key, []).append((group, _read(path)))
        for key, parts in by_key.items():
            scores.append(_score(model, key, CONFIGS[key].metric, parts))
    return scores


def _score(model: str, key: str, metric_key: str, parts: list[tuple[str | None, dict[str, Any]]]) -> Score:
    items: list[Item] = []
    for group, result in parts:
        outcomes = item_scores(result)
        prefix = f"{group}/" if group else ""
        items += [Item(id=f"{prefix}{i}", score=s, group=group) for i, s in enumerate(outcomes)]
        headline = _headline(result, metric_key)
        if group is None and outcomes and headline is not None and abs(100 * _mean(outcomes) - headline) > 1e-6:
            raise EvalkitError(f"{model}/{key}: per-item outcomes average {100 * _mean(outcomes):.4f} but "
                               f"OpenCompass reports {metric_key}={headline}; the results file is inconsistent")
    # Without per-item details, OpenCompass's own number is all there is.
    value = 100 * _mean([i.score for i in items]) if items else (_headline(parts[0][1], metric_key) or 0.0)
    return Score(model=model, dataset=key, metric=BY_KEY[key].metric, value=value, n=len(items),
                 items=tuple(items) or None)


def item_scores(result: dict[str, Any]) -> list[float]:
    """Per-item scores in 0..1, in dataset order, from one OpenCompass results file."""
    details = result.get("details")
    if isinstance(details, list):
        return [_entry_score(d) for d in details]
    if isinstance(details, dict):
        keys = sorted((k for k in details if k.isdigit()), key=int)
        return [_entry_score(details[k]) for k in keys]
    return []


def _entry_score(entry: dict[str, Any]) -> float:
    for key in ("correct", "is_correct", "passed"):
        if key in entry:
            flags = entry[key] if isinstance(entry[key], list) else [entry[key]]
            return _mean([float(bool(f)) for f in flags]) if flags else 0.0
    if "predictions" in entry and "references" in entry:
        return float(str(entry["predictions"]).strip() == str(entry["references"]).strip())
    raise EvalkitError(f"cannot tell whether a result item is correct (keys: {', '.join(sorted(entry))})")


def _headline(result: dict[str, Any], metric_key: str) -> float | None:
    value = result.get(metric_key)
    return float(value) if isinstance(value, (int, float)) else None


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise EvalkitError(f"{path} is not valid JSON ({e}); delete it and rerun with --resume") from None
    if not isinstance(data, dict):
        raise EvalkitError(f"{path} is not an OpenCompass results file; delete it and rerun with --resume") from None
    if "error" in data:
        raise EvalkitError(f"OpenCompass could not score {path.parent.name}/{path.stem}: {data['error']}")
    return data
