"""Cascades from records with known structure: cost accounting, out-of-sample thresholds, the gate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from evalkit import EvalkitError
from evalkit.analysis.agreement import agreement_tables, estimated_speedup, expected_tokens_per_step
from evalkit.analysis.cascade import CostModel, Timing, cross_validate, dataset_data, stops
from evalkit.analysis.cascade_summary import cascade_scores, cascades
from evalkit.analysis.family_view import families
from evalkit.analysis.regress import regress
from evalkit.records.results import ResultsRecord, Score
from tests._synth_signals import EXITS, signal_record

RUYI = CostModel(EXITS)


def test_familial_escalation_reuses_the_trunk_below_the_exit_and_pays_the_new_decode():
    # One item: 100 prompt tokens; E3B answers in 10 tokens, E4B in 20, E7B in 30.
    prompt = np.array([100.0])
    answers = np.array([[10.0], [20.0], [25.0], [28.0], [30.0]])
    familial, separate, denominator = RUYI.steps(prompt, answers)
    assert familial[0, 0] == 100 * 12 + 12 * 9  # E3B: 12 layers on the prompt, 9 decode steps
    assert familial[1, 0] == 100 * (15 - 11 + 1) + 16 * 19  # to E4B: trunk 11..14 + its own layer; its decode
    assert familial[4, 0] == 100 * (27 - 23 + 1) + 28 * 29  # to E7B from E6B: layers 23..27
    assert separate[1, 0] == 16 * (100 + 19)  # a separate 16-layer model pays its whole prompt again
    assert denominator[0] == 100 + 29  # tokens the last branch alone processes
    # E3B then E7B directly is not a path of this cascade; E3B -> E4B costs less than E4B alone plus E3B alone.
    assert familial[:2].sum() < separate[:2].sum()
    # Choice items count one token: escalation pays the exits' difference plus a layer.
    fam, sep, den = RUYI.steps(np.ones(1), None)
    assert fam[:, 0].tolist() == [12, 5, 5, 5, 5] and sep[:, 0].tolist() == [12, 16, 20, 24, 28] and den[0] == 1
    # Heads, when counted, add per generated token.
    fam_h, _, _ = CostModel(EXITS, head=2.0).steps(prompt, answers)
    assert fam_h[0, 0] - familial[0, 0] == 2.0 * 10


def test_the_cascade_stops_at_the_first_branch_whose_signal_reaches_its_threshold():
    signal = np.array([[0.9, 0.1, 0.1], [0.0, 0.8, 0.1], [0.0, 0.0, 0.0]])
    assert stops(signal, np.array([[0.5, 0.5]])).tolist() == [[0, 1, 2]]
    assert stops(signal, np.array([[-np.inf, 0.5]])).tolist() == [[0, 0, 0]]  # never escalates
    assert stops(signal, np.array([[np.inf, np.inf]])).tolist() == [[2, 2, 2]]  # always escalates


def _data(record: ResultsRecord, key: str, signal: str):
    [branches] = families(record).values()
    return dataset_data(record, branches, key, signal, RUYI)


def test_every_cascade_point_is_out_of_sample():
    """An item's own outcome never influences the thresholds applied to it. Each probed item gets nearly all
    the weight, and is answered by E3B alone or by E7B alone: thresholds fitted with it in the training
    set would follow it; fitted on the other folds, its stops are the same both ways."""
    data = _data(signal_record(n=200), "arc_c", "margin")
    for i in (0, 7, 99, 150):
        weights = np.full(200, 0.1 / 199)
        weights[i] = 0.9
        runs = []
        for answered_by in (0, 4):
            outcomes = data.outcomes.copy()
            outcomes[:, i] = 0.0
            outcomes[answered_by, i] = 1.0
            runs.append(cross_validate(dataclasses.replace(data, outcomes=outcomes, weights=weights)).stop)
        assert (runs[0][:, i] == runs[1][:, i]).all()
    # The control: the same probe does move the thresholds applied to the items it trained on.
    assert (runs[0] != runs[1]).any()


def test_an_informative_signal_buys_the_last_branchs_accuracy_for_less_and_noise_does_not():
    # 70% of items are easy for every branch, the rest need E6B or E7B: a confident E3B can stop early.
    [good] = cascades(signal_record(informative=True, noise=0.1, easy=0.7))
    [noise] = cascades(signal_record(informative=False, noise=0.1, easy=0.7))
    for key, most in (("arc_c", 0.8), ("gsm8k", 0.95)):
        d = next(d for d in good.datasets if d.dataset == key)
        assert d.signal == ("margin" if key == "arc_c" else "mean_logprob")
        assert d.headline.reached and d.headline.fraction < most, (key, d.headline.fraction)
        # Same outcomes, uninformative signals: matching the last branch costs more than the last branch.
        noisy = next(x for x in noise.datasets if x.dataset == key)
        assert noisy.headline.fraction > 1.0, (key, noisy.headline.fraction)
    [good] = cascades(signal_record(informative=True))
    for d in good.datasets:
        for p in d.curves[d.signal]:
            assert p.accuracy <= d.oracle.accuracy + 1e-9  # the oracle bounds every policy
            lo, hi = p.accuracy_ci
            assert lo <= p.accuracy <= hi and p.cost_ci[0] <= p.cost <= p.cost_ci[1]
            assert p.separate_cost is not None and p.separate_cost >= p.cost - 1e-9
        assert [p.label for p in d.fixed] == ["E3B", "E4B", "E5B", "E6B", "E7B"]
        assert d.fixed[-1].cost == pytest.approx(28.0)  # the last branch costs its depth per token
    assert good.overall is not None and good.overall.n == 800


def test_a_record_without_signals_reports_fixed_branches_and_the_oracle_only():
    record = signal_record(n=50)
    bare = dataclasses.replace(
        record,
        scores=tuple(
            dataclasses.replace(s, items=tuple(dataclasses.replace(i, signals=None) for i in s.items))
            for s in record.scores
        ),
        schema_version=1,
    )
    [fam] = cascades(bare)
    assert fam.missing_signals == ["gsm8k", "arc_c"] or set(fam.missing_signals) == {"gsm8k", "arc_c"}
    assert all(d.curves == {} and d.headline is None for d in fam.datasets)
    assert fam.overall is None and cascade_scores(bare, 0.8) == {}


def test_measured_seconds_scale_with_each_items_tokens():
    timing = Timing(prefill_s_per_token=(1e-3,) * 5, tpot_s=(0.01, 0.02, 0.03, 0.04, 0.05))
    [fam] = cascades(signal_record(n=60), timings={"ruyi-7b": timing})
    gsm = next(d for d in fam.datasets if d.dataset == "gsm8k")
    record = signal_record(n=60)
    items = record.score("ruyi-7b-e3b", "gsm8k").items
    want = np.mean([1e-3 * i.signals.prompt_tokens + 0.01 * (i.signals.answer_tokens - 1) for i in items])
    assert gsm.fixed[0].seconds == pytest.approx(want)
    assert next(d for d in fam.datasets if d.dataset == "arc_c").fixed[0].seconds is None  # choice: no tokens


def _scrambled(record: ResultsRecord, seed: int = 5) -> ResultsRecord:
    """The same outcomes, each branch's signals shuffled across items: the signal carries no information."""
    rng = np.random.default_rng(seed)
    scores = []
    for s in record.scores:
        order = rng.permutation(len(s.items))
        items = tuple(dataclasses.replace(i, signals=s.items[j].signals) for i, j in zip(s.items, order, strict=True))
        scores.append(Score(s.model, s.dataset, s.metric, s.value, s.n, items))
    return dataclasses.replace(record, run_id="scrambled", scores=tuple(scores))


def test_regress_gates_the_cascade_at_a_fixed_cost_like_any_score():
    reference = signal_record(n=800, datasets=("arc_c",))
    candidate = _scrambled(reference)
    result = regress(reference, candidate, cascade_budget=0.75)
    rows = {(r.model, r.dataset): r for r in result.rows}
    assert rows[("cascade@0.75", "arc_c")].verdict == "FAIL"
    assert all(r.verdict != "FAIL" for r in result.rows if r.model != "cascade@0.75")  # branches unchanged
    assert not result.passed
    assert regress(reference, _scrambled(reference, 6), tolerance=1.0).passed  # without the flag, nothing to see


def test_regress_refuses_a_budget_it_cannot_gate():
    reference = signal_record(n=40)
    with pytest.raises(EvalkitError, match="--cascade-budget must be a fraction"):
        regress(reference, _scrambled(reference), cascade_budget=0.0)
    bare = dataclasses.replace(
        reference,
        scores=tuple(
            dataclasses.replace(s, items=tuple(dataclasses.replace(i, signals=None) for i in s.items))
            for s in reference.scores
        ),
    )
    with pytest.raises(EvalkitError, match="needs confidence signals"):
        regress(bare, dataclasses.replace(bare, run_id="other"), cascade_budget=0.8)


def test_expected_tokens_per_step_and_the_speedup_estimate():
    assert expected_tokens_per_step(0.0, 4) == pytest.approx(1.0)
    assert expected_tokens_per_step(1.0, 4) == pytest.approx(5.0)
    assert expected_tokens_per_step(0.5, 2) == pytest.approx(1 + 0.5 + 0.25)
    # E6B drafting one token for E7B at agreement 0.9: 1.9 tokens for 24 + 28 layer reads, against 28 each.
    assert estimated_speedup(0.9, 1, 23, 27) == pytest.approx(1.9 * 28 / 52)
    assert np.allclose(expected_tokens_per_step(np.array([0.0, 1.0]), 1), [1.0, 2.0])


def test_agreement_table_reads_the_recorded_fractions():
    agree = (0.2, 0.3, 0.5, 0.97, 1.0)
    [fam] = agreement_tables(signal_record(n=100, agreement=agree))
    [row] = fam.rows  # only the generated dataset has agreements
    assert row.dataset == "gsm8k" and fam.target == "E7B"
    assert [round(row.agreement[b], 1) for b in ("E3B", "E4B", "E5B", "E6B", "E7B")] == [0.2, 0.3, 0.5, 1.0, 1.0]
    assert row.best is not None and row.best.draft == "E6B" and row.best.speedup > 1


def test_a_family_whose_exits_do_not_rise_with_size_is_left_out():
    record = signal_record(n=30)
    models = tuple(dataclasses.replace(m, exit_layer=30 - m.exit_layer) for m in record.models)
    odd = dataclasses.replace(record, models=models)
    assert cascades(odd) == [] and agreement_tables(odd) == [] and cascade_scores(odd, 0.8) == {}


def test_items_without_a_signal_escalate_rather_than_drop_the_dataset():
    from dataclasses import replace as _replace

    from evalkit.analysis.cascade_summary import cascades

    record = signal_record(n=200, datasets=("gsm8k",))
    scores = list(record.scores)
    first = scores[0]  # the smallest branch: 8 of its items lost their signals (a task killed mid-way)
    scores[0] = _replace(
        first, items=tuple(_replace(i, signals=None) if k < 8 else i for k, i in enumerate(first.items))
    )
    damaged = _replace(record, scores=tuple(scores))
    [family] = cascades(damaged)
    [dataset] = family.datasets
    assert dataset.signal == "mean_logprob" and dataset.curves
    [branches] = families(damaged).values()
    data = dataset_data(damaged, branches, "gsm8k", "mean_logprob", family.cost)
    assert data is not None and data.signal is not None
    assert data.signal[0, :8].max() < data.signal[0, 8:].min()  # least confident: any threshold escalates them
    assert (
        stops(data.signal, np.array([[data.signal[0, 8:].min()] + [-np.inf] * (len(branches) - 2)]))[0, :8] > 0
    ).all()


def test_a_dataset_of_one_item_has_no_cascade_and_no_crash():
    from evalkit.analysis.cascade_summary import cascades

    assert all(not f.datasets for f in cascades(signal_record(n=1, datasets=("gsm8k",))))
