"""The results record: one typed, versioned JSON document per run.

Every stage after `run` (report, regress, readme) reads only these records, so a record carries
everything those stages need: per-item outcomes for paired statistics, and the provenance that
says how the numbers were produced. Records are immutable; stages build new ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from evalkit.errors import EvalkitError
from evalkit.records.io import write_json_atomic
from evalkit.records.provenance import RecordError, RunProvenance
from evalkit.records.run_ids import check_run_id

SCHEMA = "evalkit.results"
SCHEMA_VERSION = 1

Role = Literal["ours", "baseline"]
Kind = Literal["measured", "published"]


@dataclass(frozen=True)
class ModelInfo:
    """One evaluated model: a branch of a family, or a baseline (a family with one branch)."""

    abbr: str  # OpenCompass abbr, unique within a record, e.g. "ruyi-7b-e3b"
    name: str  # display name, e.g. "AI-Flow-Ruyi-7B-E3B" or "Qwen2.5-7B-Instruct"
    role: Role = "baseline"
    family: str | None = None  # family identity shared by its branches, e.g. "ruyi-7b"
    branch: str | None = None  # "E3B" ... "E7B"; None for a baseline
    exit_layer: int | None = None
    num_params: int | None = None
    path: str | None = None


@dataclass(frozen=True)
class Item:
    """The outcome of one dataset item: score 1.0 correct, 0.0 wrong (fractions allowed)."""

    id: str
    score: float
    group: str | None = None  # subject or task of a grouped dataset (its score averages the groups)


@dataclass(frozen=True)
class Score:
    model: str  # ModelInfo.abbr
    dataset: str  # canonical key from evalkit.catalog.datasets
    metric: str  # "accuracy" | "pass@1"
    value: float  # in points, 0..100
    n: int  # number of items behind the value
    items: tuple[Item, ...] | None = None  # None for aggregate-only (published) scores


@dataclass(frozen=True)
class Provenance:
    """How a record's numbers were produced; `configs` is typed in `evalkit.records.provenance`."""

    git_revision: str | None = None
    packages: Mapping[str, str] = field(default_factory=dict)
    device: str | None = None
    dtype: str | None = None
    data_source: str | None = None
    command: str | None = None
    configs: RunProvenance = field(default_factory=RunProvenance)  # the run's settings, configs and timings
    started_at: str | None = None  # ISO 8601, UTC
    finished_at: str | None = None
    duration_s: float | None = None
    source: str | None = None  # for published records: where the numbers come from

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "configs": self.configs.to_dict()}


@dataclass(frozen=True)
class ResultsRecord:
    run_id: str
    kind: Kind
    models: tuple[ModelInfo, ...]
    scores: tuple[Score, ...]
    provenance: Provenance = field(default_factory=Provenance)
    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION

    def model(self, abbr: str) -> ModelInfo:
        for m in self.models:
            if m.abbr == abbr:
                return m
        raise KeyError(abbr)

    def score(self, abbr: str, dataset: str) -> Score | None:
        for s in self.scores:
            if s.model == abbr and s.dataset == dataset:
                return s
        return None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "provenance": self.provenance.to_dict()}


def merge_records(records: Iterable[ResultsRecord], run_id: str = "merged") -> ResultsRecord:
    """One record holding the models and scores of several; later records win on a clash."""
    models: dict[str, ModelInfo] = {}
    scores: dict[tuple[str, str], Score] = {}
    kinds = set()
    for r in records:
        kinds.add(r.kind)
        models.update({m.abbr: m for m in r.models})
        scores.update({(s.model, s.dataset): s for s in r.scores})
    kind: Kind = "measured" if "measured" in kinds else "published"
    return ResultsRecord(run_id=run_id, kind=kind, models=tuple(models.values()), scores=tuple(scores.values()))


# --- reading and writing -----------------------------------------------------------------------


def save_record(record: ResultsRecord, path: str | Path) -> Path:
    return write_json_atomic(path, record.to_dict())


def load_record(path: str | Path) -> ResultsRecord:
    """Read and validate a results record; any problem is one clear EvalkitError."""
    path = Path(path)
    if not path.is_file():
        raise EvalkitError(f"results record {path} does not exist; pass the results.json written by `evalkit run`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EvalkitError(
            f"results record {path} is not valid JSON ({e}); the file is corrupt, rerun or restore it"
        ) from None
    try:
        record = record_from_dict(data)
    except RecordError as e:
        raise EvalkitError(f"results record {path}: {e}; fix the record or rerun what wrote it") from None
    except (KeyError, TypeError, ValueError) as e:
        raise EvalkitError(
            f"{path} is not an evalkit results record ({type(e).__name__}: {e}); "
            "pass a results.json written by `evalkit run` or `evalkit import-table`"
        ) from None
    check_run_id(record.run_id, f"results record {path}: run_id", "fix the record's run_id or rerun what wrote it")
    return record


def record_from_dict(data: Mapping[str, Any]) -> ResultsRecord:
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
        raise ValueError(
            f"schema is {data.get('schema') if isinstance(data, Mapping) else None!r}, expected {SCHEMA!r}"
        )
    version = data["schema_version"]
    if version != SCHEMA_VERSION:
        raise ValueError(f"schema_version {version} is not supported (this evalkit reads {SCHEMA_VERSION})")
    if data["kind"] not in ("measured", "published"):
        raise ValueError(f"kind {data['kind']!r} is neither 'measured' nor 'published'")
    models = tuple(ModelInfo(**m) for m in data["models"])
    scores = tuple(_score_from_dict(s) for s in data["scores"])
    abbrs = {m.abbr for m in models}
    for s in scores:
        if s.model not in abbrs:
            raise ValueError(f"score for unknown model {s.model!r}")
    return ResultsRecord(
        run_id=str(data["run_id"]),
        kind=data["kind"],
        models=models,
        scores=scores,
        provenance=_provenance_from_dict(data.get("provenance", {}), version),
    )


def _provenance_from_dict(data: Any, version: int) -> Provenance:
    """The provenance, its configs section checked; a record without that section has an empty one."""
    if not isinstance(data, Mapping):
        raise RecordError(f"provenance is not an object ({type(data).__name__})")
    fields = dict(data)
    configs = fields.pop("configs", None)
    return Provenance(**fields, configs=RunProvenance.from_dict({} if configs is None else configs, version))


def _score_from_dict(s: Mapping[str, Any]) -> Score:
    items = s.get("items")
    value = float(s["value"])
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"score {value} for {s['model']}/{s['dataset']} is outside 0..100")
    return Score(
        model=s["model"],
        dataset=s["dataset"],
        metric=s["metric"],
        value=value,
        n=int(s["n"]),
        items=None if items is None else _items_from_dicts(items, f"{s['model']}/{s['dataset']}"),
    )


def _items_from_dicts(items: Iterable[Mapping[str, Any]], where: str) -> tuple[Item, ...]:
    """Items with scores that are numbers in 0..1 and ids that appear once, or a RecordError."""
    out: list[Item] = []
    seen: set[str] = set()
    for i in items:
        item = Item(**i)
        score = item.score
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
            raise RecordError(
                f"item {item.id!r} of {where} has score {score!r}; item scores are numbers "
                "from 0 to 1 (1 correct, 0 wrong)"
            )
        if item.id in seen:
            raise RecordError(
                f"item id {item.id!r} appears twice in {where}; each item is scored once per model and dataset"
            )
        seen.add(item.id)
        out.append(item if isinstance(score, float) else replace(item, score=float(score)))
    return tuple(out)
