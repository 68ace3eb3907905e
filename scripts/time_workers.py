"""Wall time of `evalkit run` on workers, family-grouped tasks against OpenCompass's one task per model
and dataset, measured in one run, and their predictions against the in-process run's.

    python scripts/time_workers.py [--workers 2] [--reps 3] [--suites stem] [--limit 4]

Runs the in-process reference once, then `reps` rounds of the two worker modes in alternating order
(grouped first in even rounds, ungrouped first in odd ones), each a fresh `python -m evalkit run` in
its own output directory on the embedded tiny family (all its branches) and fixtures. Every run's
predictions must equal the reference's file for file, or the script fails. Prints each run's wall
time, the medians and their ratio, with the CPU, its core count and the load average at the start.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path


def _run(out: Path, common: list[str], extra: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "evalkit", "run", *common, "--out", str(out), *extra], capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"run failed ({' '.join(extra) or 'in process'}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def _predictions(out: Path) -> dict[str, str]:
    (run_dir,) = (out / "results").iterdir()
    root = run_dir / "predictions"
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.json"))}


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--suites", default="stem")
    parser.add_argument("--limit", type=int, default=4)
    args = parser.parse_args()
    common = ["--suites", args.suites, "--limit", str(args.limit)]
    modes = {"grouped": ["--group-tasks"], "ungrouped": ["--no-group-tasks"]}
    load = os.getloadavg()
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {_cpu()}, {os.cpu_count()} cores, load {load[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        seconds = _run(Path(tmp, "in-process"), common, [])
        reference = _predictions(Path(tmp, "in-process"))
        print(f"in process: {seconds:.1f} s, {len(reference)} prediction files")
        times: dict[str, list[float]] = {m: [] for m in modes}
        for rep in range(args.reps):
            order = list(modes) if rep % 2 == 0 else list(reversed(modes))
            for mode in order:
                out = Path(tmp, f"{mode}-{rep}")
                flags = ["--max-num-workers", str(args.workers), *modes[mode]]
                times[mode].append(_run(out, common, flags))
                same = _predictions(out) == reference
                print(f"round {rep + 1} {mode:9s} {times[mode][-1]:6.1f} s  predictions equal in-process: {same}")
                if not same:
                    sys.exit(f"{mode} predictions differ from the in-process run's")
    med = {m: statistics.median(t) for m, t in times.items()}
    print(
        f"median over {args.reps} rounds, {args.workers} workers: grouped {med['grouped']:.1f} s, "
        f"ungrouped {med['ungrouped']:.1f} s, ungrouped / grouped = {med['ungrouped'] / med['grouped']:.2f}x"
    )


if __name__ == "__main__":
    main()
