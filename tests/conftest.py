"""Shared fixtures: tiny familial checkpoints built from seeds, in a per-session cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Every test (and every subprocess a test starts) builds the embedded default into this session's cache,
# never into the user's home.
_SESSION_HOME = Path(os.environ.get("EVALKIT_TEST_HOME", "/tmp")) / f"evalkit-test-home-{os.getpid()}"
os.environ["EVALKIT_HOME"] = str(_SESSION_HOME)
# Subprocesses (the CLI under test) run tiny models too: one thread each avoids contention on small CI machines.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _deterministic() -> None:
    import torch

    torch.use_deterministic_algorithms(True)
    # Tiny models are bound by per-op overhead, where extra threads only add contention.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_path() -> Path:
    """The embedded default: qwen2 flavour, one head per branch."""
    from evalkit.tiny import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """Build (once per session) a tiny familial checkpoint of the given flavour and head layout."""
    from evalkit.tiny import make_tiny

    cache: dict[tuple[str, bool], Path] = {}

    def make(flavour: str = "qwen2", shared_heads: bool = False) -> Path:
        key = (flavour, shared_heads)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"tiny-{flavour}-{'shared' if shared_heads else 'heads'}")
            cache[key] = make_tiny(out, flavour=flavour, shared_heads=shared_heads, seed=1)
        return cache[key]

    return make
