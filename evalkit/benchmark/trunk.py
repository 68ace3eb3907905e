"""`bench --shared-trunk`: all branches of a family at once vs the last branch alone vs each alone.

Each part is a function `(family, branches, setup) -> PartResult` (rows, notes, comparisons) measured in
the same run, every condition interleaved with the others round by round (`evalkit.benchmark.interleave`):

- decode: greedy decoding with every branch stepped together (`evalkit.engine.generate.Generator`), its
  decode time over the last branch's alone, and the sum of each branch decoded alone over the last's;
- scoring: every branch scored from one trunk pass (`shared_scoring`), the same ratios.

A new comparison is one more function of that form, listed in `PARTS` and given a field in
`SharedTrunk`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from evalkit.benchmark.interleave import SECONDS, RatioSpec, Stopping, ratio_of, values_of
from evalkit.benchmark.measure import Clock, summarize
from evalkit.benchmark.progress import Measurer
from evalkit.benchmark.runners import FastRunner, prompts
from evalkit.engine.shared_trunk import Trunk, score_branch
from evalkit.load.family import Branch, Family
from evalkit.records.bench import Comparison, SharedTrunk, TrunkDecode, TrunkScoring

SHARED = "shared"  # the condition that runs every branch at once


@dataclass(frozen=True)
class TrunkSetup:
    batch_sizes: tuple[int, ...]
    prompt_len: int
    gen_len: int
    decode_mode: str
    seed: int
    clock: Clock
    measurer: Measurer
    model: str = "model"  # the name comparisons and progress lines give the model


@dataclass(frozen=True)
class PartResult:
    rows: list[Any]
    notes: list[str]
    comparisons: list[Comparison]


def trunk_ratios(names: Sequence[str], measure: str = SECONDS) -> list[RatioSpec]:
    """All branches together over the last alone, and each alone, summed, over the last alone."""
    last = names[-1]
    return [
        RatioSpec("shared/last", (SHARED,), (last,), measure),
        RatioSpec("separate/last", tuple(names), (last,), measure),
    ]


def decode_half(family: Family, branches: Sequence[Branch], setup: TrunkSetup) -> PartResult:
    names = [br.name for br in branches]
    steps = setup.gen_len - 1
    rows, comparisons = [], []
    for b in setup.batch_sizes:
        ids, mask = prompts(family, b, setup.prompt_len, setup.seed)
        runners = {SHARED: FastRunner(family, branches, ids, mask, setup.gen_len, setup.decode_mode)}
        runners |= {br.name: FastRunner(family, [br], ids, mask, setup.gen_len, setup.decode_mode) for br in branches}
        conditions = {k: partial(_decode_seconds, r, setup.clock) for k, r in runners.items()}
        c = setup.measurer.compare(f"{setup.model} decode batch {b}", conditions, trunk_ratios(names, "decode_s"))
        comparisons.append(c)
        step = {k: summarize([v / steps for v in values_of(c, k, "decode_s")]) for k in runners}
        shared, separate = ratio_of(c, "shared/last"), ratio_of(c, "separate/last")
        rows.append(
            TrunkDecode(
                batch_size=b,
                branches=tuple(names),
                shared_step_s=step[SHARED],
                last_step_s=step[names[-1]],
                separate_step_s=sum(step[n].median for n in names),
                decode_shared_over_last=shared.value,
                decode_separate_over_last=separate.value,
                decode_shared_over_last_ci=shared.ci,
                decode_separate_over_last_ci=separate.ci,
                comparison=c.name,
            )
        )
    return PartResult(rows, [], comparisons)


def _decode_seconds(runner: FastRunner, clock: Clock) -> dict[str, float]:
    first, total = runner.once(clock)
    return {"decode_s": total - first}


def scoring_half(family: Family, branches: Sequence[Branch], setup: TrunkSetup) -> PartResult:
    rows, comparisons = [], []
    for b in setup.batch_sizes:
        fields, c = shared_scoring(
            family,
            branches,
            batch=b,
            seq_len=setup.prompt_len + setup.gen_len,
            seed=setup.seed,
            clock=setup.clock,
            measurer=setup.measurer,
            label=setup.model,
        )
        rows.append(TrunkScoring(**fields))
        comparisons.append(c)
    return PartResult(rows, [], comparisons)


def shared_scoring(
    family: Family,
    branches: Sequence[str | int | Branch] | None = None,
    *,
    batch: int = 1,
    seq_len: int = 512,
    iterations: int = 5,
    warmup: int = 1,
    seed: int = 0,
    clock: Any = None,
    scored_tokens: int | None = None,
    measurer: Measurer | None = None,
    label: str | None = None,
) -> tuple[dict[str, Any], Comparison]:
    """Scoring every branch from one trunk pass vs the last branch alone vs each branch alone.

    Protocol: the same random full-length rows (no padding) for all, every position scored (a
    perplexity request) or, with `scored_tokens`, only the last that many (a loglikelihood request);
    the models are built before timing; the shared pass and every branch alone are the conditions of
    interleaved rounds (`evalkit.benchmark.interleave`): `measurer`'s rule, or else `warmup` untimed
    and exactly `iterations` timed rounds; CUDA events read after a synchronize on a GPU,
    perf_counter on a CPU. Returns the fields of `evalkit.records.bench.TrunkScoring` and the comparison.
    """
    clock = clock or Clock(family.device.type)
    measurer = measurer or Measurer(
        Stopping(min_rounds=iterations, budget_s=math.inf, max_rounds=iterations), warmup, seed
    )
    trunk = Trunk(family, branches)
    vocab = int(family.files.config["vocab_size"])
    ids = torch.randint(0, vocab, (batch, seq_len), generator=torch.Generator().manual_seed(seed))
    ids = ids.to(family.device)
    mask = torch.ones_like(ids)
    wanted = torch.ones(batch, seq_len - 1, dtype=torch.bool)
    if scored_tokens is not None:
        wanted[:, : max(0, seq_len - 1 - scored_tokens)] = False
    runs: dict[str, Callable[[], object]] = {SHARED: partial(trunk.score, ids, mask, positions=wanted)}
    for name, model in trunk.models.items():
        runs[name] = partial(score_branch, model, ids, mask, positions=wanted)
    conditions = {k: partial(_seconds, run, clock) for k, run in runs.items()}
    names = list(trunk.names)
    c = measurer.compare(f"{label or family_label(family)} scoring batch {batch}", conditions, trunk_ratios(names))
    stats = {k: summarize(values_of(c, k)) for k in runs}
    shared, separate = ratio_of(c, "shared/last"), ratio_of(c, "separate/last")
    fields = {
        "batch_size": batch,
        "seq_len": seq_len,
        "branches": trunk.names,
        "shared_s": stats[SHARED],
        "last_s": stats[names[-1]],
        "separate_s": sum(stats[n].median for n in names),
        "scoring_shared_over_last": shared.value,
        "scoring_separate_over_last": separate.value,
        "scoring_shared_over_last_ci": shared.ci,
        "scoring_separate_over_last_ci": separate.ci,
        "comparison": c.name,
    }
    return fields, c


def _seconds(run: Callable[[], object], clock: Any) -> float:
    start = clock.now()
    run()
    end = clock.now()
    return float(clock.seconds(start, end))


def family_label(family: Family) -> str:
    return Path(str(family.path)).name.strip("<>") or "model"


Part = Callable[[Family, Sequence[Branch], TrunkSetup], PartResult]
PARTS: tuple[tuple[str, Part], ...] = (("decode", decode_half), ("scoring", scoring_half))


def shared_trunk(
    model: str, family: Family, branches: Sequence[Branch], setup: TrunkSetup
) -> tuple[SharedTrunk, list[Comparison]]:
    results: dict[str, tuple[Any, ...]] = {}
    notes: list[str] = []
    comparisons: list[Comparison] = []
    for name, part in PARTS:
        done = part(family, branches, setup)
        results[name] = tuple(done.rows)
        notes += done.notes
        comparisons += done.comparisons
    return SharedTrunk(model=model, notes=tuple(notes), **results), comparisons
