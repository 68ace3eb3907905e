"""What a benchmark measures with: clocks, percentiles, bytes read per token, peak bandwidth, MBU."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from evalkit.records.bench import Environment, Stats
from evalkit.records.provenance import git_revision

# Peak memory bandwidth by device name, GB/s (vendor datasheets). Matched in order, on the lower-cased
# name torch reports ("NVIDIA H100 80GB HBM3" is the SXM part), so specific names come first.
PEAK_BANDWIDTH_GBPS: tuple[tuple[tuple[str, ...], float, str], ...] = (
    (("gh200",), 4000.0, "GH200"),
    (("h200",), 4800.0, "H200"),
    (("h100", "nvl"), 3900.0, "H100 NVL"),
    (("h100", "pcie"), 2000.0, "H100 PCIe"),
    (("h100",), 3350.0, "H100 SXM"),
    (("b200",), 8000.0, "B200"),
    (("a100", "80gb", "pcie"), 1935.0, "A100 80GB PCIe"),
    (("a100", "80gb"), 2039.0, "A100 80GB SXM"),
    (("a100",), 1555.0, "A100 40GB"),
    (("l40s",), 864.0, "L40S"),
    (("l40",), 864.0, "L40"),
    (("rtx 4090",), 1008.0, "RTX 4090"),
    (("rtx 3090",), 936.0, "RTX 3090"),
    (("a10g",), 600.0, "A10G"),
    (("l4",), 300.0, "L4"),
    (("v100",), 900.0, "V100"),
)


def summarize(samples: list[float] | np.ndarray) -> Stats:
    """Median, p90, p99 (numpy's linear interpolation), mean, min, max of at least one sample."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no samples to summarize")
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return Stats(float(p50), float(p90), float(p99), float(a.mean()), float(a.min()), float(a.max()), int(a.size))


def peak_bandwidth(device_name: str) -> tuple[float | None, str]:
    """(GB/s, which table entry) for a device name; (None, "unknown") for a CPU or an unlisted GPU."""
    lowered = device_name.lower()
    for keys, gbps, label in PEAK_BANDWIDTH_GBPS:
        if all(k in lowered for k in keys):
            return gbps, f"table: {label}"
    return None, "unknown"


def mbu(bytes_per_token: float, tokens_per_s: float, peak_gbps: float | None) -> float | None:
    """Model bandwidth utilisation: bytes per token x tokens/s / peak bandwidth (None without a peak)."""
    if peak_gbps is None or peak_gbps <= 0:
        return None
    return bytes_per_token * tokens_per_s / (peak_gbps * 1e9)


@dataclass(frozen=True)
class Traffic:
    """Bytes one decode step reads from memory, the way MBU counts them.

    - weights: every parameter of the branch once per step, whatever the batch size: the layers it
      runs, its final norm and its whole head (logits cover the vocabulary). The embedding table is
      not read whole: each row reads one embedding row (`hidden` values); with tied embeddings the
      head reads the table anyway, so the table counts once.
    - keys/values: per row, every layer's cached keys and values for the tokens in context. Step s of
      the G-1 decode steps after prefill attends over P + s tokens, so the mean context is P + G/2.
      Empty static-cache slots beyond the context are not counted.
    """

    weight_bytes: int  # per step, for the whole batch
    kv_bytes_per_row: int  # per step and row, mean over the decode steps

    def per_step(self, batch_size: int) -> int:
        return self.weight_bytes + batch_size * self.kv_bytes_per_row

    def per_token(self, batch_size: int) -> float:
        return self.per_step(batch_size) / batch_size


def traffic(
    *,
    num_params: int,
    vocab_size: int,
    hidden_size: int,
    tied: bool,
    num_layers: int,
    num_kv_heads: int,
    head_dim: int,
    dtype_bytes: int,
    prompt_len: int,
    gen_len: int,
) -> Traffic:
    read_params = num_params if tied else num_params - vocab_size * hidden_size + hidden_size
    context = prompt_len + gen_len / 2
    kv = 2 * num_layers * num_kv_heads * head_dim * dtype_bytes * context
    return Traffic(weight_bytes=read_params * dtype_bytes, kv_bytes_per_row=round(kv))


class Clock:
    """CUDA events on a GPU (read after one synchronize), `perf_counter` on a CPU."""

    def __init__(self, device_type: str) -> None:
        self.cuda = device_type == "cuda"

    def now(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, start: Any, end: Any) -> float:
        if not self.cuda:
            return float(end - start)
        end.synchronize()
        return float(start.elapsed_time(end)) / 1e3


def environment(device_type: str) -> Environment:
    import torch
    import transformers

    if device_type == "cuda":
        name, cuda = torch.cuda.get_device_name(), torch.version.cuda
    else:
        n = torch.get_num_threads()
        name, cuda = f"cpu ({platform.processor() or platform.machine()}, {n} thread{'s' if n != 1 else ''})", None
    return Environment(
        device=name,
        device_type=device_type,
        driver=_driver() if device_type == "cuda" else None,
        cuda=cuda,
        torch=torch.__version__,
        transformers=transformers.__version__,
        python=platform.python_version(),
        git_revision=git_revision(),
    )


def _driver() -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


class PeakMemory:
    """Peak allocated and reserved GPU memory over a region (None on a CPU)."""

    def __init__(self, device_type: str) -> None:
        self.cuda = device_type == "cuda"
        self.allocated: int | None = None
        self.reserved: int | None = None

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.allocated = int(torch.cuda.max_memory_allocated())
            self.reserved = int(torch.cuda.max_memory_reserved())
