"""A seeded record whose signals carry known structure, for the cascade and agreement tests.

Each item has a latent difficulty; branch k (exits of Ruyi-7B) answers it correctly when its skill beats
the difficulty plus noise. A branch's confidence signal is its margin over the difficulty plus noise of
scale `noise` (the outcome has noise of that scale too); with `informative=False` the signal is drawn
independently of everything. Generated datasets carry mean/min log-prob, first-token
entropy, token counts and agreement; choice datasets a margin. With `easy`, that fraction of items is
easy for every branch and the rest are answered by E6B and E7B only.
"""

from __future__ import annotations

import numpy as np

from evalkit.catalog.datasets import BY_KEY
from evalkit.records.estimator import score_value
from evalkit.records.results import Item, ModelInfo, ResultsRecord, Score, Signals

EXITS = (11, 15, 19, 23, 27)
SKILL = (-0.6, -0.2, 0.2, 0.45, 0.6)
NAMES = ("E3B", "E4B", "E5B", "E6B", "E7B")


def signal_record(
    n: int = 400,
    seed: int = 0,
    *,
    informative: bool = True,
    noise: float = 0.3,
    easy: float | None = None,
    datasets: tuple[str, ...] = ("gsm8k", "arc_c"),
    agreement: tuple[float, ...] = (0.5, 0.6, 0.75, 0.9, 1.0),
) -> ResultsRecord:
    rng = np.random.default_rng(seed)
    models = tuple(
        ModelInfo(f"ruyi-7b-{b.lower()}", f"Ruyi-{b}", "ours", "ruyi-7b", b, e, 3_000_000_000 + 900_000_000 * k)
        for k, (b, e) in enumerate(zip(NAMES, EXITS, strict=True))
    )
    scores = []
    for key in datasets:
        difficulty = rng.normal(0.0, 1.0, n)
        if easy is not None:  # two kinds of item: easy for every branch, or hard for all but E6B and E7B
            difficulty = np.where(rng.random(n) < easy, -3.0, 0.45)
        prompt = rng.integers(50, 200, n)
        for k, m in enumerate(models):
            margin = SKILL[k] - difficulty
            correct = (margin + rng.normal(0.0, noise, n)) > 0
            conf = margin + rng.normal(0.0, noise, n) if informative else rng.normal(0.0, 1.0, n)
            items = []
            for j in range(n):
                if key == "arc_c":
                    sig = Signals(margin=float(1.0 / (1.0 + np.exp(-2 * conf[j]))))
                else:
                    lp = float(-np.log1p(np.exp(-conf[j])))
                    sig = Signals(
                        mean_logprob=lp,
                        min_logprob=2 * lp,
                        first_entropy=float(np.log1p(np.exp(-conf[j]))),
                        agreement=float(np.clip(agreement[k] + rng.normal(0, 0.05), 0, 1)) if k < 4 else 1.0,
                        prompt_tokens=int(prompt[j]),
                        answer_tokens=int(rng.integers(20, 60)),
                    )
                items.append(Item(f"{key}/{j}", float(correct[j]), None, sig))
            value = score_value(key, [i.score for i in items], [None] * n)
            scores.append(Score(m.abbr, key, BY_KEY[key].metric, value, n, tuple(items)))
    return ResultsRecord("signals", "measured", models, tuple(scores))
