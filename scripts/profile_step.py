"""Profile decode steps of one branch: kernels per step, device time per step, the costliest kernels.

    python scripts/profile_step.py --shape ruyi-7b --branch E7B --mode compile --out prof/
    python scripts/profile_step.py --model CKPT --device cpu --dtype fp32 --mode eager --out prof/

The step is profiled as the bench runs it (prefill, warm-up steps that capture the CUDA graph, then
`--steps` profiled steps), so the counts are those of the replayed graph. It answers the questions to
ask before changing code when decode misses the bandwidth target: how many kernels a step launches,
how long the GEMVs take against their bytes, what the attention kernel costs, and whether the host
waits on the device. Writes `profile.txt` (torch.profiler's table) and `profile.json` (the summary).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from evalkit.benchmark.runners import prompts
from evalkit.engine.generate import Generator
from evalkit.load.family import load_family
from evalkit.load.random_weights import random_family
from evalkit.records.io import write_json_atomic, write_text_atomic


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--shape", help="a catalog shape with random weights, e.g. ruyi-7b")
    source.add_argument("--model", help="a checkpoint directory")
    p.add_argument("--branch", default="last", help="a branch name, first or last (default: last)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--prompt-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=8, help="profiled decode steps")
    p.add_argument("--mode", default="auto", help="decode mode: auto | eager | cudagraph | compile")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)

    with torch.no_grad():
        if a.shape:
            family = random_family(a.shape, dtype=a.dtype, device=a.device)
        else:
            family = load_family(a.model, dtype=a.dtype, device=a.device)
        names = [b.name for b in family.branches]
        branch = {"first": names[0], "last": names[-1]}.get(a.branch, a.branch)
        if branch not in names:
            print(f"profile_step: no branch {branch!r}; this family has {', '.join(names)}", file=sys.stderr)
            return 2
        ids, mask = prompts(family, a.batch_size, a.prompt_len, seed=0)
        warm = 3
        gen = Generator(family, [family.branch(branch)], a.batch_size, a.prompt_len + warm + a.steps + 1, a.mode)
        first = gen.prefill(ids, mask)
        # Warm-up steps: allocator, kernel choice, compile, CUDA-graph capture. Then a fresh decoder run.
        gen.decode(first, mask, warm)
        first = gen.prefill(ids, mask)
        cuda = family.device.type == "cuda"
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        if cuda:
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            gen.decode(first, mask, a.steps)
            if cuda:
                torch.cuda.synchronize()

    events = prof.key_averages()
    device_time = "self_device_time_total" if cuda else "self_cpu_time_total"
    kernels = [e for e in events if cuda and getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA]
    ops = kernels or [e for e in events if e.key.startswith("aten::")]
    per_step_us = sum(getattr(e, device_time) for e in ops) / a.steps
    summary = {
        "family": a.shape or str(a.model),
        "branch": branch,
        "mode": gen.mode,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": a.dtype,
        "batch_size": a.batch_size,
        "prompt_len": a.prompt_len,
        "steps": a.steps,
        "counted": "CUDA kernels" if kernels else "aten ops, nested ones included (CPU)",
        "launches_per_step": sum(e.count for e in ops) / a.steps,
        "time_per_step_us": per_step_us,
        "top": [
            {"name": e.key, "calls_per_step": e.count / a.steps, "us_per_step": getattr(e, device_time) / a.steps}
            for e in sorted(ops, key=lambda e: getattr(e, device_time), reverse=True)[:15]
        ],
    }
    table = events.table(sort_by=device_time, row_limit=30)
    write_text_atomic(a.out / "profile.txt", table)
    write_json_atomic(a.out / "profile.json", summary)
    print(table)
    print(
        f"{branch} ({gen.mode}, batch {a.batch_size}): {summary['launches_per_step']:.0f} {summary['counted']} "
        f"per step, {per_step_us / 1e3:.3f} ms of {'device' if cuda else 'CPU'} time per step"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
