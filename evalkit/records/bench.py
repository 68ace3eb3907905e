"""The bench record: one typed, versioned JSON document per `evalkit bench` run, and its loader."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.records.io import write_json_atomic
from evalkit.records.run_ids import check_run_id


@dataclass(frozen=True)
class Stats:
    """Summary of repeated measurements (seconds or tokens/s): median and tail percentiles."""

    median: float
    p90: float
    p99: float
    mean: float
    min: float
    max: float
    n: int


@dataclass(frozen=True)
class Environment:
    device: str  # e.g. "NVIDIA H100 80GB HBM3" or "cpu (x86_64, 2 threads)"
    device_type: str  # "cuda" | "cpu"
    driver: str | None
    cuda: str | None
    torch: str
    transformers: str
    python: str
    git_revision: str | None


SCHEMA = "evalkit.bench"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class BenchRow:
    """One (model branch, backend, batch size) cell of the benchmark."""

    model: str  # "ruyi-7b", a checkpoint directory's name, ...
    title: str  # display name
    role: str  # "ours" | "baseline"
    branch: str  # "E3B"; a baseline's own name
    exit_layer: int
    num_params: int
    backend: str  # "hf" (stock transformers generate) | "fast" (evalkit's static-cache decoder)
    batch_size: int
    prompt_len: int
    gen_len: int
    weight_bytes: int  # read once per decode step, whatever the batch size
    kv_bytes_per_row: int  # per decode step and row (mean context)
    bytes_per_token: float  # (weight_bytes + batch_size * kv_bytes_per_row) / batch_size
    ttft_s: Stats | None = None  # prefill: time to the first token
    tpot_s: Stats | None = None  # time per output token after the first
    decode_tok_s: Stats | None = None  # batch_size * (gen_len - 1) / decode time
    e2e_s: Stats | None = None  # prefill plus every decode step
    mbu: float | None = None  # at the median decode tokens/s; None without a peak bandwidth
    peak_allocated_bytes: int | None = None
    peak_reserved_bytes: int | None = None
    min_vram_bytes: int | None = None  # peak allocated less the family's tensors this branch does not use
    error: str | None = None  # e.g. "out of memory": the cell did not run


@dataclass(frozen=True)
class Ratio:
    """fast over hf for one cell, both measured in the same run."""

    model: str
    branch: str
    batch_size: int
    decode_speedup: float  # fast decode tokens/s over hf decode tokens/s (medians)
    e2e_speedup: float  # hf end-to-end latency over fast end-to-end latency (medians)


@dataclass(frozen=True)
class TrunkDecode:
    """Greedy decoding of all branches stepped together vs the last branch alone vs each one alone."""

    batch_size: int
    branches: tuple[str, ...]
    shared_step_s: Stats  # one decode step of every branch together
    last_step_s: Stats  # one decode step of the last branch alone
    separate_step_s: float  # sum over branches of each one's median step time, decoded alone
    decode_shared_over_last: float
    decode_separate_over_last: float


@dataclass(frozen=True)
class TrunkScoring:
    """Scoring (next-token log-probs) of all branches from one trunk pass vs the last vs each alone."""

    batch_size: int
    seq_len: int
    branches: tuple[str, ...]
    shared_s: Stats
    last_s: Stats
    separate_s: float
    scoring_shared_over_last: float
    scoring_separate_over_last: float


@dataclass(frozen=True)
class TrunkE2E:
    """`evalkit run --branches all` (shared trunk) vs stock OpenCompass on each branch exported alone."""

    suite: str
    limit: int
    branches: tuple[str, ...]
    datasets: tuple[str, ...]  # dataset abbrs both runs evaluated
    evalkit_s: float  # wall time of the evalkit command
    stock_s: float  # wall time of the stock OpenCompass command (exporting the branches not included)
    e2e_stock_over_evalkit: float
    predictions_identical: bool  # every prediction text of every model and dataset equal
    items_compared: int
    export_s: float  # writing the branches as plain checkpoints, before the stock run
    evalkit_command: str
    stock_command: str
    baseline: str  # what the stock side ran, in words


@dataclass(frozen=True)
class SharedTrunk:
    model: str
    decode: tuple[TrunkDecode, ...] = ()
    scoring: tuple[TrunkScoring, ...] = ()
    notes: tuple[str, ...] = ()  # parts that did not run, and why
    e2e: tuple[TrunkE2E, ...] = ()  # end to end: `run` vs stock OpenCompass (one entry, or none when skipped)


@dataclass(frozen=True)
class BenchRecord:
    run_id: str
    created_at: str  # ISO 8601, UTC
    command: str
    environment: Environment
    dtype: str
    config: Mapping[str, Any]  # the resolved BenchConfig
    protocol: Mapping[str, Any]  # the resolved Protocol
    peak_bandwidth_gbps: float | None
    peak_bandwidth_source: str  # "table: H100 SXM" | "flag" | "unknown"
    rows: tuple[BenchRow, ...] = ()
    ratios: tuple[Ratio, ...] = ()
    shared_trunk: SharedTrunk | None = None
    notes: tuple[str, ...] = ()  # models not measured, and why
    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def save_bench(record: BenchRecord, path: str | Path) -> Path:
    return write_json_atomic(path, record.to_dict())


def load_bench(path: str | Path) -> BenchRecord:
    """Read and validate a bench record; any problem is one clear EvalkitError."""
    path = Path(path)
    if not path.is_file():
        raise EvalkitError(f"bench record {path} does not exist; pass the bench.json written by `evalkit bench`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        record = bench_from_dict(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EvalkitError(f"bench record {path} is not valid JSON ({e}); rerun `evalkit bench`") from None
    except (KeyError, TypeError, ValueError) as e:
        raise EvalkitError(
            f"{path} is not an evalkit bench record ({type(e).__name__}: {e}); "
            "pass a bench.json written by `evalkit bench`"
        ) from None
    check_run_id(record.run_id, f"bench record {path}: run_id", "fix the record's run_id or rerun `evalkit bench`")
    return record


def bench_from_dict(data: Mapping[str, Any]) -> BenchRecord:
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, Mapping) else None
        raise ValueError(f"schema is {found!r}, expected {SCHEMA!r}")
    if data["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"schema_version {data['schema_version']} is not supported (this evalkit reads 1)")
    trunk = data.get("shared_trunk")
    return BenchRecord(
        run_id=str(data["run_id"]),
        created_at=str(data["created_at"]),
        command=str(data["command"]),
        environment=Environment(**data["environment"]),
        dtype=str(data["dtype"]),
        config=dict(data["config"]),
        protocol=dict(data["protocol"]),
        peak_bandwidth_gbps=_number_or_none(data["peak_bandwidth_gbps"], "peak_bandwidth_gbps"),
        peak_bandwidth_source=str(data["peak_bandwidth_source"]),
        rows=tuple(_build(BenchRow, r) for r in data["rows"]),
        ratios=tuple(Ratio(**r) for r in data["ratios"]),
        shared_trunk=None
        if trunk is None
        else SharedTrunk(
            model=trunk["model"],
            decode=tuple(_build(TrunkDecode, d) for d in trunk["decode"]),
            scoring=tuple(_build(TrunkScoring, s) for s in trunk["scoring"]),
            notes=tuple(trunk["notes"]),
            e2e=tuple(_build(TrunkE2E, e) for e in trunk.get("e2e", ())),
        ),
        notes=tuple(str(n) for n in data.get("notes", ())),
    )


def _build(cls: type, raw: Mapping[str, Any]) -> Any:
    """A dataclass from its dict: Stats fields rebuilt, tuples restored, unknown keys refused."""
    names = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        kind = str(names[key].type)
        if value is None and "None" in kind:
            pass
        elif "Stats" in kind:
            if not isinstance(value, Mapping) or not all(_is_number(v) for v in value.values()):
                raise ValueError(f"{cls.__name__}.{key} must be an object of numbers, got {value!r}")
            value = Stats(**value)
        elif "tuple" in kind and isinstance(value, list):
            value = tuple(value)
        elif kind.split(" |")[0] in ("float", "int") and not _is_number(value):
            raise ValueError(f"{cls.__name__}.{key} must be a number, got {value!r}")
        elif kind.split(" |")[0] == "str" and not isinstance(value, str):
            raise ValueError(f"{cls.__name__}.{key} must be a string, got {value!r}")
        values[key] = value
    return cls(**values)


def _number_or_none(value: object, name: str) -> float | None:
    if value is not None and not _is_number(value):
        raise ValueError(f"{name} must be a number or null, got {value!r}")
    return None if value is None else float(value)  # type: ignore[arg-type]


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
