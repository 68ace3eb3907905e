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
from evalkit.oc.signals import choice_margin, load_signals, prompt_key, signals_path
from evalkit.records.results import Item, Score, Signals

Part = tuple[str | None, dict[str, Any], dict[str, Signals]]  # group, OpenCompass result, signals by item index


def collect_scores(work_dir: Path, models: Sequence[str], dataset_abbrs: Sequence[str]) -> list[Score]:
    """One Score per (model, canonical dataset), from every finished result file; missing ones are skipped."""
    scores = []
    for model in models:
        by_key: dict[str, list[Part]] = {}
        for abbr in dataset_abbrs:
            path = work_dir / "results" / model / f"{abbr}.json"
            if path.is_file():
                key, group = dataset_of(abbr)
                by_key.setdefault(key, []).append((group, _read(path), item_signals(work_dir, model, abbr)))
        scores += [_score(model, key, parts) for key, parts in by_key.items()]
    return scores


def item_signals(work_dir: Path, model: str, dataset_abbr: str) -> dict[str, Signals]:
    """Item index -> its signals: a generated item's from the task's signals file (looked up by its prompt),
    a choice item's margin from its candidates' scores. Items with neither are left out."""
    path = work_dir / "predictions" / model / f"{dataset_abbr}.json"
    if not path.is_file():
        return {}
    predictions = _read(path)
    generated = load_signals(signals_path(work_dir, model, dataset_abbr))
    out: dict[str, Signals] = {}
    for index, entry in predictions.items():
        if not isinstance(entry, dict):
            continue
        margin = choice_margin(entry)
        if margin is not None:
            out[str(index)] = Signals(margin=margin)
        elif generated and "origin_prompt" in entry:
            found = generated.get(prompt_key(entry["origin_prompt"]))
            if found is not None:
                out[str(index)] = found
    return out


def _score(model: str, key: str, parts: list[Part]) -> Score:
    items: list[Item] = []
    group_values = []
    for group, result, signals in parts:
        outcomes = item_outcomes(key, result)
        headline = headline_score(key, result)
        mean = 100 * sum(s for _, s in outcomes) / len(outcomes) if outcomes else 0.0
        if abs(mean - headline) > 1e-6:
            where = f"{model}/{key}" + (f"/{group}" if group else "")
            raise EvalkitError(
                f"{where}: per-item outcomes average {mean:.4f} but OpenCompass reports {headline:.4f}; "
                "the results file is inconsistent, delete it and rerun with --resume"
            )
        items += [
            Item(id=f"{group}/{i}" if group else i, score=s, group=group, signals=signals.get(i)) for i, s in outcomes
        ]
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
