"""Plausibility checks on a bench's figures: what cannot be true, or should not be trusted as it stands.

Each check returns `Flag`s, which the record keeps and the tables print as warnings:

- shared-below-one: all branches together took less time than the last branch alone (impossible:
  the shared pass does the last branch's work and more);
- shared-above-separate: all together took longer than each branch alone, summed (sharing cost more
  than it saved: overhead, or a disturbed measurement);
- fast-slower-than-hf: the fast decoder's interval lies wholly below 1x stock `generate`;
- high-cv: a condition's values vary across rounds by more than `max_cv` of their mean;
- machine-loaded: the 1-minute load average before or after the measurement exceeded the logical CPUs;
- speculative-differs: a speculative sequence is not the target's own greedy output (in fp32 a bug;
  in bf16 or fp16 a near-tie the verify pass rounded the other way);
- speculative-above-bound: a speculative speed-up's interval lies wholly above its tokens per target
  step, which bounds it (a round runs every layer of the target at least once).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evalkit.records.bench import Comparison, Flag, Machine, Ratio, SharedTrunk, SpeculativeBench

MAX_CV = 0.15


def trunk_flags(trunk: SharedTrunk) -> list[Flag]:
    parts = [
        (f"decode batch {d.batch_size}", d.decode_shared_over_last, d.decode_separate_over_last) for d in trunk.decode
    ]
    parts += [
        (f"scoring batch {s.batch_size}", s.scoring_shared_over_last, s.scoring_separate_over_last)
        for s in trunk.scoring
    ]
    flags = []
    for where, shared, separate in parts:
        if shared < 1:
            flags.append(
                Flag(
                    "shared-below-one",
                    where,
                    f"{where}: all branches together / last alone is {shared:.2f}x, below 1x, which is impossible "
                    "(the shared pass does the last branch's work and more); the timing was disturbed",
                )
            )
        if shared > separate:
            flags.append(
                Flag(
                    "shared-above-separate",
                    where,
                    f"{where}: all together ({shared:.2f}x) took longer than each branch alone, summed "
                    f"({separate:.2f}x); sharing saved nothing here",
                )
            )
    return flags


def speed_flags(ratios: Sequence[Ratio]) -> list[Flag]:
    flags = []
    for r in ratios:
        ci = r.decode_speedup_ci
        if ci is not None and ci[1] < 1:
            where = f"{r.model} {r.branch} batch {r.batch_size}"
            flags.append(
                Flag(
                    "fast-slower-than-hf",
                    where,
                    f"{where}: the fast decoder is slower than stock generate beyond the interval "
                    f"({r.decode_speedup:.2f}x [{ci[0]:.2f}, {ci[1]:.2f}])",
                )
            )
    return flags


def cv_flags(comparisons: Sequence[Comparison], max_cv: float = MAX_CV) -> list[Flag]:
    """A flag per comparison whose ratios rest on a condition that varies more than `max_cv`."""
    flags = []
    for c in comparisons:
        measures = {r.measure for r in c.ratios}
        cvs: dict[str, float] = {}
        for s in c.series:
            values = np.asarray(s.values, dtype=np.float64)
            if s.measure in measures and values.size >= 2 and values.mean() > 0:
                cvs[s.condition] = max(cvs.get(s.condition, 0.0), float(values.std(ddof=1) / values.mean()))
        worst = [f"{k} {v:.0%}" for k, v in cvs.items() if v > max_cv]
        if worst:
            flags.append(
                Flag(
                    "high-cv",
                    c.name,
                    f"{c.name}: round-to-round variation (CV) above {max_cv:.0%}: {', '.join(worst)} over "
                    f"{c.rounds} rounds; another load shared the machine, or the clock is too coarse",
                )
            )
    return flags


def spec_flags(spec: SpeculativeBench, dtype: str) -> list[Flag]:
    flags = []
    for c in spec.cells:
        where = f"{spec.model} {c.draft} k={c.k} batch {c.batch_size}"
        differ = len(c.identical_to_target) - sum(c.identical_to_target)
        if differ:
            why = "a bug in fp32" if dtype == "fp32" else f"in {dtype} a near-tie rounded the other way, or a bug"
            flags.append(
                Flag(
                    "speculative-differs",
                    where,
                    f"{where}: {differ} of {len(c.identical_to_target)} sequences differ from {spec.target}'s own "
                    f"greedy output ({why})",
                )
            )
        if c.speedup_ci[0] > c.tokens_per_step:
            flags.append(
                Flag(
                    "speculative-above-bound",
                    where,
                    f"{where}: {c.speedup:.2f}x [{c.speedup_ci[0]:.2f}, {c.speedup_ci[1]:.2f}] over {spec.target} "
                    f"alone exceeds its {c.tokens_per_step:.2f} tokens per target step, which bounds it; "
                    "the timing was disturbed",
                )
            )
    return flags


def load_flags(machine: Machine) -> list[Flag]:
    loads = [m[0] for m in (machine.load_before, machine.load_after) if m]
    if not loads or max(loads) <= machine.logical_cpus:
        return []
    shown = " / ".join(f"{x:.2f}" for x in loads)
    return [
        Flag(
            "machine-loaded",
            "machine",
            f"load average {shown} (before / after, 1-minute) is above the {machine.logical_cpus} logical CPUs: "
            "other work competed for the cores during the measurement",
        )
    ]


def all_flags(
    *,
    machine: Machine,
    comparisons: Sequence[Comparison],
    ratios: Sequence[Ratio] = (),
    trunk: SharedTrunk | None = None,
    max_cv: float = MAX_CV,
    speculative: SpeculativeBench | None = None,
    dtype: str = "",
) -> tuple[Flag, ...]:
    flags = load_flags(machine) + speed_flags(ratios) + cv_flags(comparisons, max_cv)
    if speculative is not None:
        flags = spec_flags(speculative, dtype) + flags
    if trunk is not None:
        flags = trunk_flags(trunk) + flags
    return tuple(flags)
