"""Resident memory of loading a familial checkpoint, and of holding every branch model of it at once.

    python scripts/measure_memory.py [--hidden 1024] [--layers 8]

Builds a random Ruyi-format checkpoint (exits at 2/4/6/last) big enough for the weights to dominate
RSS, then reads resident memory (VmRSS) in a fresh process after each of: importing torch and
transformers; `load_family` (every tensor touched, since safetensors maps the file lazily); and that
plus `branch_model` for every branch, all held at once. Branch models share the family's tensors,
so the last two should differ by little more than Python objects.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = r"""
import json, sys
import torch, transformers  # noqa: F401  (their import cost is the baseline)
from transformers.models.qwen2 import modeling_qwen2  # noqa: F401
stage, path = sys.argv[1], sys.argv[2]
if stage != "imports":
    from evalkit import load_family
    family = load_family(path)
    # safetensors maps the file lazily: touch every tensor so the weights are really resident.
    checksum = sum(float(t.sum()) for t in family.tensors.values())
    if stage == "branches":
        models = [family.branch_model(b) for b in family.branches]
import gc; gc.collect()
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"rss_mb": int(status["VmRSS"].split()[0]) / 1024}))
"""


def measure(stage: str, path: Path) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, stage, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["rss_mb"]


def main() -> None:
    from evalkit.load.tiny import TinySpec, build_checkpoint

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    args = parser.parse_args()
    spec = TinySpec(
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 11 // 4,
        num_heads=16,
        num_kv_heads=4,
        num_layers=args.layers,
        exits=(2, 4, 6, args.layers - 1),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = build_checkpoint(Path(tmp) / "ckpt", spec)
        weights_mb = (path / "model.safetensors").stat().st_size / 2**20
        base = measure("imports", path)
        family = measure("family", path) - base
        branches = measure("branches", path) - base
    n = len(spec.exits)
    print(f"checkpoint: {weights_mb:.0f} MiB of fp32 safetensors, {n} branches")
    print(f"RSS over imports, load_family:                {family:.0f} MiB ({family / weights_mb:.2f}x weights)")
    print(
        f"RSS over imports, load_family + {n} branch models: {branches:.0f} MiB ({branches / weights_mb:.2f}x weights)"
    )


if __name__ == "__main__":
    main()
