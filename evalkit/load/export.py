"""`evalkit branches` and `evalkit export-branch`: a family's branches listed, or one written out as a plain
checkpoint that stock transformers, OpenCompass or vLLM load unchanged.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tabulate import tabulate

from evalkit.load.family import load_family, parse_branches
from evalkit.load.tiny import default_model_path


def branches_table(model: str | None, *, branches: str = "all") -> str:
    """The `evalkit branches` table: name, exit layer, layers, parameters and size (in GB, MB or KB, as fits)."""
    family = load_family(model or default_model_path())
    bytes_per = torch.finfo(family.dtype).bits // 8
    rows = [
        (b.name, b.exit_layer, b.num_layers, f"{b.num_params:,}", _size(b.num_params * bytes_per))
        for b in parse_branches(branches, family.branches)
    ]
    dt = str(family.dtype).removeprefix("torch.")
    head = f"{family.path}  ({family.files.model_type}, {dt})"
    return head + "\n" + tabulate(rows, headers=["branch", "exit layer", "layers", "parameters", f"size ({dt})"])


def _size(n: int) -> str:
    """Bytes as GB, or MB below a gigabyte (a tiny branch is not 0.00 GB)."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.2f} MB"


def export_branch(model: str | None, branch: str, out: str | Path) -> Path:
    """Write one branch of `model` (default: the embedded tiny family) as a plain checkpoint under `out`."""
    return load_family(model or default_model_path()).export_branch(branch, out)
