"""The bench record: one typed, versioned JSON document per `evalkit bench` run, and its loader, which
checks every field against the dataclass annotations below."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from evalkit.errors import EvalkitError
from evalkit.records.checks import (
    RecordError,
    finite,
    flag,
    interval,
    keys,
    number,
    obj,
    read_json,
    seq,
    text,
    whole,
)
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


@dataclass(frozen=True)
class Machine:
    """The state of the machine around the measurement: what shares it and how fast it may run."""

    cpu_model: str  # /proc/cpuinfo's "model name", or platform's processor where that is absent
    logical_cpus: int
    torch_threads: int
    load_before: tuple[float, ...] = ()  # /proc/loadavg's 1, 5 and 15-minute load; () where unreadable
    load_after: tuple[float, ...] = ()
    gpu_sm_mhz: int | None = None  # nvidia-smi's current and maximum SM and memory clocks, where present
    gpu_max_sm_mhz: int | None = None
    gpu_mem_mhz: int | None = None
    gpu_max_mem_mhz: int | None = None


@dataclass(frozen=True)
class AttainedBandwidth:
    """The memory bandwidth a plain copy attains on the bench's device, in the same run: the yardstick
    for MBU next to the datasheet peak (`evalkit.benchmark.bandwidth`)."""

    gbps: float  # median over the timed copies
    low_gbps: float
    high_gbps: float
    nbytes: int  # bytes copied each time; a copy moves twice this
    repeats: int
    method: str


@dataclass(frozen=True)
class Series:
    """One condition's measurements of one kind, one value per round, in round order."""

    condition: str
    measure: str  # e.g. "s", "decode_s", "e2e_s"
    values: tuple[float, ...]


@dataclass(frozen=True)
class RatioEstimate:
    """The median over rounds of sum(numerator) / sum(denominator) in the round, with its 95% interval
    from a bootstrap over the rounds."""

    name: str
    measure: str
    numerator: tuple[str, ...]
    denominator: tuple[str, ...]
    value: float
    ci: tuple[float, ...]  # [low, high]
    half_width: float  # (high - low) / 2 / value


@dataclass(frozen=True)
class Comparison:
    """Conditions measured in interleaved rounds (`evalkit.benchmark.interleave`): every round runs every
    condition once, in the order recorded; the raw values, the ratios and why the rounds stopped."""

    name: str
    conditions: tuple[str, ...]
    orders: tuple[tuple[str, ...], ...]  # the order the conditions ran in, per round
    series: tuple[Series, ...]
    ratios: tuple[RatioEstimate, ...]
    rounds: int
    warmup: int  # untimed runs of each condition before the first round
    stopped: str  # "converged" | "budget" | "max-rounds" | "no-ratio"
    elapsed_s: float
    budget_s: float
    target: float  # the relative half-width every interval had to reach
    seed: int


@dataclass(frozen=True)
class Flag:
    """A plausibility check that failed: the figure it names should not be trusted as it stands."""

    kind: str  # one of FLAG_KINDS
    where: str  # which figure, e.g. "decode batch 1" or "tiny-ruyi E111K batch 4"
    message: str


FLAG_KINDS = (
    "shared-below-one",
    "shared-above-separate",
    "fast-slower-than-hf",
    "high-cv",
    "machine-loaded",
    "speculative-differs",
    "speculative-above-bound",
)
STOPPED = ("converged", "budget", "max-rounds", "no-ratio")

SCHEMA = "evalkit.bench"
SCHEMA_VERSION = 3
# Version 1 records (no intervals, raw timings, machine state or flags) and version 2 records (no
# `speculative`, no attained bandwidth) still load.
READS = (1, 2, 3)


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
    mbu_attained: float | None = None  # the same against the attained copy bandwidth (version 3)
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
    decode_speedup_ci: tuple[float, ...] | None = None  # 95% interval [low, high]; None in version 1
    e2e_speedup_ci: tuple[float, ...] | None = None
    comparison: str | None = None  # the name of the `Comparison` it comes from (rounds, raw values)


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
    decode_shared_over_last_ci: tuple[float, ...] | None = None  # 95% interval [low, high]; None in version 1
    decode_separate_over_last_ci: tuple[float, ...] | None = None
    comparison: str | None = None  # the name of the `Comparison` it comes from (rounds, raw values)


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
    scoring_shared_over_last_ci: tuple[float, ...] | None = None  # 95% interval [low, high]; None in version 1
    scoring_separate_over_last_ci: tuple[float, ...] | None = None
    comparison: str | None = None  # the name of the `Comparison` it comes from (rounds, raw values)


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
    rounds: int = 1  # timed runs of each side; 1: a single measurement, with no interval
    e2e_stock_over_evalkit_ci: tuple[float, ...] | None = None  # 95% interval with two rounds or more


@dataclass(frozen=True)
class SharedTrunk:
    model: str
    decode: tuple[TrunkDecode, ...] = ()
    scoring: tuple[TrunkScoring, ...] = ()
    notes: tuple[str, ...] = ()  # parts that did not run, and why
    e2e: tuple[TrunkE2E, ...] = ()  # end to end: `run` vs stock OpenCompass (one entry, or none when skipped)


@dataclass(frozen=True)
class SpecBaseline:
    """The target branch decoding alone, timed in the same interleaved rounds as every speculative cell."""

    batch_size: int
    target_s: Stats  # seconds per generation (prefill and gen_len tokens)
    tok_s: float  # batch_size x gen_len / median seconds


@dataclass(frozen=True)
class SpecCell:
    """One (draft branch, k, batch size) of self-speculative decoding against the target alone."""

    draft: str
    draft_exit: int
    k: int  # tokens drafted per round
    batch_size: int
    acceptance_rate: float  # drafted tokens the target accepted, over drafted tokens
    tokens_per_step: float  # output tokens after the first per verify pass of the target (1 to k + 1)
    spec_s: Stats  # seconds per generation, as the target's
    tok_s: float  # batch_size x gen_len / median seconds
    speedup: float  # target alone over speculative: the median over rounds of the round's ratio of seconds
    speedup_ci: tuple[float, ...]  # its 95% interval [low, high]
    identical_to_target: tuple[bool, ...]  # per sequence: every token equals the target's own greedy decoding
    comparison: str  # the name of the `Comparison` it comes from (rounds, raw values)


@dataclass(frozen=True)
class SpeculativeBench:
    """Self-speculative decoding (a shallow branch drafts, the target verifies) against the target alone."""

    model: str
    target: str
    target_exit: int
    prompt_len: int
    gen_len: int
    baselines: tuple[SpecBaseline, ...] = ()
    cells: tuple[SpecCell, ...] = ()
    notes: tuple[str, ...] = ()


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
    machine: Machine | None = None  # None in version 1
    defaults: str | None = None  # which defaults the run took, e.g. "CPU-sized" (None in version 1)
    comparisons: tuple[Comparison, ...] = ()  # every interleaved measurement, raw values included
    flags: tuple[Flag, ...] = ()  # plausibility checks that failed
    speculative: SpeculativeBench | None = None  # version 3
    attained_bandwidth: AttainedBandwidth | None = None  # version 3; None where not measured
    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def save_bench(record: BenchRecord, path: str | Path) -> Path:
    return write_json_atomic(path, record.to_dict())


def load_bench(path: str | Path) -> BenchRecord:
    """Read and check a bench record, field by field; any problem is one clear EvalkitError."""
    path = Path(path)
    if not path.is_file():
        raise EvalkitError(f"bench record {path} does not exist; pass the bench.json written by `evalkit bench`")
    data = read_json(path, "bench record", "rerun `evalkit bench`")
    try:
        record = bench_from_dict(data)
    except RecordError as e:
        raise EvalkitError(f"bench record {path}: {e}; fix the record or rerun `evalkit bench`") from None
    except ValueError as e:
        raise EvalkitError(
            f"{path} is not an evalkit bench record ({e}); pass a bench.json written by `evalkit bench`"
        ) from None
    check_run_id(record.run_id, f"bench record {path}: run_id", "fix the record's run_id or rerun `evalkit bench`")
    return record


def bench_from_dict(data: Any) -> BenchRecord:
    """A bench record from its JSON data. Data of another kind is a ValueError; a bench record with a field
    of the wrong type, a number that is NaN, infinite or negative, or a key this evalkit does not know is a
    RecordError naming the field (`rows[2].batch_size is '1', expected a whole number`)."""
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, Mapping) else None
        raise ValueError(f"schema is {found!r}, expected {SCHEMA!r}")
    missing = [f.name for f in fields(BenchRecord) if f.default is MISSING and f.name not in data]
    if missing or "schema_version" not in data:
        raise ValueError(f"it lacks {', '.join(map(repr, missing or ['schema_version']))}")
    version = whole(data["schema_version"], "schema_version")
    if version not in READS:
        raise RecordError(
            f"schema_version {version} is not supported (this evalkit reads {', '.join(map(str, READS))})"
        )
    for later in ("speculative", "attained_bandwidth"):  # null is the same as absent
        if version < 3 and data.get(later) is not None:
            raise RecordError(f"{later} is a version 3 field, but schema_version is {version}")
    record = _build(BenchRecord, data, "")
    if record.peak_bandwidth_gbps == 0:
        raise RecordError("peak_bandwidth_gbps is 0, expected a bandwidth above 0 or null (unknown)")
    attained = [i for i, r in enumerate(record.rows) if r.mbu_attained is not None]
    if attained and version < 3:
        raise RecordError(f"rows[{attained[0]}].mbu_attained is a version 3 field, but schema_version is {version}")
    if attained and record.attained_bandwidth is None:
        raise RecordError(f"rows[{attained[0]}].mbu_attained needs the attained_bandwidth it is measured against")
    return record


# Every number in a bench record is a size, a time, a rate or a ratio, so none is negative; these count
# things of which a measurement has at least one.
_AT_LEAST_ONE = frozenset(
    {
        "batch_size",
        "prompt_len",
        "gen_len",
        "n",
        "limit",
        "num_params",
        "rounds",
        "logical_cpus",
        "torch_threads",
        "k",
        "repeats",
        "nbytes",
    }
)
_CHOICES = {"role": ("ours", "baseline"), "backend": ("hf", "fast"), "kind": FLAG_KINDS, "stopped": STOPPED}


def _build(cls: type, data: Any, where: str) -> Any:
    """A record dataclass from its JSON object: each field checked against its annotation, a field with a
    default optional (records written before it existed), any other key refused."""
    hints = get_type_hints(cls)
    required = tuple(f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING)
    optional = tuple(f.name for f in fields(cls) if f.name not in required)
    entry = keys(data, where or "record", required=required, optional=optional)
    built = cls(**{k: _value(hints[k], v, f"{where}.{k}" if where else k, k) for k, v in entry.items()})
    if isinstance(built, Comparison):
        _check_comparison(built, where)
    if isinstance(built, SpecCell):
        _check_spec_cell(built, where)
    if isinstance(built, AttainedBandwidth) and not 0 < built.low_gbps <= built.gbps <= built.high_gbps:
        raise RecordError(
            f"{where} is not a bandwidth above 0 with its median in its range (low_gbps <= gbps <= high_gbps)"
        )
    if isinstance(built, Stats):
        order = (built.min, built.median, built.p90, built.p99, built.max)
        if list(order) != sorted(order) or not built.min <= built.mean <= built.max:
            raise RecordError(
                f"{where} is not ordered as statistics are (min <= median <= p90 <= p99 <= max, mean within)"
            )
    return built


def _check_comparison(c: Comparison, where: str) -> None:
    """Every round ran every condition once; every series has one value per round and names a condition."""
    if len(c.orders) != c.rounds or any(sorted(o) != sorted(c.conditions) for o in c.orders):
        raise RecordError(f"{where}.orders must hold {c.rounds} rounds, each running every condition once")
    for i, s in enumerate(c.series):
        if s.condition not in c.conditions or len(s.values) != c.rounds:
            raise RecordError(
                f"{where}.series[{i}] must name one of the conditions and hold one value per round ({c.rounds})"
            )
    for i, r in enumerate(c.ratios):
        if not set(r.numerator + r.denominator) <= set(c.conditions):
            raise RecordError(f"{where}.ratios[{i}] names a condition the comparison does not have")


def _check_spec_cell(cell: SpecCell, where: str) -> None:
    """What a speculative cell must satisfy whatever the clock said."""
    if cell.acceptance_rate > 1:
        raise RecordError(f"{where}.acceptance_rate is {cell.acceptance_rate}, expected a fraction from 0 to 1")
    if not 1 <= cell.tokens_per_step <= cell.k + 1:
        raise RecordError(f"{where}.tokens_per_step is {cell.tokens_per_step}, expected 1 to k + 1 = {cell.k + 1}")
    if len(cell.identical_to_target) != cell.batch_size:
        raise RecordError(
            f"{where}.identical_to_target has {len(cell.identical_to_target)} entries, expected one per sequence "
            f"(batch_size {cell.batch_size})"
        )


def _value(kind: Any, value: Any, where: str, name: str) -> Any:
    null = isinstance(kind, types.UnionType)  # X | None
    if null:
        if value is None:
            return None
        (kind,) = (a for a in get_args(kind) if a is not type(None))
    if kind is str:
        found = text(value, where, null=null, empty=name == "run_id")  # load_bench holds run_id to its rule
        if name in _CHOICES and found not in _CHOICES[name]:
            raise RecordError(f"{where} is {found!r}, expected one of {', '.join(_CHOICES[name])}")
        return found
    if kind is bool:
        return flag(value, where, null=null)
    if kind is int:
        return whole(value, where, null=null, low=1 if name in _AT_LEAST_ONE else 0)
    if kind is float:
        return float(number(value, where, null=null, low=0))
    if name == "ci" or name.endswith("_ci"):
        return interval(value, where)
    if name.startswith("load_"):
        values = tuple(float(number(v, f"{where}[{i}]", low=0)) for i, v in enumerate(seq(value, where)))
        if len(values) not in (0, 3):
            raise RecordError(f"{where} has {len(values)} values, expected the 1, 5 and 15-minute load or none")
        return values
    if isinstance(kind, type) and is_dataclass(kind):
        return _build(kind, value, where)
    if get_origin(kind) is tuple:
        element = get_args(kind)[0]
        return tuple(_value(element, v, f"{where}[{i}]", name) for i, v in enumerate(seq(value, where)))
    if get_origin(kind) is Mapping:
        return dict(finite(obj(value, where), where))
    raise TypeError(f"no reader for {where}: {kind}")
