"""Shared fixtures: tiny familial checkpoints built from seeds, in a per-session cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


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
def _session_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test (and every subprocess a test starts) keeps its caches (the fixture data) in this
    session's directory, never in the user's home. Subprocesses (the CLI under test) run tiny models too: one thread
    each avoids contention on small CI machines."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVALKIT_HOME", str(tmp_path_factory.mktemp("evalkit-home")))
        mp.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
        yield


@pytest.fixture(scope="session", autouse=True)
def _deterministic(_session_env: None) -> None:
    import torch

    torch.use_deterministic_algorithms(True)
    # Tiny models are bound by per-op overhead, where extra threads only add contention.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_path() -> Path:
    """The embedded default, trained and shipped in the package: qwen2 flavour, one head per branch."""
    from evalkit.load.tiny import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """Build (once per session) a tiny familial checkpoint of the given flavour and head layout."""
    from evalkit.load.tiny import make_tiny

    cache: dict[tuple[str, bool], Path] = {}

    def make(flavour: str = "qwen2", shared_heads: bool = False) -> Path:
        key = (flavour, shared_heads)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"tiny-{flavour}-{'shared' if shared_heads else 'heads'}")
            cache[key] = make_tiny(out, flavour=flavour, shared_heads=shared_heads, seed=1)
        return cache[key]

    return make
