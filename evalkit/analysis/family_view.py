"""How reports see the models of a record: baselines, families and their branches in size order."""

from __future__ import annotations

import re
from dataclasses import dataclass

from evalkit.catalog.datasets import DATASETS
from evalkit.records.results import ModelInfo, ResultsRecord

_BRANCH_SIZE = re.compile(r"^E(\d+(?:\.\d+)?)B$", re.IGNORECASE)


def nominal_params(branch: str | None) -> int | None:
    """The size a branch name states (E3B -> 3e9), or None for a name without one."""
    m = _BRANCH_SIZE.match(branch or "")
    return int(float(m.group(1)) * 1e9) if m else None


@dataclass(frozen=True)
class Sized:
    model: ModelInfo
    params: int | None  # the real count where known, else the nominal one from the branch name
    nominal: bool  # True when params comes from the branch name

    @property
    def label(self) -> str:
        return self.model.branch or self.model.name


def sized(m: ModelInfo) -> Sized:
    if m.num_params:
        return Sized(m, m.num_params, False)
    return Sized(m, nominal_params(m.branch), True)


def _size_key(s: Sized) -> tuple[float, float, str]:
    return (
        float(s.params) if s.params is not None else float("inf"),
        float(s.model.exit_layer) if s.model.exit_layer is not None else float("inf"),
        s.model.branch or s.model.abbr,
    )


def families(record: ResultsRecord) -> dict[str, list[Sized]]:
    """family -> its branches, smallest first (by params, then exit layer, then name)."""
    out: dict[str, list[Sized]] = {}
    for m in record.models:
        if m.family is not None and m.branch is not None:
            out.setdefault(m.family, []).append(sized(m))
    return {f: sorted(bs, key=_size_key) for f, bs in out.items()}


def baselines(record: ResultsRecord) -> list[ModelInfo]:
    return [m for m in record.models if m.role == "baseline" and m.branch is None]


def headline_models(record: ResultsRecord) -> list[ModelInfo]:
    """Rows of the suite tables: baselines first, then ours (the largest branch of each family)."""
    fams = families(record)
    largest = {bs[-1].model.abbr for bs in fams.values()}
    ours = [
        m
        for m in record.models
        if m not in baselines(record) and (m.family is None or m.branch is None or m.abbr in largest)
    ]
    return baselines(record) + ours


def branch_models(record: ResultsRecord) -> list[ModelInfo]:
    """Rows of the branch tables: every family's branches, smallest first."""
    return [s.model for bs in families(record).values() for s in bs]


def datasets_with_scores(record: ResultsRecord, models: list[ModelInfo], keys: tuple[str, ...]) -> list[str]:
    """The dataset keys (in catalogue order) on which at least one of the models has a score."""
    abbrs = {m.abbr for m in models}
    have = {s.dataset for s in record.scores if s.model in abbrs}
    return [k for k in keys if k in have]


def all_dataset_keys(record: ResultsRecord) -> list[str]:
    have = {s.dataset for s in record.scores}
    return [d.key for d in DATASETS if d.key in have]


def common_datasets(record: ResultsRecord, models: list[ModelInfo]) -> list[str]:
    """The dataset keys (in catalogue order) on which every one of the models has a score."""
    return [k for k in all_dataset_keys(record) if all(record.score(m.abbr, k) is not None for m in models)]
