"""Confidence cascades over a family's branches, evaluated offline from a results record.

A cascade answers an item with the smallest branch, and escalates to the next branch while the
branch's confidence signal is below its threshold; the last branch always answers. Its thresholds are
chosen by k-fold cross-validation over items (seeded): for each fold, the candidates are per-branch
quantiles of the signal on the other folds, and at each cost budget the candidate with the best
training accuracy within the budget is applied to the held-out fold. Every cascade point is therefore
out of sample: each item's outcome and cost come from thresholds chosen without it. CIs are a
bootstrap over items (seeded) of the out-of-sample outcomes and costs.

Cost (`CostModel`) is counted in layer passes per token (one decoder layer on one token), divided by
the tokens the last branch alone processes on the same items, so the last branch costs its depth.
A familial cascade that escalates from exit e_i to e_j reuses the prompt's trunk below e_i (its keys
and values are cached) and pays, on the prompt, the trunk layers e_i..e_j-1 and branch j's own layer,
then decodes branch j's answer through all e_j + 1 of its layers; a head evaluation counts `head`
layer passes. A cascade of separate models of the same sizes pays every visited model's full prompt
and decode. Items scored by choice (no token counts) count one token, so their cost is per token of
the scored text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from evalkit.analysis.family_view import Sized
from evalkit.analysis.stats import item_weights
from evalkit.records.estimator import is_grouped
from evalkit.records.results import ResultsRecord, Signals

# name -> (how to read it, the sign that makes larger mean more confident)
SIGNALS: dict[str, tuple[str, float]] = {
    "margin": ("margin", 1.0),
    "mean_logprob": ("mean_logprob", 1.0),
    "min_logprob": ("min_logprob", 1.0),
    "first_entropy": ("first_entropy", -1.0),
}
DEFAULT_FOLDS = 5
DEFAULT_SEED = 0
BOOTSTRAP = 1000
BUDGETS = 16  # cost budgets, evenly spaced from the first branch's cost to 1.5 times the last branch's
MAX_BUDGET = 1.5
MAX_CANDIDATES = 1024  # threshold combinations tried per fold


def cascadable(exits: Sequence[int | None]) -> bool:
    """Whether branches with these exit layers (smallest branch first) form a cascade: two or more, every exit
    known, each deeper than the one before (a record from a stranger family is left out, not misread)."""
    known = [e for e in exits if e is not None]
    return len(exits) >= 2 and len(known) == len(exits) and all(a < b for a, b in zip(known, known[1:], strict=False))


@dataclass(frozen=True)
class CostModel:
    """Layer passes of one item, per branch visited. `exits` ascending; a branch with exit e has e + 1 layers."""

    exits: tuple[int, ...]
    head: float = 0.0  # a head evaluation, in layer passes (0: heads not counted)

    def steps(self, prompt: np.ndarray, answers: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(familial, separate, denominator): the first two (branches, items) are what visiting each branch adds
        in a familial cascade and in a cascade of separate models; the third (items,) is the tokens the last
        branch alone processes. `answers` None: scored by choice, one token and no decode."""
        e = np.asarray(self.exits, dtype=float)[:, None]
        below = np.concatenate([[0.0], self.exits[:-1]])[:, None]
        if answers is None:
            ones = np.ones((len(self.exits), prompt.shape[0]))
            return (e - below + 1) * ones + self.head, (e + 1) * ones + self.head, np.ones(prompt.shape[0])
        decoded = np.maximum(answers - 1, 0)  # the last token is never fed back
        familial = prompt[None, :] * (e - below + 1) + (e + 1) * decoded + self.head * answers
        separate = (e + 1) * (prompt[None, :] + decoded) + self.head * answers
        return familial, separate, prompt + decoded[-1]


@dataclass(frozen=True)
class Timing:
    """Measured seconds per branch (a bench at batch 1): prefill seconds per prompt token, and seconds per
    output token after the first. Prefill is taken as linear in the prompt's length and in layers, so an
    escalation's prefill costs the new layers' share of the branch's prefill."""

    prefill_s_per_token: tuple[float, ...]
    tpot_s: tuple[float, ...]

    def steps(self, cost: CostModel, prompt: np.ndarray, answers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(familial, separate) seconds, (branches, items), that visiting each branch adds."""
        e = np.asarray(cost.exits, dtype=float)[:, None]
        below = np.concatenate([[0.0], cost.exits[:-1]])[:, None]
        pre = np.asarray(self.prefill_s_per_token)[:, None] * prompt[None, :]
        dec = np.asarray(self.tpot_s)[:, None] * np.maximum(answers - 1, 0)
        return pre * (e - below + 1) / (e + 1) + dec, pre + dec


@dataclass(frozen=True)
class Data:
    """One dataset's items that every branch has: outcomes, the signal, token counts, estimator weights."""

    dataset: str
    labels: tuple[str, ...]
    ids: tuple[str, ...]
    groups: tuple[str | None, ...]
    outcomes: np.ndarray  # (branches, items)
    signal: np.ndarray | None  # (branches, items), larger = more confident; None without the signal
    familial: np.ndarray  # (branches, items) cost added by visiting each branch
    separate: np.ndarray
    denominator: np.ndarray  # (items,)
    weights: np.ndarray  # (items,), summing to 1
    seconds: tuple[np.ndarray, np.ndarray] | None = None  # (familial, separate) per branch visited, with a Timing


def dataset_data(
    record: ResultsRecord,
    branches: Sequence[Sized],
    key: str,
    signal: str,
    cost: CostModel,
    timing: Timing | None = None,
) -> Data | None:
    """The dataset's matrices, or None when a branch has no per-item outcomes there."""
    scores = [record.score(b.model.abbr, key) for b in branches]
    if any(s is None or not s.items for s in scores):
        return None
    maps = [{i.id: i for i in s.items} for s in scores if s is not None and s.items]
    ids = [i for i in maps[0] if all(i in m for m in maps[1:])]
    if not ids:
        return None
    items = [[m[i] for i in ids] for m in maps]
    outcomes = np.array([[i.score for i in row] for row in items], dtype=float)
    sig = _signal_matrix([[i.signals for i in row] for row in items], signal)
    prompt, answers = _tokens([[i.signals for i in row] for row in items])
    familial, separate, denominator = cost.steps(prompt, answers)
    groups = [maps[0][i].group for i in ids]
    w = item_weights(groups) if is_grouped(key) else None
    weights = np.full(len(ids), 1.0 / len(ids)) if w is None else w / w.sum()
    labels = tuple(b.label for b in branches)
    seconds = None if timing is None or answers is None else timing.steps(cost, prompt, answers)
    return Data(
        key, labels, tuple(ids), tuple(groups), outcomes, sig, familial, separate, denominator, weights, seconds
    )


def available_signals(record: ResultsRecord, branches: Sequence[Sized], key: str) -> list[str]:
    """The signals that most items (over half) of every branch have on this dataset, in `SIGNALS` order."""
    found: list[str] = []
    scores = [record.score(b.model.abbr, key) for b in branches]
    if not all(s is not None and s.items for s in scores):
        return found
    for name, (attr, _) in SIGNALS.items():
        if all(
            2 * sum(i.signals is not None and getattr(i.signals, attr) is not None for i in s.items or ())
            > len(s.items or ())
            for s in scores
            if s is not None
        ):
            found.append(name)
    return found


def _signal_matrix(rows: list[list[Signals | None]], name: str) -> np.ndarray | None:
    """(branches, items), larger = more confident. An item without the signal (a task killed before it
    wrote its signals, a non-finite log-probability) counts as less confident than any that has it, so a
    cascade always escalates it and pays for that; None when no item has it."""
    attr, sign = SIGNALS[name]
    values = [[getattr(s, attr) if s is not None else None for s in row] for row in rows]
    known = [sign * v for row in values for v in row if v is not None]
    if not known:
        return None
    floor = min(known) - 1.0
    return np.array([[floor if v is None else sign * v for v in row] for row in values], dtype=float)


def _tokens(rows: list[list[Signals | None]]) -> tuple[np.ndarray, np.ndarray | None]:
    """Prompt tokens (items,) and answer tokens (branches, items), or ones and None where any is unknown."""
    n = len(rows[0])
    known = all(s is not None and s.prompt_tokens is not None and s.answer_tokens is not None for r in rows for s in r)
    if not known:
        return np.ones(n), None
    prompt = np.array([s.prompt_tokens for s in rows[-1] if s is not None], dtype=float)
    answers = np.array([[s.answer_tokens for s in r if s is not None] for r in rows], dtype=float)
    return prompt, answers


# --- the policy ---------------------------------------------------------------------------------


def stops(signal: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The branch that answers each item: the first whose signal reaches its threshold, else the last.

    signal (branches, items); thresholds (candidates, branches - 1) -> (candidates, items)."""
    accept = signal[None, :-1, :] >= thresholds[:, :, None]  # (C, B-1, N)
    last = np.ones((accept.shape[0], 1, accept.shape[2]), dtype=bool)
    return np.argmax(np.concatenate([accept, last], axis=1), axis=1)


def candidates(signal: np.ndarray, max_candidates: int = MAX_CANDIDATES) -> np.ndarray:
    """Threshold combinations: per-branch quantiles of the signal at evenly spaced levels, from never
    escalating (-inf) to always escalating (+inf); (candidates, branches - 1)."""
    b = signal.shape[0] - 1
    levels = max(2, int(np.floor(max_candidates ** (1.0 / b) + 1e-9)))
    qs = np.linspace(0.0, 1.0, levels)
    per_branch = []
    for k in range(b):
        t = np.quantile(signal[k], qs[1:-1]) if levels > 2 else np.array([])
        per_branch.append(np.concatenate([[-np.inf], t, [np.inf]]))
    grid = np.meshgrid(*per_branch, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


@dataclass(frozen=True)
class Outcomes:
    """Out-of-sample per-item results of the cascade: (budgets + 1, items) each. Row j < len(budgets) is the
    cascade within budget j; the last row (`MATCHED`) is the cheapest cascade whose training accuracy reaches
    the last branch's, chosen per fold like the rest."""

    budgets: np.ndarray  # fractions of the last branch's cost
    outcome: np.ndarray
    familial: np.ndarray
    separate: np.ndarray
    stop: np.ndarray


MATCHED = -1  # the row of `Outcomes` that matches the last branch's accuracy


def default_budgets(data: Data) -> np.ndarray:
    """Budgets from the first branch's cost to 1.5 times the last branch's, as fractions of the last branch's.
    Past 1: escalating re-decodes the answer, so a cascade may need more than the last branch to match it."""
    first = data.separate[0].sum() / data.separate[-1].sum()
    return np.linspace(min(first, 1.0), MAX_BUDGET, BUDGETS)


def cross_validate(
    data: Data, *, folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED, budgets: np.ndarray | None = None
) -> Outcomes:
    """Each item's outcome and cost under thresholds chosen on the other folds, at every budget (a fraction
    of what the last branch alone costs on the training items)."""
    if data.signal is None:
        raise ValueError(f"{data.dataset}: no signal to cascade on")
    n = data.outcomes.shape[1]
    k = max(2, min(folds, n))
    order = np.random.default_rng(seed).permutation(n)
    fam_cum, sep_cum = np.cumsum(data.familial, axis=0), np.cumsum(data.separate, axis=0)
    budgets = default_budgets(data) if budgets is None else np.asarray(budgets, dtype=float)
    out = {name: np.zeros((len(budgets) + 1, n)) for name in ("outcome", "familial", "separate", "stop")}
    cols = np.arange(n)
    for test in np.array_split(order, k):
        train = np.setdiff1d(cols, test)
        cand = candidates(data.signal[:, train])
        s = stops(data.signal[:, train], cand)  # (C, train)
        w = data.weights[train] / data.weights[train].sum()
        acc = (data.outcomes[s, train[None, :]] * w).sum(axis=1)
        spend = fam_cum[s, train[None, :]].sum(axis=1) / data.separate[-1, train].sum()
        chosen = [_best(acc, spend, b) for b in budgets] + [_matched(acc, spend, data.outcomes[-1, train], w)]
        applied = stops(data.signal[:, test], cand[chosen])  # (budgets + 1, test)
        out["stop"][:, test] = applied
        out["outcome"][:, test] = data.outcomes[applied, test[None, :]]
        out["familial"][:, test] = fam_cum[applied, test[None, :]]
        out["separate"][:, test] = sep_cum[applied, test[None, :]]
    return Outcomes(budgets, out["outcome"], out["familial"], out["separate"], out["stop"].astype(int))


def _matched(acc: np.ndarray, spend: np.ndarray, last: np.ndarray, w: np.ndarray) -> int:
    """The cheapest candidate whose training accuracy reaches the last branch's on the training items; the
    most accurate if none does."""
    reach = acc >= float((last * w).sum()) - 1e-12
    if not reach.any():
        return int(np.argmax(acc))
    return int(np.argmin(np.where(reach, spend, np.inf)))


def _best(acc: np.ndarray, spend: np.ndarray, budget: float) -> int:
    """The most accurate candidate within the budget (the cheapest on a tie); the cheapest if none fits."""
    fits = spend <= budget + 1e-12
    if not fits.any():
        return int(np.argmin(spend))
    masked = np.where(fits, acc, -np.inf)
    top = masked.max()
    return int(np.argmin(np.where(masked >= top - 1e-12, spend, np.inf)))


# --- points with CIs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """Accuracy (points) against cost (layer passes per token), each with a 95% bootstrap CI."""

    label: str
    accuracy: float
    accuracy_ci: tuple[float, float]
    cost: float
    cost_ci: tuple[float, float]
    separate_cost: float | None = None  # the same policy run as separate models
    budget: float | None = None  # the cost budget the thresholds were chosen under, fraction of the last branch's
    share: dict[str, float] = field(default_factory=dict)  # fraction of items each branch answers
    seconds: float | None = None  # measured seconds per item (a familial cascade), with a bench
    draws: np.ndarray | None = field(default=None, repr=False, compare=False)  # (resamples, 2): accuracy, cost


def point(
    label: str,
    outcome: np.ndarray,
    cost: np.ndarray,
    data: Data,
    resamples: np.ndarray,
    *,
    separate: np.ndarray | None = None,
    budget: float | None = None,
    stop: np.ndarray | None = None,
    seconds: np.ndarray | None = None,
) -> Point:
    """A policy's point from its per-item outcomes and costs; `resamples` (R, items): how many times each
    bootstrap resample draws each item (`bootstrap_counts`), so a resample's sums are one matrix product."""
    w, d = data.weights, data.denominator
    acc = 100.0 * float((outcome * w).sum() / w.sum())  # the bootstrap's estimator, so its CI brackets it
    per_token = float(cost.sum() / d.sum())
    sums = resamples @ np.stack([outcome * w, w, cost, d], axis=1)  # (R, 4)
    boot_acc = 100.0 * sums[:, 0] / sums[:, 1]
    boot_cost = sums[:, 2] / sums[:, 3]
    share = {} if stop is None else {lab: float(np.mean(stop == k)) for k, lab in enumerate(data.labels)}
    return Point(
        label,
        acc,
        ci95(boot_acc),
        per_token,
        ci95(boot_cost),
        None if separate is None else float(separate.sum() / d.sum()),
        budget,
        share,
        None if seconds is None else float(seconds.mean()),
        np.stack([boot_acc, boot_cost], axis=1),
    )


def ci95(draws: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def bootstrap_counts(n: int, seed: int = DEFAULT_SEED, resamples: int = BOOTSTRAP) -> np.ndarray:
    """(resamples, n): how often each resample of n items drawn with replacement (seeded) holds each item."""
    draws = np.random.default_rng(seed + 1).integers(0, n, size=(resamples, n))
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.repeat(np.arange(resamples), n), draws.ravel()), 1.0)
    return counts
