"""Interleaved rounds and ratio intervals, on synthetic timings: no clock, no model."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from evalkit.benchmark.interleave import RatioSpec, Stopping, interleave, medians, ratio_estimate, ratio_of, round_order


class FakeClock:
    """A clock that moves only when a condition says it ran for so long."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def synthetic(true: dict[str, float], *, drift: float, noise: float, seed: int, clock: FakeClock, log: list[str]):
    """Conditions whose value is true[c] x a factor shared by the whole round (drift, load) x its own noise."""
    rng = np.random.default_rng(seed)
    state = {"round_factor": 1.0, "seen": set()}

    def make(name: str):
        def run() -> float:
            if name in state["seen"] or not state["seen"]:
                state["round_factor"] = float(np.exp(rng.normal(0, drift)))
                state["seen"] = set()
            state["seen"].add(name)
            log.append(name)
            value = true[name] * state["round_factor"] * float(np.exp(rng.normal(0, noise)))
            clock.t += value
            return value

        return run

    return {name: make(name) for name in true}


def test_every_round_runs_every_condition_once_in_a_seeded_shuffled_order():
    log: list[str] = []
    clock = FakeClock()
    conds = synthetic({"a": 1.0, "b": 2.0, "c": 3.0}, drift=0.0, noise=0.01, seed=0, clock=clock, log=log)
    c = interleave(conds, stopping=Stopping(min_rounds=12, budget_s=1e9), warmup=2, clock=clock, seed=7)
    assert c.rounds == 12 and len(c.orders) == 12 and c.stopped == "no-ratio"
    assert all(sorted(o) == ["a", "b", "c"] for o in c.orders)
    # The warm-up runs each condition twice first; then the calls follow the recorded orders exactly.
    assert sorted(log[:6]) == ["a", "a", "b", "b", "c", "c"]
    assert log[6:] == list(itertools.chain.from_iterable(c.orders))
    assert len(set(c.orders)) > 1  # shuffled, not the same order every round
    assert c.orders == tuple(round_order(("a", "b", "c"), 7, r) for r in range(12))  # reproducible from the seed
    assert round_order(("a", "b", "c"), 8, 0) != round_order(("a", "b", "c"), 7, 0) or round_order(
        ("a", "b", "c"), 8, 1
    ) != round_order(("a", "b", "c"), 7, 1)
    # Never all of one condition, then all of another.
    firsts = [log.index(x, 6) for x in "abc"]
    lasts = [len(log) - 1 - log[::-1].index(x) for x in "abc"]
    assert all(f < min(lasts) for f in firsts)


def test_a_known_ratio_with_known_noise_is_covered_by_its_interval():
    clock = FakeClock()
    true = {"last": 1.0, "shared": 1.25, "e3": 0.4, "e5": 0.7}
    conds = synthetic(true, drift=0.3, noise=0.05, seed=3, clock=clock, log=[])
    specs = [
        RatioSpec("shared/last", ("shared",), ("last",)),
        RatioSpec("separate/last", ("e3", "e5", "last"), ("last",)),
    ]
    c = interleave(conds, specs, stopping=Stopping(min_rounds=40, budget_s=1e9, max_rounds=40), clock=clock)
    shared, separate = ratio_of(c, "shared/last"), ratio_of(c, "separate/last")
    # The round factor cancels in each round's ratio: 1.25 and (0.4 + 0.7 + 1) / 1 = 2.1.
    assert shared.ci[0] <= 1.25 <= shared.ci[1] and separate.ci[0] <= 2.1 <= separate.ci[1]
    assert shared.ci[0] <= shared.value <= shared.ci[1]
    # Paired: the round factor (30% spread) cancels, so the interval is as narrow as the 5% noise allows.
    assert shared.half_width < 0.04
    assert not shared.ci[0] <= 1.25 * 1.1 <= shared.ci[1]  # and it excludes a ratio 10% off
    assert medians(c)["shared"] == pytest.approx(np.median([v for v in _values(c, "shared")]))


def _values(c, name):
    return next(s.values for s in c.series if s.condition == name)


def test_the_interval_covers_the_true_ratio_about_95_times_in_100():
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(100):
        drift = np.exp(rng.normal(0, 0.3, 25))
        a = 2.0 * drift * np.exp(rng.normal(0, 0.1, 25))
        b = 3.0 * drift * np.exp(rng.normal(0, 0.1, 25))
        r = ratio_estimate(RatioSpec("b/a", ("b",), ("a",)), {"a": a, "b": b}, seed=trial)
        covered += r.ci[0] <= 1.5 <= r.ci[1]
    assert 88 <= covered <= 100


def test_an_unpaired_spread_gives_a_wide_interval():
    # The same values with the round pairing destroyed: the interval must widen, or the pairing is not used.
    rng = np.random.default_rng(5)
    drift = np.exp(rng.normal(0, 0.3, 30))
    a, b = drift * np.exp(rng.normal(0, 0.02, 30)), 1.2 * drift * np.exp(rng.normal(0, 0.02, 30))
    spec = RatioSpec("b/a", ("b",), ("a",))
    paired = ratio_estimate(spec, {"a": a, "b": b})
    shuffled = ratio_estimate(spec, {"a": a, "b": rng.permutation(b)})
    assert paired.half_width < 0.03 < shuffled.half_width


def test_rounds_stop_when_narrow_when_out_of_budget_or_at_the_cap():
    spec = [RatioSpec("b/a", ("b",), ("a",))]

    def run(noise: float, budget: float, cap: int = 500):
        clock = FakeClock()
        conds = synthetic({"a": 1.0, "b": 2.0}, drift=0.2, noise=noise, seed=1, clock=clock, log=[])
        return interleave(
            conds, spec, stopping=Stopping(min_rounds=5, budget_s=budget, max_rounds=cap, target=0.05), clock=clock
        )

    quiet = run(noise=0.01, budget=1e9)
    assert quiet.stopped == "converged" and quiet.rounds == 5 and quiet.ratios[0].half_width < 0.05
    noisy = run(noise=0.5, budget=60.0)
    assert noisy.stopped == "budget" and noisy.ratios[0].half_width >= 0.05
    assert noisy.elapsed_s <= 60.0 and noisy.rounds > 5
    capped = run(noise=0.5, budget=1e9, cap=9)
    assert capped.stopped == "max-rounds" and capped.rounds == 9


def test_measures_progress_and_bad_specs():
    clock = FakeClock()
    seen = []

    def timed(v: float):
        return lambda: {"ttft_s": v / 10, "e2e_s": v}

    c = interleave(
        {"hf": timed(2.0), "fast": timed(1.0)},
        [RatioSpec("e2e", ("hf",), ("fast",), "e2e_s"), RatioSpec("ttft", ("hf",), ("fast",), "ttft_s")],
        stopping=Stopping(min_rounds=3, budget_s=1e9),
        clock=clock,
        on_round=seen.append,
    )
    assert [r.value for r in c.ratios] == [2.0, 2.0] and c.ratios[0].ci == (2.0, 2.0)
    assert [s.rounds for s in seen] == [1, 2, 3] and seen[0].widest is None and seen[-1].widest == 0.0
    assert {(s.condition, s.measure) for s in c.series} == {(x, m) for x in ("hf", "fast") for m in ("ttft_s", "e2e_s")}
    with pytest.raises(ValueError, match="not among"):
        interleave({"a": lambda: 1.0}, [RatioSpec("x", ("a",), ("b",))], stopping=Stopping(1, 1.0))
