"""`bench --shared-trunk`: all branches of a family at once vs the last branch alone vs each alone.

Each part is a function `(family, branches, setup) -> (results, notes)` measured in the same run:

- decode: greedy decoding with every branch stepped together (`_generate.Generator`), its step time
  over the last branch's alone, and the sum of each branch decoded alone over the last's;
- scoring: every branch scored from one trunk pass (`trunk.bench_shared_scoring`), the same ratios.

A new comparison is one more function of that form, listed in `PARTS` and given a field in
`SharedTrunk`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ._bench_measure import Clock
from ._bench_record import SharedTrunk, TrunkDecode, TrunkScoring
from ._bench_runners import FastRunner, measure, prompts
from .family import Branch, Family

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
            t = measure(runner, clock=setup.clock, warmup=setup.warmup, iterations=setup.iterations,
                        batch_size=b, gen_len=setup.gen_len)  # fmt: skip
            return t.tpot_s

        shared, alone = step_time(branches), step_time([last])
        separate = sum(step_time([br]).median for br in branches[:-1]) + alone.median
        out.append(TrunkDecode(
            batch_size=b, branches=tuple(br.name for br in branches), shared_step_s=shared, last_step_s=alone,
            separate_step_s=separate, decode_shared_over_last=shared.median / alone.median,
            decode_separate_over_last=separate / alone.median,
        ))  # fmt: skip
    return out, []


def scoring_half(family: Family, branches: Sequence[Branch], setup: TrunkSetup) -> tuple[list[TrunkScoring], list[str]]:
    from .trunk import bench_shared_scoring

    seq_len = setup.prompt_len + setup.gen_len
    out = [
        TrunkScoring(**bench_shared_scoring(
            family, branches, batch=b, seq_len=seq_len, iterations=setup.iterations, warmup=setup.warmup,
            seed=setup.seed, clock=setup.clock,
        ))  # fmt: skip
        for b in setup.batch_sizes
    ]
    return out, []


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
