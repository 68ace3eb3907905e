"""The results record: one typed, versioned JSON document per run.

Every stage after `run` (report, regress, readme) reads only these records, so a record carries
everything those stages need: per-item outcomes for paired statistics, and the provenance that
says how the numbers were produced. Records are immutable; stages build new ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from evalkit.catalog.datasets import BY_KEY, title
from evalkit.errors import EvalkitError
from evalkit.records.checks import RecordError, is_number, keys, number, obj, read_json, seq, shown, text, whole
from evalkit.records.estimator import VALUE_TOLERANCE, is_grouped, score_value
from evalkit.records.io import write_json_atomic
from evalkit.records.provenance import RunProvenance
from evalkit.records.run_ids import check_run_id

SCHEMA = "evalkit.results"
# 2: items may carry `signals` (confidence signals and agreement with the last branch). Version 1 records,
# which have none, still load.
SCHEMA_VERSION = 2
SCHEMA_VERSIONS = (1, 2)

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
class Signals:
    """What a model's own pass says about its confidence in one item's answer; every field may be absent.

    Generated answers: the mean and minimum log-probability of the answer's tokens and the entropy (nats)
    of the first token's distribution, from the logits the decode already computed, with the answer's and
    prompt's token counts (the cascade's cost accounting reads them). Choice datasets scored by perplexity
    or loglikelihood: the margin between the chosen candidate's probability and the runner-up's, the
    probabilities being the softmax of the candidates' scores. `agreement`: the fraction of the last
    branch's answer tokens on which this branch's next-token prediction equals the last branch's token
    (one teacher-forced shared-trunk pass over that answer).
    """

    mean_logprob: float | None = None
    min_logprob: float | None = None
    first_entropy: float | None = None
    margin: float | None = None
    agreement: float | None = None
    prompt_tokens: int | None = None
    answer_tokens: int | None = None


SIGNAL_FIELDS = tuple(f.name for f in fields(Signals))
_SIGNAL_RANGES: dict[str, tuple[float | None, float | None]] = {
    "mean_logprob": (None, 0.0),
    "min_logprob": (None, 0.0),
    "first_entropy": (0.0, None),
    "margin": (0.0, 1.0),
    "agreement": (0.0, 1.0),
}


@dataclass(frozen=True)
class Item:
    """The outcome of one dataset item: score 1.0 correct, 0.0 wrong (fractions allowed)."""

    id: str
    score: float
    group: str | None = None  # subject or task of a grouped dataset (its score averages the groups)
    signals: Signals | None = None  # None in records before schema version 2, and where none was measured


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

    def __post_init__(self) -> None:
        _check_consistent(self)

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
        scores = [
            {**asdict(s), "items": None if s.items is None else [_item_dict(i) for i in s.items]} for s in self.scores
        ]
        return {**asdict(self), "scores": scores, "provenance": self.provenance.to_dict()}

    @property
    def has_signals(self) -> bool:
        """Whether any item carries confidence signals (records before schema version 2 never do)."""
        return any(i.signals is not None for s in self.scores for i in s.items or ())


def _item_dict(item: Item) -> dict[str, Any]:
    """An item as JSON: no `signals` key when it has none, and only the signals that were measured."""
    out: dict[str, Any] = {"id": item.id, "score": item.score, "group": item.group}
    if item.signals is not None:
        out["signals"] = {k: v for k, v in asdict(item.signals).items() if v is not None}
    return out


def _check_consistent(record: ResultsRecord) -> None:
    """Refuse, with a RecordError naming the model and dataset, what would let two stages read one record
    differently: a model or a score listed twice, a score for a model or dataset nobody knows, a value
    outside 0..100, a negative n, or per-item outcomes that disagree with the value or n beside them."""
    if record.schema_version not in SCHEMA_VERSIONS:
        raise RecordError(f"schema_version {record.schema_version} is not one this evalkit writes")
    if record.schema_version < 2 and record.has_signals:
        raise RecordError("items carry signals, which schema_version 1 has no place for; write schema_version 2")
    abbrs: set[str] = set()
    for m in record.models:
        if m.abbr in abbrs:
            raise RecordError(f"model {m.abbr!r} is listed twice; each model of a record has its own abbr")
        abbrs.add(m.abbr)
    scored: set[tuple[str, str]] = set()
    for s in record.scores:
        where = f"score {s.model}/{s.dataset}"
        if s.model not in abbrs:
            raise RecordError(f"{where} is for model {s.model!r}, which the record's models do not list")
        if s.dataset not in BY_KEY:
            raise RecordError(f"{where}: unknown dataset {s.dataset!r}; valid datasets are: {', '.join(BY_KEY)}")
        if (s.model, s.dataset) in scored:
            raise RecordError(f"{where} appears twice; a record holds one score per model and dataset")
        scored.add((s.model, s.dataset))
        _check_score(s, where)


def _check_score(s: Score, where: str) -> None:
    metric = BY_KEY[s.dataset].metric
    if s.metric != metric:
        raise RecordError(f"{where} has metric {shown(s.metric)}, but {title(s.dataset)} is scored by {metric!r}")
    number(s.value, f"{where} value", low=0.0, high=100.0)
    whole(s.n, f"{where} n", low=0)
    if s.items is None:
        return
    if not s.items:
        raise RecordError(f"{where} has an empty list of items; a score without per-item outcomes has items null")
    if len(s.items) != s.n:
        raise RecordError(f"{where} has n {s.n} but {len(s.items)} items; n counts the items behind the value")
    ids: set[str] = set()
    for item in s.items:
        score = item.score
        if not (type(score) is float and 0.0 <= score <= 1.0) and not (is_number(score) and 0 <= score <= 1):
            raise RecordError(
                f"item {item.id!r} of {where} has score {shown(item.score)}; item scores are numbers "
                "from 0 to 1 (1 correct, 0 wrong)"
            )
        if item.id in ids:
            raise RecordError(f"item id {item.id!r} appears twice in {where}; each item is scored once")
        ids.add(item.id)
    recomputed = score_value(s.dataset, [i.score for i in s.items], [i.group for i in s.items])
    if abs(recomputed - s.value) > VALUE_TOLERANCE:
        groups = {i.group for i in s.items}
        how = (
            f"the mean of its {len(groups)} group means"
            if is_grouped(s.dataset) and None not in groups and len(groups) > 1
            else "their mean"
        )
        raise RecordError(
            f"{where} states value {s.value:.10g} but its {s.n} items give {recomputed:.10g} ({how}); "
            "the value and the per-item outcomes disagree"
        )


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
    """Read and check a results record, field by field and for consistency; any problem is one EvalkitError."""
    path = Path(path)
    if not path.is_file():
        raise EvalkitError(f"results record {path} does not exist; pass the results.json written by `evalkit run`")
    data = read_json(path, "results record", "the file is corrupt: rerun or restore it")
    try:
        record = record_from_dict(data)
    except RecordError as e:
        raise EvalkitError(f"results record {path}: {e}; fix the record or rerun what wrote it") from None
    except ValueError as e:
        raise EvalkitError(
            f"{path} is not an evalkit results record ({e}); "
            "pass a results.json written by `evalkit run` or `evalkit import-table`"
        ) from None
    check_run_id(record.run_id, f"results record {path}: run_id", "fix the record's run_id or rerun what wrote it")
    return record


def record_from_dict(data: Any) -> ResultsRecord:
    """A record from its JSON data. Data of another kind (no results schema) is a ValueError; a results
    record with a field no stage can use, or values its items contradict, is a RecordError naming it."""
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
        raise ValueError(
            f"schema is {data.get('schema') if isinstance(data, Mapping) else None!r}, expected {SCHEMA!r}"
        )
    missing = [k for k in _TOP_KEYS if k not in data]
    if missing:
        raise ValueError(f"it lacks {', '.join(map(repr, missing))}")
    top = keys(data, "record", required=_TOP_KEYS, optional=("provenance",))
    version = whole(top["schema_version"], "schema_version")
    if version not in SCHEMA_VERSIONS:
        raise RecordError(
            f"schema_version {version} is not supported (this evalkit reads {', '.join(map(str, SCHEMA_VERSIONS))})"
        )
    kind = top["kind"]
    if kind not in ("measured", "published"):
        raise RecordError(f"kind is {shown(kind)}, expected 'measured' or 'published'")
    return ResultsRecord(
        run_id=text(top["run_id"], "run_id"),  # load_record holds it to the run-id rule
        kind=kind,
        models=tuple(_model(m, f"models[{i}]") for i, m in enumerate(seq(top["models"], "models"))),
        scores=tuple(_score(s, i, version) for i, s in enumerate(seq(top["scores"], "scores"))),
        provenance=_provenance(top.get("provenance", {}), version),
        schema_version=version,  # written back as it was read: a version 1 record stays one
    )


_TOP_KEYS = ("schema", "schema_version", "run_id", "kind", "models", "scores")


def _model(data: Any, where: str) -> ModelInfo:
    m = keys(data, where, required=("abbr", "name"), optional=tuple(f.name for f in fields(ModelInfo))[2:])
    role = m.get("role", "baseline")
    if role not in ("ours", "baseline"):
        raise RecordError(f"{where}.role is {shown(role)}, expected 'ours' or 'baseline'")
    return ModelInfo(
        abbr=text(m["abbr"], f"{where}.abbr", empty=False),
        name=text(m["name"], f"{where}.name", empty=False),
        role=role,
        family=text(m.get("family"), f"{where}.family", null=True, empty=False),
        branch=text(m.get("branch"), f"{where}.branch", null=True, empty=False),
        exit_layer=whole(m.get("exit_layer"), f"{where}.exit_layer", null=True, low=0),
        num_params=whole(m.get("num_params"), f"{where}.num_params", null=True, low=1),
        path=text(m.get("path"), f"{where}.path", null=True),
    )


def _score(data: Any, index: int, version: int = SCHEMA_VERSION) -> Score:
    where = f"scores[{index}]"
    named = obj(data, where)
    if isinstance(named.get("model"), str) and isinstance(named.get("dataset"), str):
        where = f"{where} ({named['model']}/{named['dataset']})"
    s = keys(named, where, required=("model", "dataset", "metric", "value", "n"), optional=("items",))
    items = s.get("items")
    if items is not None:
        items = _items(seq(items, f"{where}.items"), f"{where}.items", version)
    value = number(s["value"], f"{where}.value")
    return Score(
        model=text(s["model"], f"{where}.model", empty=False),
        dataset=text(s["dataset"], f"{where}.dataset", empty=False),
        metric=text(s["metric"], f"{where}.metric"),
        value=float(value),
        n=whole(s["n"], f"{where}.n"),
        items=items,
    )


_ITEM_KEYS = frozenset({"id", "score", "group"})


def _items(data: list[Any] | tuple[Any, ...], where: str, version: int = SCHEMA_VERSION) -> tuple[Item, ...]:
    """The items of a score. A record holds up to about 10^6 of them, so the common well-formed item takes
    a fast path; any other goes through `_item`, which names what is wrong with it."""
    out = []
    for k, i in enumerate(data):
        if type(i) is dict and "id" in i and "score" in i and _ITEM_KEYS.issuperset(i):
            item_id, score, group = i["id"], i["score"], i.get("group")
            if type(item_id) is str and item_id.strip() and (group is None or (type(group) is str and group.strip())):
                out.append(Item(item_id, float(score) if type(score) in (float, int) else score, group))
                continue
        out.append(_item(i, f"{where}[{k}]", version))
    return tuple(out)


def _item(data: Any, where: str, version: int = SCHEMA_VERSION) -> Item:
    optional = ("group", "signals") if version >= 2 else ("group",)
    i = keys(data, where, required=("id", "score"), optional=optional)
    score = i["score"]  # checked with the score's other items, naming the score (`_check_score`)
    signals = i.get("signals")
    return Item(
        id=text(i["id"], f"{where}.id", empty=False),
        score=float(score) if is_number(score) else score,
        group=text(i.get("group"), f"{where}.group", null=True, empty=False),
        signals=None if signals is None else signals_from_dict(signals, f"{where}.signals"),
    )


def signals_from_dict(data: Any, where: str) -> Signals:
    """An item's signals, each a number in its range (log-probs <= 0, entropy >= 0, fractions 0..1) or null."""
    s = keys(data, where, optional=SIGNAL_FIELDS)
    values: dict[str, Any] = {}
    for name in SIGNAL_FIELDS:
        if name.endswith("_tokens"):
            values[name] = whole(s.get(name), f"{where}.{name}", null=True, low=0)
        else:
            low, high = _SIGNAL_RANGES[name]
            value = number(s.get(name), f"{where}.{name}", null=True, low=low, high=high)
            values[name] = None if value is None else float(value)
    return Signals(**values)


def _provenance(data: Any, version: int) -> Provenance:
    """The provenance, each field checked; a record without a `configs` section has an empty one."""
    p = keys(data, "provenance", optional=tuple(f.name for f in fields(Provenance)))
    packages = obj(p.get("packages", {}), "provenance.packages")
    configs = p.get("configs")
    return Provenance(
        **{k: text(p.get(k), f"provenance.{k}", null=True) for k in _PROVENANCE_TEXT},
        packages={k: text(v, f"provenance.packages[{k!r}]") for k, v in packages.items()},
        duration_s=number(p.get("duration_s"), "provenance.duration_s", null=True, low=0),
        configs=RunProvenance.from_dict({} if configs is None else configs, version),
    )


_PROVENANCE_TEXT = (
    "git_revision",
    "device",
    "dtype",
    "data_source",
    "command",
    "started_at",
    "finished_at",
    "source",
)
