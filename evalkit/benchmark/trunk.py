"""`bench --shared-trunk`: all branches of a family at once vs the last branch alone vs each alone.

Each part is a function `(family, branches, setup) -> (results, notes)` measured in the same run:

- decode: greedy decoding with every branch stepped together (`evalkit.engine.generate.Generator`), its step time
  over the last branch's alone, and the sum of each branch decoded alone over the last's;
- scoring: every branch scored from one trunk pass (`shared_scoring`), the same ratios.

A new comparison is one more function of that form, listed in `PARTS` and given a field in
`SharedTrunk`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from evalkit.benchmark.measure import Clock, summarize
from evalkit.benchmark.runners import FastRunner, measure, prompts
from evalkit.engine.shared_trunk import Trunk, score_branch
from evalkit.load.family import Branch, Family
from evalkit.records.bench import SharedTrunk, TrunkDecode, TrunkScoring

TRUNK_BATCH_SIZES = (1, 8)


@dataclass(frozen=True)
class TrunkSetup:
    batch_sizes: tuple[int, ...]
    prompt_len: int
    gen_len: int
    warmup: int
    iterations: int
    decode_mode: str
    seed: int
    clock: Clock


def decode_half(family: Family, branches: Sequence[Branch], setup: TrunkSetup) -> tuple[list[TrunkDecode], list[str]]:
    last = branches[-1]
    out = []
    for b in setup.batch_sizes:
        ids, mask = prompts(family, b, setup.prompt_len, setup.seed)

        def step_time(chosen: Sequence[Branch], ids: torch.Tensor = ids, mask: torch.Tensor = mask, b: int = b) -> Any:
            runner = FastRunner(family, chosen, ids, mask, setup.gen_len, setup.decode_mode)
            t = measure(
                runner,
                clock=setup.clock,
                warmup=setup.warmup,
                iterations=setup.iterations,
                batch_size=b,
                gen_len=setup.gen_len,
            )
            return t.tpot_s

        shared, alone = step_time(branches), step_time([last])
        separate = sum(step_time([br]).median for br in branches[:-1]) + alone.median
        out.append(
            TrunkDecode(
                batch_size=b,
                branches=tuple(br.name for br in branches),
                shared_step_s=shared,
                last_step_s=alone,
                separate_step_s=separate,
                decode_shared_over_last=shared.median / alone.median,
                decode_separate_over_last=separate / alone.median,
            )
        )
    return out, []


def scoring_half(family: Family, branches: Sequence[Branch], setup: TrunkSetup) -> tuple[list[TrunkScoring], list[str]]:
    seq_len = setup.prompt_len + setup.gen_len
    out = [
        TrunkScoring(
            **shared_scoring(
                family,
                branches,
                batch=b,
                seq_len=seq_len,
                iterations=setup.iterations,
                warmup=setup.warmup,
                seed=setup.seed,
                clock=setup.clock,
            )
        )
        for b in setup.batch_sizes
    ]
    return out, []


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
) -> dict[str, Any]:
    """Scoring every branch from one trunk pass vs the last branch alone vs each branch alone.

    Protocol: the same random full-length rows (no padding) for all three, every position scored
    (a perplexity request) or, with `scored_tokens`, only the last that many (a loglikelihood request);
    the models are built before timing; `warmup` untimed rounds, then `iterations` timed rounds, each
    round timing the shared pass and every branch alone back to back (so drift in a busy machine hits
    all alike); CUDA events read after a synchronize on a GPU, perf_counter on a CPU; medians compared.
    The keys are the fields of `evalkit.records.bench.TrunkScoring`.
    """
    clock = clock or Clock(family.device.type)
    trunk = Trunk(family, branches)
    vocab = int(family.files.config["vocab_size"])
    ids = torch.randint(0, vocab, (batch, seq_len), generator=torch.Generator().manual_seed(seed))
    ids = ids.to(family.device)
    mask = torch.ones_like(ids)
    wanted = torch.ones(batch, seq_len - 1, dtype=torch.bool)
    if scored_tokens is not None:
        wanted[:, : max(0, seq_len - 1 - scored_tokens)] = False
    runs: dict[str, Callable[[], object]] = {"shared": partial(trunk.score, ids, mask, positions=wanted)}
    for name, model in trunk.models.items():
        runs[name] = partial(score_branch, model, ids, mask, positions=wanted)
    samples: dict[str, list[float]] = {k: [] for k in runs}
    for i in range(warmup + iterations):
        for key, run in runs.items():
            start = clock.now()
            run()
            end = clock.now()
            if i >= warmup:
                samples[key].append(clock.seconds(start, end))
    stats = {k: summarize(v) for k, v in samples.items()}
    last = stats[trunk.names[-1]]
    separate = sum(stats[n].median for n in trunk.names)
    return {
        "batch_size": batch,
        "seq_len": seq_len,
        "branches": trunk.names,
        "shared_s": stats["shared"],
        "last_s": last,
        "separate_s": separate,
        "scoring_shared_over_last": stats["shared"].median / last.median,
        "scoring_separate_over_last": separate / last.median,
    }


Part = Callable[[Family, Sequence[Branch], TrunkSetup], tuple[list[Any], list[str]]]
PARTS: tuple[tuple[str, Part], ...] = (("decode", decode_half), ("scoring", scoring_half))


def shared_trunk(model: str, family: Family, branches: Sequence[Branch], setup: TrunkSetup) -> SharedTrunk:
    results: dict[str, tuple[Any, ...]] = {}
    notes: list[str] = []
    for name, part in PARTS:
        rows, part_notes = part(family, branches, setup)
        results[name] = tuple(rows)
        notes += part_notes
    return SharedTrunk(model=model, notes=tuple(notes), **results)
