"""A seeded, realistic results record: 5 branches + 3 baselines, 13 datasets, a few hundred items each.

Branch outcomes are correlated the way early exits are: an item has a latent difficulty, and a
larger branch answers it with a higher chance, so branches mostly agree and mostly rise with size.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from evalkit.catalog.datasets import DATASETS
from evalkit.records.estimator import score_value
from evalkit.records.results import Item, ModelInfo, Provenance, ResultsRecord, Score

BRANCHES = (
    ("E3B", 11, 3_330_000_000),
    ("E4B", 15, 4_200_000_000),
    ("E5B", 19, 5_070_000_000),
    ("E6B", 23, 5_940_000_000),
    ("E7B", 27, 7_620_000_000),
)
BASELINES = (
    ("qwen2.5-7b-instruct", "Qwen2.5-7B-Instruct", 0.8),
    ("llama3.1-8b-instruct", "Llama3.1-8B-Instruct", 0.4),
    ("qwen3-8b", "Qwen3-8B(think)", 1.0),
)
SKILL = {"E3B": -1.2, "E4B": -0.4, "E5B": 0.3, "E6B": 0.55, "E7B": 0.7}


def models() -> tuple[ModelInfo, ...]:
    base = tuple(ModelInfo(abbr=a, name=n, role="baseline") for a, n, _ in BASELINES)
    fam = tuple(
        ModelInfo(
            abbr=f"ruyi-7b-{b.lower()}",
            name=f"AI-Flow-Ruyi-7B-{b}",
            role="ours",
            family="ruyi-7b",
            branch=b,
            exit_layer=e,
            num_params=p,
        )
        for b, e, p in BRANCHES
    )
    return base + fam


def synth_record(
    n_items: int = 300, seed: int = 0, run_id: str = "synth", skill: dict | None = None, flip: float = 0.0
) -> ResultsRecord:
    """`flip` re-draws that fraction of outcomes at random (rerun noise); `skill` overrides SKILL."""
    rng = np.random.default_rng(seed)
    skills = {**SKILL, **{a: s for a, _, s in BASELINES}, **(skill or {})}
    scores = []
    for d in DATASETS:
        drng = np.random.default_rng(1000 * seed + DATASETS.index(d))
        difficulty = drng.normal(0.0, 1.5, n_items)
        groups = [f"{d.key}_g{j % 12}" for j in range(n_items)] if d.grouped else [None] * n_items
        shared = drng.normal(size=n_items)  # mostly shared per item, so branches mostly agree
        for m in models():
            key = m.branch or m.abbr
            p = 1.0 / (1.0 + np.exp(-(skills[key] - difficulty)))
            u = special.ndtr(0.85 * shared + 0.53 * drng.normal(size=n_items))
            outcome = (u < p).astype(float)
            redo = rng.random(n_items) < flip
            outcome[redo] = (rng.random(int(redo.sum())) < p[redo]).astype(float)
            items = tuple(
                Item(id=f"{d.key}/{j}", score=float(o), group=g)
                for j, (o, g) in enumerate(zip(outcome, groups, strict=True))
            )
            scores.append(
                Score(
                    model=m.abbr,
                    dataset=d.key,
                    metric=d.metric,
                    value=score_value(d.key, [i.score for i in items], [i.group for i in items]),
                    n=n_items,
                    items=items,
                )
            )
    prov = Provenance(
        git_revision="0123abc",
        device="NVIDIA H100 80GB HBM3",
        dtype="bfloat16",
        data_source="/data/opencompass (synthetic outcomes)",
        command="synthetic",
    )
    return ResultsRecord(run_id=run_id, kind="measured", models=models(), scores=tuple(scores), provenance=prov)
