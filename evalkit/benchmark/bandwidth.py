"""The memory bandwidth a device attains, measured in the bench's own run by a large copy.

MBU against a datasheet peak says how far decode is from a figure no kernel reaches; MBU against the
bandwidth a plain device-to-device copy attains on the same device, in the same process and minutes,
is the yardstick gpt-fast uses. The bench reports both.

A copy of `n` bytes reads `n` and writes `n`, so it moves `2n` bytes; the attained bandwidth is
`2n / seconds` (the convention of `nvbandwidth` and STREAM's "copy"). The buffer is far larger than
any cache (1 GiB on a GPU; on a CPU 256 MiB, past every last-level cache of a server part).
"""

from __future__ import annotations

import numpy as np

from evalkit.records.bench import AttainedBandwidth

GPU_COPY_BYTES = 1 << 30
CPU_COPY_BYTES = 256 << 20


def copy_bandwidth(device: str, *, nbytes: int | None = None, repeats: int = 20, warmup: int = 3) -> AttainedBandwidth:
    """Time `repeats` copies of one buffer into another on `device` ("cuda" or "cpu")."""
    import torch

    from evalkit.benchmark.measure import Clock

    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0 (got {repeats}, {warmup})")
    cuda = device.startswith("cuda")
    nbytes = nbytes or (GPU_COPY_BYTES if cuda else CPU_COPY_BYTES)
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    clock = Clock("cuda" if cuda else "cpu")
    for _ in range(warmup):
        dst.copy_(src)
    seconds = []
    for _ in range(repeats):
        start = clock.now()
        dst.copy_(src)
        seconds.append(clock.seconds(start, clock.now()))
    del src, dst
    if cuda:
        torch.cuda.empty_cache()
    rates = 2 * nbytes / np.asarray(seconds) / 1e9
    return AttainedBandwidth(
        gbps=float(np.median(rates)),
        low_gbps=float(rates.min()),
        high_gbps=float(rates.max()),
        nbytes=nbytes,
        repeats=repeats,
        method=f"{'device-to-device' if cuda else 'host'} copy of {nbytes >> 20} MiB, 2x bytes moved, "
        f"median of {repeats}",
    )
