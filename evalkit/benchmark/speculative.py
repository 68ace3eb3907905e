"""`bench --speculative`: self-speculative decoding (a shallow branch drafts, the target verifies) against
the target branch decoding alone, per draft branch, k and batch size.

One comparison per batch size (`evalkit.benchmark.interleave`, through the bench's `Measurer`): its
conditions are the target alone and every (draft, k), each a whole generation (prefill and gen_len
tokens, EOS ignored) timed in interleaved rounds; each (draft, k)'s speed-up is the target's seconds
over its own, the median over rounds of the round's ratio with a bootstrap 95% interval. Acceptance,
tokens per target step and whether every sequence equals the target's own greedy output come from
a generation before the rounds: they do not depend on the clock.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from evalkit.benchmark.interleave import Measured, RatioSpec, ratio_of, values_of
from evalkit.benchmark.measure import Clock, summarize
from evalkit.benchmark.progress import Measurer
from evalkit.benchmark.runners import prompts
from evalkit.engine.generate import Generator
from evalkit.engine.speculative import Speculative, SpeculativeGenerator
from evalkit.errors import EvalkitError
from evalkit.load.family import Branch, Family, parse_branches
from evalkit.records.bench import Comparison, SpecBaseline, SpecCell, SpeculativeBench

TARGET = "target"  # the condition that decodes with the target alone


@dataclass(frozen=True)
class SpecSetup:
    batch_sizes: tuple[int, ...]
    ks: tuple[int, ...]
    prompt_len: int
    gen_len: int
    decode_mode: str
    seed: int
    clock: Clock
    measurer: Measurer
    model: str = "model"  # the name comparisons and progress lines give the model


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


def condition(draft: Branch, k: int) -> str:
    return f"{draft.name} k={k}"


def speculative(
    family: Family, drafts: Sequence[Branch], target: Branch, setup: SpecSetup
) -> tuple[SpeculativeBench, list[Comparison]]:
    """Every (draft, k) against the target alone, one comparison per batch size (random prompts, EOS ignored)."""
    baselines, cells, comparisons = [], [], []
    for b in setup.batch_sizes:
        base, found, c = _batch(family, drafts, target, setup, b)
        baselines.append(base)
        cells += found
        comparisons.append(c)
    bench = SpeculativeBench(
        model=setup.model,
        target=target.name,
        target_exit=target.exit_layer,
        prompt_len=setup.prompt_len,
        gen_len=setup.gen_len,
        baselines=tuple(baselines),
        cells=tuple(cells),
    )
    return bench, comparisons


def _batch(
    family: Family, drafts: Sequence[Branch], target: Branch, setup: SpecSetup, b: int
) -> tuple[SpecBaseline, list[SpecCell], Comparison]:
    ids, mask = prompts(family, b, setup.prompt_len, setup.seed)
    alone = Generator(family, [target], b, setup.prompt_len + setup.gen_len, setup.decode_mode)

    def run_alone() -> torch.Tensor:
        return alone.decode(alone.prefill(ids, mask), mask, setup.gen_len - 1)

    reference = run_alone().cpu()
    runs: dict[str, Callable[[], object]] = {TARGET: run_alone}
    outputs: dict[str, Speculative] = {}
    for draft in drafts:
        for k in setup.ks:
            gen = SpeculativeGenerator(
                family, draft, target, b, setup.prompt_len + setup.gen_len + k, k, setup.decode_mode
            )
            name = condition(draft, k)
            outputs[name] = gen.generate(ids, mask, setup.gen_len)
            runs[name] = functools.partial(gen.generate, ids, mask, setup.gen_len)
    conditions: dict[str, Callable[[], Measured]] = {
        name: functools.partial(_seconds, run, setup.clock) for name, run in runs.items()
    }
    ratios = [RatioSpec(name, (TARGET,), (name,)) for name in outputs]
    label = f"{setup.model} speculative {target.name} batch {b}"
    c = setup.measurer.compare(label, conditions, ratios)
    tokens = b * setup.gen_len
    target_s = summarize(list(values_of(c, TARGET)))
    cells = []
    for draft in drafts:
        for k in setup.ks:
            name = condition(draft, k)
            out, spec_s, ratio = outputs[name], summarize(list(values_of(c, name))), ratio_of(c, name)
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
                    speedup=ratio.value,
                    speedup_ci=ratio.ci,
                    identical_to_target=tuple(
                        bool(torch.equal(o, r)) for o, r in zip(out.tokens.cpu(), reference, strict=True)
                    ),
                    comparison=c.name,
                )
            )
    return SpecBaseline(batch_size=b, target_s=target_s, tok_s=tokens / target_s.median), cells, c


def _seconds(run: Callable[[], object], clock: Clock) -> float:
    start = clock.now()
    run()
    end = clock.now()
    return float(clock.seconds(start, end))
