"""Per-item rows for the report's item browser: each item with every model's prediction and outcome.

Outcomes come from the records (`Item.score`). The text beside them (the prompt, each model's prediction,
the reference answer) comes from the prediction files a run leaves next to its `results.json`
(`predictions/<model>/<dataset abbr>.json`, one entry per evaluated item keyed by its index). A published
record, or a run whose prediction files are gone, still lists its items, with outcomes only.
Item fields a record carries beyond id, score and group (for example a confidence) are shown as they
are; the browser invents none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any

from evalkit.analysis.family_view import families
from evalkit.catalog.datasets import BY_KEY, title
from evalkit.records.results import Item, ResultsRecord

# Long prompts and answers are cut so that a 14,000-item run stays a file a browser opens quickly.
PROMPT_CHARS = 1500
TEXT_CHARS = 600
_BASE_FIELDS = {"id", "score", "group"}


def browser_payload(merged: ResultsRecord, sources: Sequence[tuple[Path | None, ResultsRecord]]) -> dict[str, Any]:
    """Everything the item browser shows, as plain JSON: models in size order, datasets, and items."""
    texts = _texts(sources)
    fams = families(merged)
    order = [b.model.abbr for bs in fams.values() for b in bs]
    models = sorted(merged.models, key=lambda m: (m.abbr not in order, order.index(m.abbr) if m.abbr in order else 0))
    datasets: dict[str, dict[str, Any]] = {}
    extra = [f.name for f in fields(Item) if f.name not in _BASE_FIELDS]
    shown: dict[str, None] = {}  # the extra fields some item has, in order of first sight
    for score in merged.scores:
        if score.items is None:
            continue
        ds = datasets.setdefault(score.dataset, {"title": title(score.dataset), "items": {}})
        for item in score.items:
            row = ds["items"].setdefault(item.id, {"id": item.id, "group": item.group, "answers": {}})
            text = texts.get((score.model, score.dataset, item.id), {})
            for key in ("prompt", "reference"):
                if key not in row and text.get(key):
                    row[key] = text[key]
            answer: dict[str, Any] = {"score": item.score}
            if "prediction" in text:
                answer["prediction"] = text["prediction"]
            for name in extra:
                for key, value in _flat(name, getattr(item, name)).items():
                    answer[key] = value
                    shown[key] = None
            row["answers"][score.model] = answer
    return {
        "models": [{"abbr": m.abbr, "name": m.name, "role": m.role} for m in models],
        "families": [[b.model.abbr for b in bs] for bs in fams.values()],
        "extra_fields": list(shown),
        "datasets": [
            {"key": k, "title": v["title"], "items": list(v["items"].values())}
            for k, v in sorted(datasets.items(), key=lambda kv: list(BY_KEY).index(kv[0]))
        ],
    }


def _flat(name: str, value: Any) -> dict[str, Any]:
    """An item field as the browser shows it: a record of several values (an answer's confidence signals)
    as one entry per value it holds, floats to 4 decimals; absent values not at all."""
    if value is None:
        return {}
    if not is_dataclass(value) or isinstance(value, type):
        return {name: value}
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(value).items() if v is not None}


def _texts(sources: Sequence[tuple[Path | None, ResultsRecord]]) -> dict[tuple[str, str, str], dict[str, str]]:
    """(model, dataset, item id) -> prompt, prediction and reference, from each run's prediction files."""
    out: dict[tuple[str, str, str], dict[str, str]] = {}
    for path, record in sources:
        if path is None or record.kind != "measured":
            continue
        root = path.parent / "predictions"
        for score in record.scores:
            if score.items is None:
                continue
            spec = BY_KEY[score.dataset].opencompass
            groups = {i.group for i in score.items}
            for group in groups:
                abbr = spec.abbr + group if group is not None else spec.abbr
                path = root / score.model / f"{abbr}.json"
                if not path.resolve().is_relative_to(root.resolve()):  # a record's names stay inside its run
                    continue
                entries = _read_predictions(path)
                for index, entry in entries.items():
                    item_id = f"{group}/{index}" if group is not None else index
                    out[(score.model, score.dataset, item_id)] = entry
    return out


def _read_predictions(path: Path) -> dict[str, dict[str, str]]:
    """index -> texts from one OpenCompass predictions file; a missing or unreadable file gives nothing."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, Mapping):
        return {}
    out = {}
    for index, entry in data.items():
        if not isinstance(entry, Mapping):
            continue
        out[str(index)] = {
            "prompt": _cut(_prompt_text(entry.get("origin_prompt")), PROMPT_CHARS),
            "prediction": _cut(str(entry.get("prediction", "")), TEXT_CHARS),
            "reference": _cut(str(entry.get("gold", "")), TEXT_CHARS),
        }
    return out


def _prompt_text(prompt: Any) -> str:
    """A prompt as text: a list of role turns is joined as 'ROLE: text' lines; an empty turn (the opening
    of the answer's own turn, say) is left out."""
    if isinstance(prompt, list):
        return "\n".join(
            f"{p.get('role', '')}: {p.get('prompt', '')}" if isinstance(p, Mapping) else str(p)
            for p in prompt
            if not isinstance(p, Mapping) or p.get("prompt")
        )
    return "" if prompt is None else str(prompt)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more characters]"
