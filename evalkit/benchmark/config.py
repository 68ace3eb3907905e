"""What a benchmark run measures and how: `BenchConfig` (checked when built, before torch loads, so a
typo fails at once) and `Protocol`, the measurement protocol stated in code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from evalkit.catalog.datasets import parse_suites
from evalkit.catalog.shapes import parse_shapes
from evalkit.errors import EvalkitError, did_you_mean
from evalkit.load.checkpoint import read_checkpoint

BACKENDS = ("hf", "fast")
BATCH_SIZES = (1, 4, 16, 32)


@dataclass(frozen=True)
class Protocol:
    """How every cell is measured (after optimum-benchmark):

    1. warm-up: `warmup` untimed generations first (CUDA graph capture, allocator, kernel choice);
    2. timing: CUDA events around each region, read after a synchronize (GPU); perf_counter (CPU);
    3. fixed output length: every generation makes exactly gen_len tokens (EOS ignored on the fast
       path, min_new_tokens = max_new_tokens on stock `generate`);
    4. at least `iterations` timed repetitions per cell;
    5. median, p90 and p99 with numpy (linear interpolation) over the iterations: each is one whole
       generation, so a TPOT percentile is over per-generation mean step times, not single tokens;
    6. peak allocated and reserved GPU memory per cell (peak counters reset before the cell);
    7. MBU = bytes per token x tokens/s / peak bandwidth, the peak looked up from the device name or
       given, never assumed; none on a CPU unless given;
    8. both backends in the same process on the same prompts, so their ratio compares like with like.
    """

    warmup: int
    iterations: int
    timer: str  # "cuda-events" | "perf_counter"
    decode_mode: str = ""  # the fast path as run: eager | cudagraph | compile ("auto" resolved)
    fixed_output_length: bool = True
    percentiles: tuple[int, ...] = (50, 90, 99)


@dataclass(frozen=True)
class BenchConfig:
    model: str | None = None  # checkpoint directory; None with no shapes: the embedded tiny family
    shapes: tuple[str, ...] = ()  # real shapes with random weights (evalkit.catalog.shapes), e.g. ("ruyi-7b",)
    random_weights: bool = False  # required with shapes: says the weights are random on purpose
    branches: str = "all"
    batch_sizes: tuple[int, ...] | None = None  # None: 1,4,16,32 (--shared-trunk: 1,8)
    prompt_len: int = 256
    gen_len: int = 128
    dtype: str = "bf16"
    attn: str = "sdpa"  # stock backend's attention: sdpa | flash_attention_2 (the fast path uses SDPA)
    backend: str = "both"  # hf | fast | both
    iterations: int = 10
    warmup: int = 2
    peak_bandwidth: float | None = None  # GB/s; None: from the device name
    out: str | None = None  # directory; None: results/bench-<timestamp>
    device: str = "auto"  # auto | cuda | cpu
    decode_mode: str = "auto"  # fast path: auto | eager | cudagraph | compile
    shared_trunk: bool = False
    # With shared_trunk: `run --branches all` on this suite vs stock OpenCompass on the exported branches (minutes
    # of subprocesses on a CPU); None skips it. The CLI's --e2e-suite defaults to "stem".
    e2e_suite: str | None = None
    e2e_limit: int = 2  # items per dataset in the end-to-end comparison
    e2e_max_out_len: int | None = None  # None: what `run` uses
    seed: int = 0
    # Self-speculative decoding: the deepest of `branches` as the target, drafted by each of `draft`
    # ("all": every shallower branch) with each k in `ks`, against the target alone (batch sizes default 1).
    speculative: bool = False
    draft: str = "all"
    ks: tuple[int, ...] = (1, 2, 4, 8)
    command: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.model and self.shapes:
            raise EvalkitError("pass either --model PATH or --shape NAME --random-weights, not both")
        if self.shapes and not self.random_weights:
            raise EvalkitError("--shape builds a model with random weights; add --random-weights, or pass --model PATH")
        if self.backend not in (*BACKENDS, "both"):
            raise did_you_mean("backend", self.backend, [*BACKENDS, "both"])
        if self.gen_len < 2 or self.prompt_len < 1:
            raise EvalkitError(f"--gen-len must be >= 2 and --prompt-len >= 1 (got {self.gen_len}, {self.prompt_len})")
        if self.batch_sizes is not None and (not self.batch_sizes or min(self.batch_sizes) < 1):
            raise EvalkitError(f"--batch-sizes must be positive integers, got {self.batch_sizes}")
        if self.e2e_suite is not None and (len(parse_suites(self.e2e_suite)) != 1 or self.e2e_limit < 1):
            raise EvalkitError(
                f"--e2e-suite takes one suite (general, code or stem) and --e2e-limit a positive "
                f"number (got {self.e2e_suite!r}, {self.e2e_limit})"
            )
        if self.iterations < 1 or self.warmup < 1:
            raise EvalkitError(
                f"--iterations and --warmup must be >= 1 (got {self.iterations}, {self.warmup}); "
                "the warm-up builds the CUDA graph and compiles, which no timed run may include"
            )
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

    @property
    def backends(self) -> tuple[str, ...]:
        return BACKENDS if self.backend == "both" else (self.backend,)
