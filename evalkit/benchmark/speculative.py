"""`bench --speculative`: self-speculative decoding (a shallow branch drafts, the target verifies) against
the target branch decoding alone, per draft branch, k and batch size.

Conditions are functions timed in interleaved rounds (`interleaved`): every round runs the target
alone and each (draft, k) once, alternating the order, so drift on a busy machine hits all of them
alike, and each round gives one paired sample. A speed-up is the target's median time over the condition's, with a
seeded paired-bootstrap 95% interval over rounds (`ratio_interval`). Acceptance, tokens per target
step and whether every sequence equals the target's own greedy output come from the warm-up
generations: they do not depend on the clock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from evalkit.benchmark.measure import Clock, summarize
from evalkit.benchmark.runners import prompts
from evalkit.engine.generate import Generator
from evalkit.engine.speculative import Speculative, SpeculativeGenerator
from evalkit.errors import EvalkitError
from evalkit.load.family import Branch, Family, parse_branches
from evalkit.records.bench import SpecBaseline, SpecCell, SpeculativeBench

SPEC_BATCH_SIZES = (1,)
RESAMPLES = 2000
INTERVAL = f"paired bootstrap over rounds, {RESAMPLES} resamples, percentile 95%, seed = --seed"


@dataclass(frozen=True)
class SpecSetup:
    batch_sizes: tuple[int, ...]
    ks: tuple[int, ...]
    prompt_len: int
    gen_len: int
    warmup: int
    iterations: int  # timed rounds
    decode_mode: str
    seed: int
    clock: Clock


def choose(family: Family, branches: str, drafts: str) -> tuple[tuple[Branch, ...], Branch]:
    """The draft branches and the target: the deepest of `branches`, drafted by each of `drafts` that
    exits before it ("all": every one that does)."""
    target = parse_branches(branches, family.branches)[-1]
    if drafts == "all":
        chosen = tuple(b for b in family.branches if b.exit_layer < target.exit_layer)
    else:
        chosen = parse_branches(drafts, family.branches)
        deep = [b.name for b in chosen if b.exit_layer >= target.exit_layer]
        if deep:
            raise EvalkitError(
                f"--draft {', '.join(deep)} does not exit before the target {target.name}; a draft must be a "
                f"shallower branch ({', '.join(b.name for b in family.branches if b.exit_layer < target.exit_layer)})"
            )
    if not chosen:
        raise EvalkitError(f"the target {target.name} is the shallowest branch; pass a deeper one with --branches")
    return chosen, target


def interleaved(
    conditions: Mapping[str, Callable[[], object]], *, clock: Clock, warmup: int, rounds: int
) -> dict[str, list[float]]:
    """Seconds per call of each condition: `warmup` untimed rounds, then `rounds` timed ones, each round
    calling every condition once, in the given order in even rounds and in reverse in odd ones (so no
    condition always runs first, right after another's caches)."""
    samples: dict[str, list[float]] = {name: [] for name in conditions}
    for i in range(warmup + rounds):
        order = list(conditions.items())
        for name, run in order if i % 2 == 0 else order[::-1]:
            start = clock.now()
            run()
            end = clock.now()
            if i >= warmup:
                samples[name].append(clock.seconds(start, end))
    return samples


def ratio_interval(base: Sequence[float], other: Sequence[float], seed: int) -> tuple[float | None, float | None]:
    """95% interval of median(base) / median(other) by a paired bootstrap over rounds; None below 3 rounds."""
    if len(base) < 3:
        return None, None
    import inspect

    from scipy.stats import bootstrap

    seeding = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"  # scipy < 1.15

    def ratio(b: np.ndarray, o: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(b, axis=axis) / np.median(o, axis=axis)

    result = bootstrap(
        (np.asarray(base), np.asarray(other)),
        ratio,
        paired=True,
        vectorized=True,
        n_resamples=RESAMPLES,
        confidence_level=0.95,
        method="percentile",
        **{seeding: np.random.default_rng(seed)},
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def speculative(
    model: str, family: Family, drafts: Sequence[Branch], target: Branch, setup: SpecSetup
) -> SpeculativeBench:
    """Every (draft, k) against the target alone, for each batch size (random prompts, EOS ignored)."""
    baselines, cells = [], []
    for b in setup.batch_sizes:
        base, found = _batch(family, drafts, target, setup, b)
        baselines.append(base)
        cells += found
    return SpeculativeBench(
        model=model,
        target=target.name,
        target_exit=target.exit_layer,
        prompt_len=setup.prompt_len,
        gen_len=setup.gen_len,
        rounds=setup.iterations,
        interval=INTERVAL,
        baselines=tuple(baselines),
        cells=tuple(cells),
    )


def _batch(
    family: Family, drafts: Sequence[Branch], target: Branch, setup: SpecSetup, b: int
) -> tuple[SpecBaseline, list[SpecCell]]:
    ids, mask = prompts(family, b, setup.prompt_len, setup.seed)
    alone = Generator(family, [target], b, setup.prompt_len + setup.gen_len, setup.decode_mode)

    def run_alone() -> torch.Tensor:
        return alone.decode(alone.prefill(ids, mask), mask, setup.gen_len - 1)

    reference = run_alone().cpu()
    conditions: dict[str, Callable[[], object]] = {"target": run_alone}
    outputs: dict[tuple[str, int], Speculative] = {}
    for draft in drafts:
        for k in setup.ks:
            gen = SpeculativeGenerator(
                family, draft, target, b, setup.prompt_len + setup.gen_len + k, k, setup.decode_mode
            )
            outputs[(draft.name, k)] = gen.generate(ids, mask, setup.gen_len)
            conditions[f"{draft.name}/{k}"] = functools.partial(gen.generate, ids, mask, setup.gen_len)
    samples = interleaved(conditions, clock=setup.clock, warmup=setup.warmup, rounds=setup.iterations)
    target_s = summarize(samples["target"])
    tokens = b * setup.gen_len
    cells = []
    for draft in drafts:
        for k in setup.ks:
            out, timed = outputs[(draft.name, k)], samples[f"{draft.name}/{k}"]
            low, high = ratio_interval(samples["target"], timed, setup.seed)
            spec_s = summarize(timed)
            cells.append(
                SpecCell(
                    draft=draft.name,
                    draft_exit=draft.exit_layer,
                    k=k,
                    batch_size=b,
                    acceptance_rate=out.acceptance_rate(),
                    tokens_per_step=out.tokens_per_step(),
                    spec_s=spec_s,
                    tok_s=tokens / spec_s.median,
                    speedup=target_s.median / spec_s.median,
                    speedup_low=low,
                    speedup_high=high,
                    identical_to_target=tuple(
                        bool(torch.equal(o, r)) for o, r in zip(out.tokens.cpu(), reference, strict=True)
                    ),
                )
            )
    return SpecBaseline(batch_size=b, target_s=target_s, tok_s=tokens / target_s.median), cells
