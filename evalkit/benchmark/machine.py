"""The state of the machine a benchmark ran on: CPU model, cores, threads, load, GPU clocks."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from evalkit.records.bench import Machine

LOADAVG = Path("/proc/loadavg")
CPUINFO = Path("/proc/cpuinfo")
CLOCK_FIELDS = "clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem"


def load_average(path: Path = LOADAVG) -> tuple[float, ...]:
    """The 1, 5 and 15-minute load averages; () where the file is absent or unreadable (not Linux)."""
    try:
        parts = path.read_text(encoding="utf-8").split()
        return tuple(float(p) for p in parts[:3]) if len(parts) >= 3 else ()
    except (OSError, ValueError):
        return ()


def cpu_model(path: Path = CPUINFO) -> str:
    try:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def parse_clocks(text: str) -> tuple[int | None, ...]:
    """nvidia-smi's `--query-gpu=clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem
    --format=csv,noheader,nounits` for the first GPU, as whole MHz; None for a field it cannot read."""
    lines = text.strip().splitlines()
    fields = [f.strip() for f in lines[0].split(",")] if lines else []
    out: list[int | None] = []
    for i in range(4):
        try:
            out.append(int(float(fields[i])))
        except (IndexError, ValueError):
            out.append(None)
    return tuple(out)


def gpu_clocks() -> tuple[int | None, ...]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return (None,) * 4
    try:
        done = subprocess.run(
            [exe, f"--query-gpu={CLOCK_FIELDS}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return (None,) * 4
    return parse_clocks(done.stdout) if done.returncode == 0 else (None,) * 4


def machine_before(device_type: str) -> Machine:
    """The machine as the measurement starts (the load after is added by `machine_after`)."""
    import torch

    sm, max_sm, mem, max_mem = gpu_clocks() if device_type == "cuda" else (None,) * 4
    return Machine(
        cpu_model=cpu_model(),
        logical_cpus=os.cpu_count() or 1,
        torch_threads=torch.get_num_threads(),
        load_before=load_average(),
        gpu_sm_mhz=sm,
        gpu_max_sm_mhz=max_sm,
        gpu_mem_mhz=mem,
        gpu_max_mem_mhz=max_mem,
    )


def machine_after(machine: Machine) -> Machine:
    return replace(machine, load_after=load_average())
