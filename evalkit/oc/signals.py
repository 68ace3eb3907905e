"""Getting each item's confidence signals from the model into the results record.

Generated answers: OpenCompass hands the model prompts and keeps only the texts, so the model puts each
answer's signals (`evalkit.engine.signals`) in the signal sink of the task running it, keyed by a digest
of the exact prompt it was given; the in-process driver opens a sink around each inference task and
writes it, atomically, to `signals/<model>/<dataset>.json` beside OpenCompass's predictions. Collection
reads each item's prompt back from the predictions file (`origin_prompt`, the prompt the model was
given) and looks its signals up by the same digest. A resumed task adds to the signals its earlier
session wrote. On workers each task opens its own sink the same way (`evalkit.oc.tasks`); a shard of a
dataset writes `signals/<model>/<dataset>@<start>-<stop>.json`, and the shards' files are joined into
the dataset's when its predictions are (`join_shards`), so tasks running at once never share a file.

Choice datasets scored by perplexity or loglikelihood need no sink: OpenCompass's predictions file
keeps every candidate's score, and the margin is read from them (`choice_margin`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.records.checks import RecordError, read_json
from evalkit.records.io import write_json_atomic
from evalkit.records.results import SIGNAL_FIELDS, Signals, signals_from_dict

SIGNALS_DIR = "signals"
_SINK: ContextVar[dict[str, dict[str, Any]] | None] = ContextVar("evalkit_signal_sink", default=None)


def prompt_key(prompt: Any) -> str:
    """A digest of a prompt as the model received it: text, or role turns (a PromptList or its JSON form)."""
    if isinstance(prompt, str):
        canonical: Any = prompt
    else:
        canonical = [p if isinstance(p, str) else [p.get("role"), p.get("prompt")] for p in prompt]
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()


def record_signals(prompt: Any, signals: Signals | None) -> None:
    """Keep one answer's signals in the running task's sink; nothing happens without one."""
    sink = _SINK.get()
    if sink is not None and signals is not None:
        sink[prompt_key(prompt)] = {k: v for k, v in asdict(signals).items() if v is not None}


def signals_path(work_dir: Path, model_abbr: str, dataset_abbr: str) -> Path:
    return work_dir / SIGNALS_DIR / model_abbr / f"{dataset_abbr}.json"


@contextmanager
def recording(path: Path) -> Iterator[None]:
    """A sink for the task run inside; on the way out (also on an error) its signals, merged with those an
    earlier session of the task wrote, are written to `path`."""
    sink: dict[str, dict[str, Any]] = dict(_read(path)) if path.is_file() else {}
    before = len(sink)
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)
        if len(sink) != before or (sink and not path.is_file()):
            write_json_atomic(path, {"signals": sink})


def join_shards(whole: Path, shards: list[Path]) -> None:
    """Add the signals of a dataset's shard files to its own file, then remove the shard files."""
    present = [p for p in shards if p.is_file()]
    if not present:
        return
    joined: dict[str, Any] = dict(_read(whole)) if whole.is_file() else {}
    for part in present:
        joined.update(_read(part))
    write_json_atomic(whole, {"signals": joined})
    for part in present:
        part.unlink()


def load_signals(path: Path) -> dict[str, Signals]:
    """prompt digest -> signals, from a task's signals file; {} when there is none. A corrupt file is an error."""
    if not path.is_file():
        return {}
    try:
        return {k: signals_from_dict(v, f"{path}: signals[{k[:12]}]") for k, v in _read(path).items()}
    except RecordError as e:
        raise EvalkitError(f"{e}; delete {path} and rerun the task with --resume") from None


def _read(path: Path) -> Mapping[str, Any]:
    data = read_json(path, "signals file", "delete it and rerun the task with --resume")
    sink = data.get("signals") if isinstance(data, dict) else None
    if not isinstance(sink, dict) or not all(
        isinstance(v, dict) and set(v) <= set(SIGNAL_FIELDS) for v in sink.values()
    ):
        raise EvalkitError(f"{path} is not an evalkit signals file; delete it and rerun the task with --resume")
    return sink


def choice_margin(entry: Mapping[str, Any]) -> float | None:
    """The probability margin of the best candidate over the runner-up, from one item of a PPL or LL
    predictions file: the candidates' probabilities are the softmax of -PPL (perplexity: mean negative
    log-likelihood per token, lower is better) or of the loglikelihood. None for a generated item."""
    scores = []
    for key, value in entry.items():
        if not key.startswith("label: ") or not isinstance(value, Mapping):
            continue
        if "PPL" in value:
            scores.append(-float(value["PPL"]))
        elif "Loglikelihood" in value:
            scores.append(float(value["Loglikelihood"]))
    if len(scores) < 2 or not all(math.isfinite(s) for s in scores):
        return None
    top = max(scores)
    weights = sorted((math.exp(s - top) for s in scores), reverse=True)
    return max(0.0, min(1.0, (weights[0] - weights[1]) / math.fsum(weights)))
