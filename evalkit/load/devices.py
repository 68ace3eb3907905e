"""Devices and dtypes: the one place that turns a user's spelling into a torch device or dtype, and frees memory.

`check_device` is pure (no torch), so a bad `--device` fails before torch or OpenCompass load;
`resolve_device` then asks torch whether this machine has it. torch is imported inside the functions
for that reason.
"""

from __future__ import annotations

import gc
import re
from typing import TYPE_CHECKING

from evalkit.errors import EvalkitError, did_you_mean

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = {
    "fp32": "float32",
    "float32": "float32",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
}
_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


def check_device(device: str) -> str:
    """`device` if it is spelled as one (auto, cpu, cuda, cuda:N, mps), without asking torch; else one error."""
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise EvalkitError(f"unknown device {device!r}; pass cpu, cuda or cuda:N")
    return device


def check_dtype(name: str) -> str:
    """`name` if it names a dtype evalkit runs in (fp32, bf16, fp16 or torch's spellings); else one error."""
    if name not in DTYPE_NAMES:
        raise did_you_mean("dtype", name, ["fp32", "bf16", "fp16"])
    return name


def resolve_device(device: str | torch.device) -> torch.device:
    """The device, if this machine has it ("auto": the first GPU when there is one, else the CPU)."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise EvalkitError(f"unknown device {device!r}; pass cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise EvalkitError(
                f"device {device} asked for, but this machine has no usable CUDA GPU (torch "
                f"{torch.__version__}); pass --device cpu, or run on a GPU machine"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise EvalkitError(
                f"device {device} asked for, but this machine has {torch.cuda.device_count()} GPU(s) "
                f"(cuda:0 to cuda:{torch.cuda.device_count() - 1}); pass one of those"
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise EvalkitError(f"device {device} asked for, but MPS is not available here; pass --device cpu")
    elif dev.type != "cpu":
        raise EvalkitError(f"device type {dev.type!r} is not supported; pass cpu, cuda or cuda:N")
    return dev


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    """fp32/bf16/fp16 (or their torch spellings) -> the torch dtype; anything else is one error."""
    import torch

    if isinstance(name, torch.dtype):
        return name
    return getattr(torch, DTYPE_NAMES[check_dtype(name)])


def release_memory() -> None:
    """Return what finished models held: Python's garbage first, then CUDA's cached blocks."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
