"""What a benchmark run measures and how: `BenchConfig` (checked when built, before torch loads, so a
typo fails at once) and `Protocol`, the measurement protocol stated in code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from evalkit.catalog.datasets import parse_suites
from evalkit.catalog.shapes import parse_shapes
from evalkit.errors import EvalkitError, did_you_mean
from evalkit.load.checkpoint import read_checkpoint

BACKENDS = ("hf", "fast")
BATCH_SIZES = (1, 4, 16, 32)
SPEC_BATCH_SIZES = (1,)  # --speculative: the batch where speculation pays on a GPU


@dataclass(frozen=True)
class Protocol:
    """How every comparison is measured (after optimum-benchmark, with interleaving and intervals):

    1. warm-up: `warmup` untimed runs of every condition first (CUDA graph capture, allocator, kernel
       choice); on a GPU the peak memory of a cell is read during its warm-up;
    2. timing: CUDA events around each region, read after a synchronize (GPU); perf_counter (CPU);
    3. fixed output length: every generation makes exactly gen_len tokens (EOS ignored on the fast
       path, min_new_tokens = max_new_tokens on stock `generate`);
    4. interleaving: the conditions compared (hf and fast for one cell; all branches together and each
       alone) run in rounds, every condition once per round, in a seeded order rotated each round (a
       Latin square per block of rounds), so drift and background load hit them alike and each takes
       every position equally often (`evalkit.benchmark.interleave`);
    5. repetitions: at least `iterations` rounds, then more until every ratio's 95% interval has a
       half-width under `ci_target` of the ratio, or another round would overrun `time_budget_s` for
       that comparison, or `max_rounds`; the record says which;
    6. ratios: the median over rounds of the round's ratio, with a percentile bootstrap interval
       (`resamples` resamples of the rounds, seeded); medians, p90 and p99 of each condition with numpy
       (linear interpolation): each value is one whole generation, so a TPOT percentile is over
       per-generation mean step times, not single tokens;
    7. peak allocated and reserved GPU memory per cell (peak counters reset before the cell);
    8. MBU = bytes per token x tokens/s / peak bandwidth, the peak looked up from the device name or
       given, never assumed; none on a CPU unless given;
    9. plausibility: figures that cannot be true or vary more than `max_cv` are flagged
       (`evalkit.benchmark.plausible`), with the machine's load before and after.
    """

    warmup: int
    iterations: int  # the fewest rounds
    timer: str  # "cuda-events" | "perf_counter"
    decode_mode: str = ""  # the fast path as run: eager | cudagraph | compile ("auto" resolved)
    fixed_output_length: bool = True
    percentiles: tuple[int, ...] = (50, 90, 99)
    time_budget_s: float = 60.0  # per comparison
    ci_target: float = 0.05
    max_rounds: int = 500
    confidence: float = 0.95
    resamples: int = 2000
    order: str = "seeded Latin square: a random order per block of rounds, rotated each round"
    max_cv: float = 0.15


@dataclass(frozen=True)
class Sizing:
    """Defaults that fit a device: what a bare `bench` measures there. A flag given overrides its field."""

    name: str
    prompt_len: int
    gen_len: int
    batch_sizes: tuple[int, ...]
    trunk_batch_sizes: tuple[int, ...]
    iterations: int
    warmup: int
    dtype: str
    time_budget: float  # seconds per comparison
    trunk_time_budget: float  # seconds per comparison with --shared-trunk (more conditions, fewer comparisons)
    e2e_suite: str | None  # `--e2e-suite auto`: the end-to-end comparison's suite, None to skip it
    threads: int | None  # torch's CPU threads; None: torch's own default

    def describe(self, config: BenchConfig) -> str:
        """'CPU-sized defaults (the device is a CPU): prompt 32, ...'; the values as run, flags included."""
        batches = ",".join(map(str, config.batch_sizes or ()))
        given = [k for k in _SIZED if getattr(config, k) is not None and k in config.given]
        return (
            f"{self.name} defaults (the device is a {'GPU' if self is GPU_SIZED else 'CPU'}): prompt "
            f"{config.prompt_len} tokens, {config.gen_len} generated, batch {batches}, {config.dtype}, at least "
            f"{config.iterations} rounds and at most {config.time_budget:g} s per comparison"
            + (f", {config.threads} torch thread{'s' if config.threads != 1 else ''}" if config.threads else "")
            + (f"; given: {', '.join('--' + k.replace('_', '-') for k in given)}" if given else "")
        )


GPU_SIZED = Sizing("GPU-sized", 256, 128, BATCH_SIZES, (1, 8), 10, 2, "bf16", 60.0, 60.0, "stem", None)
# Sized to finish a bare `bench` (8 comparisons of 2 conditions) and `bench --shared-trunk` (2 comparisons of 6
# conditions on Ruyi-7B's structure) in under 3 minutes on 2 cores. One thread: tiny matrices gain nothing from
# more, and on a shared machine threads that wait on each other for a core another process holds make every
# timing swing. At least 10 rounds: a bootstrap interval of a median over fewer is too optimistic.
CPU_SIZED = Sizing("CPU-sized", 32, 16, (1, 4), (1,), 10, 1, "fp32", 10.0, 45.0, None, 1)
_SIZED = ("prompt_len", "gen_len", "batch_sizes", "iterations", "warmup", "dtype", "time_budget", "threads")


@dataclass(frozen=True)
class BenchConfig:
    model: str | None = None  # checkpoint directory; None with no shapes: the embedded tiny family
    shapes: tuple[str, ...] = ()  # real shapes with random weights (evalkit.catalog.shapes), e.g. ("ruyi-7b",)
    random_weights: bool = False  # required with shapes: says the weights are random on purpose
    branches: str = "all"
    # None: the device's defaults (`Sizing`: GPU_SIZED or CPU_SIZED), filled in by `sized`.
    batch_sizes: tuple[int, ...] | None = None
    prompt_len: int | None = None
    gen_len: int | None = None
    dtype: str | None = None
    attn: str = "sdpa"  # stock backend's attention: sdpa | flash_attention_2 (the fast path uses SDPA)
    backend: str = "both"  # hf | fast | both
    iterations: int | None = None  # the fewest rounds
    warmup: int | None = None
    time_budget: float | None = None  # seconds per comparison before it stops short of ci_target
    threads: int | None = None  # torch CPU threads while measuring; None: the device's default (1 on a CPU)
    ci_target: float = 0.05  # stop once every ratio's 95% interval has a half-width under this share of it
    peak_bandwidth: float | None = None  # GB/s; None: from the device name
    out: str | None = None  # directory; None: results/bench-<timestamp>
    device: str = "auto"  # auto | cuda | cpu
    decode_mode: str = "auto"  # fast path: auto | eager | cudagraph | compile
    shared_trunk: bool = False
    # With shared_trunk: `run --branches all` on this suite vs stock OpenCompass on the exported branches (minutes
    # of subprocesses on a CPU); None skips it; "auto": the device's default (stem on a GPU, skipped on a CPU).
    # The CLI's --e2e-suite defaults to "auto".
    e2e_suite: str | None = None
    e2e_limit: int = 2  # items per dataset in the end-to-end comparison
    e2e_max_out_len: int | None = None  # None: what `run` uses
    e2e_rounds: int = 1  # timed runs of each side; 1 is a single measurement, 2 or more give an interval
    seed: int = 0
    # Self-speculative decoding: the deepest of `branches` as the target, drafted by each of `draft`
    # ("all": every shallower branch) with each k in `ks`, against the target alone (batch sizes default 1).
    speculative: bool = False
    draft: str = "all"
    ks: tuple[int, ...] = (1, 2, 4, 8)
    command: str = field(default="", compare=False)
    given: tuple[str, ...] = field(default=(), compare=False)  # the sized fields the user set (for the header)

    def __post_init__(self) -> None:
        if self.model and self.shapes:
            raise EvalkitError("pass either --model PATH or --shape NAME --random-weights, not both")
        if self.shapes and not self.random_weights:
            raise EvalkitError("--shape builds a model with random weights; add --random-weights, or pass --model PATH")
        if self.backend not in (*BACKENDS, "both"):
            raise did_you_mean("backend", self.backend, [*BACKENDS, "both"])
        if (self.gen_len is not None and self.gen_len < 2) or (self.prompt_len is not None and self.prompt_len < 1):
            raise EvalkitError(f"--gen-len must be >= 2 and --prompt-len >= 1 (got {self.gen_len}, {self.prompt_len})")
        if self.batch_sizes is not None and (not self.batch_sizes or min(self.batch_sizes) < 1):
            raise EvalkitError(f"--batch-sizes must be positive integers, got {self.batch_sizes}")
        suite = None if self.e2e_suite in (None, "auto") else self.e2e_suite
        if (suite is not None and len(parse_suites(suite)) != 1) or self.e2e_limit < 1 or self.e2e_rounds < 1:
            raise EvalkitError(
                f"--e2e-suite takes one suite (general, code or stem), auto or none, and --e2e-limit and "
                f"--e2e-rounds a positive number (got {self.e2e_suite!r}, {self.e2e_limit}, {self.e2e_rounds})"
            )
        if (self.iterations is not None and self.iterations < 1) or (self.warmup is not None and self.warmup < 1):
            raise EvalkitError(
                f"--iterations and --warmup must be >= 1 (got {self.iterations}, {self.warmup}); "
                "the warm-up builds the CUDA graph and compiles, which no timed run may include"
            )
        if self.threads is not None and self.threads < 1:
            raise EvalkitError(f"--threads must be >= 1, got {self.threads}")
        if self.time_budget is not None and not (0 < self.time_budget < math.inf):
            raise EvalkitError(f"--time-budget must be a positive number of seconds, got {self.time_budget}")
        if not 0 < self.ci_target < 1:
            raise EvalkitError(
                f"--ci-target must be a share of the ratio between 0 and 1 (e.g. 0.05), got {self.ci_target}"
            )
        if self.dtype is not None and self.dtype not in ("bf16", "fp16", "fp32"):
            raise did_you_mean("dtype", self.dtype, ["bf16", "fp16", "fp32"])
        if self.peak_bandwidth is not None and not (0 < self.peak_bandwidth < math.inf):
            raise EvalkitError(f"--peak-bandwidth must be a positive number of GB/s, got {self.peak_bandwidth}")
        if self.speculative and self.shared_trunk:
            raise EvalkitError("--speculative and --shared-trunk are separate benchmarks; run one at a time")
        if not self.ks or min(self.ks) < 1:
            raise EvalkitError(f"--k takes positive numbers of drafted tokens such as 1,2,4,8, got {self.ks}")
        if self.e2e_max_out_len is not None and self.e2e_max_out_len < 1:
            raise EvalkitError(f"--e2e-max-out-len must be >= 1, got {self.e2e_max_out_len}")
        # Names and paths are checked here, before torch loads, so a typo fails at once.
        if self.shapes:
            plain = [s.name for s in parse_shapes(",".join(self.shapes)) if s.role != "ours"]
            for flag, on in (("--shared-trunk", self.shared_trunk), ("--speculative", self.speculative)):
                if on and plain:
                    raise EvalkitError(
                        f"{flag} needs familial shapes; {', '.join(plain)} has one branch (use --shape ruyi-7b)"
                    )
        if self.model:
            read_checkpoint(self.model)

    def sized(self, device: str) -> tuple[BenchConfig, Sizing]:
        """This config with every unset sized field from the device's defaults, and those defaults."""
        sizing = GPU_SIZED if device == "cuda" else CPU_SIZED
        given = tuple(k for k in _SIZED if getattr(self, k) is not None)
        fill = {k: getattr(sizing, k) for k in _SIZED if getattr(self, k) is None}
        if self.batch_sizes is None:
            fill["batch_sizes"] = sizing.trunk_batch_sizes if self.shared_trunk else sizing.batch_sizes
            if self.speculative:
                fill["batch_sizes"] = SPEC_BATCH_SIZES
        if self.time_budget is None:
            # --shared-trunk and --speculative compare many conditions at once, in fewer comparisons.
            many = self.shared_trunk or self.speculative
            fill["time_budget"] = sizing.trunk_time_budget if many else sizing.time_budget
        suite = sizing.e2e_suite if self.e2e_suite == "auto" else self.e2e_suite
        return replace(self, **fill, e2e_suite=suite if self.shared_trunk else None, given=given), sizing

    @property
    def backends(self) -> tuple[str, ...]:
        return BACKENDS if self.backend == "both" else (self.backend,)
