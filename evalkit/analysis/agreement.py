"""Per-token agreement with the last branch, and what it predicts for self-speculative decoding.

`run` records, per item and branch, the fraction a of the last branch's answer tokens that the branch
predicts greedily when teacher-forced on that answer. Under greedy verification a drafted token is
accepted exactly when the draft agrees with the target at that position, so a step that drafts k
tokens accepts the run of agreements from its start (at most k) plus the target's own next token.
Assuming positions agree independently with probability a (real agreements cluster, so this is an
estimate; `bench --speculative` measures the real rate), the expected tokens per target step are

    E[tokens | a, k] = (1 - a^(k+1)) / (1 - a)        (k + 1 when a = 1)

and, counting layer weights read per token (decode at small batch is bound by memory bandwidth), a
step with a draft at exit e_d and a target at exit e_t reads k * (e_d + 1) layers to draft, the trunk's
e_d layers once more for the last drafted token (the draft computed the trunk for the tokens before it,
whose hidden states at e_d the target reuses), and the target's e_t + 1 - e_d layers above the exit to
verify: k * (e_d + 1) + e_t + 1 in all, against e_t + 1 per token for the target alone:

    speedup(a, k) = E[tokens | a, k] * (e_t + 1) / (k * (e_d + 1) + e_t + 1)

Sharing the trunk saves the verify's compute on the drafted tokens, not its weight reads, so at batch 1
a draft pays only when it agrees often. Heads are not counted. Both are averaged over items, each with
its own a.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalkit.analysis.cascade import cascadable
from evalkit.analysis.family_view import all_dataset_keys, families
from evalkit.records.results import ResultsRecord

DRAFT_KS = (1, 2, 4, 8)


def expected_tokens_per_step(agreement: float | np.ndarray, k: int) -> float | np.ndarray:
    """Expected tokens per target step when drafting k tokens whose positions agree independently with
    probability `agreement` (accepted prefix plus the target's own token): 1 .. k + 1."""
    a = np.clip(np.asarray(agreement, dtype=float), 0.0, 1.0)
    safe = np.where(a < 1.0, a, 0.5)
    out = np.where(a < 1.0, (1.0 - safe ** (k + 1)) / (1.0 - safe), float(k + 1))
    return float(out) if out.ndim == 0 else out


def estimated_speedup(agreement: float | np.ndarray, k: int, draft_exit: int, target_exit: int) -> float | np.ndarray:
    """Layer reads of the target alone per token over those of self-speculation per token (see module doc)."""
    per_step = k * (draft_exit + 1) + target_exit + 1
    return expected_tokens_per_step(agreement, k) * (target_exit + 1) / per_step


@dataclass(frozen=True)
class DraftChoice:
    draft: str
    k: int
    tokens_per_step: float
    speedup: float  # estimated, in layer reads


@dataclass(frozen=True)
class DatasetAgreement:
    dataset: str
    n: int  # items with an agreement for every branch
    agreement: dict[str, float]  # branch -> mean fraction of the last branch's tokens it predicts
    best: DraftChoice | None  # None when no draft is estimated to beat the target alone


@dataclass(frozen=True)
class FamilyAgreement:
    family: str
    target: str
    rows: tuple[DatasetAgreement, ...]


def agreement_tables(record: ResultsRecord, ks: tuple[int, ...] = DRAFT_KS) -> list[FamilyAgreement]:
    """Per family, per dataset with recorded agreements: the mean agreement of each branch, and the draft
    branch and k with the best estimated speedup for the last branch as target."""
    out = []
    for name, branches in families(record).items():
        exits = [b.model.exit_layer for b in branches]
        if not cascadable(exits):
            continue
        rows = []
        for key in all_dataset_keys(record):
            matrix = _agreements(record, [b.model.abbr for b in branches], key)
            if matrix is None:
                continue
            labels = [b.label for b in branches]
            means = {lab: float(matrix[i].mean()) for i, lab in enumerate(labels)}
            best = _best(matrix[:-1], labels[:-1], [int(e) for e in exits if e is not None], ks)
            rows.append(DatasetAgreement(key, matrix.shape[1], means, best))
        if rows:
            out.append(FamilyAgreement(name, branches[-1].label, tuple(rows)))
    return out


def _agreements(record: ResultsRecord, abbrs: list[str], key: str) -> np.ndarray | None:
    """(branches, items) agreements on the items every branch has one for; None if there are none."""
    maps = []
    for abbr in abbrs:
        s = record.score(abbr, key)
        items = s.items if s is not None and s.items else ()
        maps.append({i.id: i.signals.agreement for i in items if i.signals and i.signals.agreement is not None})
    ids = [i for i in maps[0] if all(i in m for m in maps[1:])]
    if not ids:
        return None
    return np.array([[m[i] for i in ids] for m in maps], dtype=float)


def _best(drafts: np.ndarray, labels: list[str], exits: list[int], ks: tuple[int, ...]) -> DraftChoice | None:
    best: DraftChoice | None = None
    for d, label in enumerate(labels):
        for k in ks:
            speed = float(np.mean(estimated_speedup(drafts[d], k, exits[d], exits[-1])))
            if speed > 1.0 and (best is None or speed > best.speedup):
                tokens = float(np.mean(expected_tokens_per_step(drafts[d], k)))
                best = DraftChoice(label, k, tokens, speed)
    return best
