"""Reading OpenCompass's results/<model>/<dataset>.json files back into scores with per-item outcomes.

The per-item extraction lives in `outcomes.item_outcomes`; this module groups result files by canonical
dataset. A grouped dataset (MMLU subjects, BBH tasks) becomes one score whose items carry their
group, and whose value is the unweighted mean of the group scores: the convention of OpenCompass's
summary groups, and so of the published tables evalkit's numbers sit beside.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.catalog.datasets import BY_KEY, dataset_of
from evalkit.errors import EvalkitError
from evalkit.oc.outcomes import headline_score, item_outcomes
from evalkit.records.results import Item, Score


def collect_scores(work_dir: Path, models: Sequence[str], dataset_abbrs: Sequence[str]) -> list[Score]:
    """One Score per (model, canonical dataset), from every finished result file; missing ones are skipped."""
    scores = []
    for model in models:
        by_key: dict[str, list[tuple[str | None, dict[str, Any]]]] = {}
        for abbr in dataset_abbrs:
            path = work_dir / "results" / model / f"{abbr}.json"
            if path.is_file():
                key, group = dataset_of(abbr)
                by_key.setdefault(key, []).append((group, _read(path)))
        scores += [_score(model, key, parts) for key, parts in by_key.items()]
    return scores


def _score(model: str, key: str, parts: list[tuple[str | None, dict[str, Any]]]) -> Score:
    items: list[Item] = []
    group_values = []
    for group, result in parts:
        outcomes = item_outcomes(key, result)
        headline = headline_score(key, result)
        mean = 100 * sum(s for _, s in outcomes) / len(outcomes) if outcomes else 0.0
        if abs(mean - headline) > 1e-6:
            where = f"{model}/{key}" + (f"/{group}" if group else "")
            raise EvalkitError(
                f"{where}: per-item outcomes average {mean:.4f} but OpenCompass reports {headline:.4f}; "
                "the results file is inconsistent, delete it and rerun with --resume"
            )
        items += [Item(id=f"{group}/{i}" if group else i, score=s, group=group) for i, s in outcomes]
        group_values.append(headline)
    value = sum(group_values) / len(group_values)
    return Score(model=model, dataset=key, metric=BY_KEY[key].metric, value=value, n=len(items), items=tuple(items))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise EvalkitError(f"{path} is not valid JSON ({e}); delete it and rerun with --resume") from None
    if not isinstance(data, dict):
        raise EvalkitError(f"{path} is not an OpenCompass results file; delete it and rerun with --resume")
    if "error" in data:
        raise EvalkitError(f"OpenCompass could not score {path.parent.name}/{path.stem}: {data['error']}")
    return data
