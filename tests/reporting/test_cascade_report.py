"""The report's Cascade section, its plot and routing.json, from records with known structure."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from evalkit.records.results import save_record
from evalkit.reporting import cascade
from evalkit.reporting.build import report
from evalkit.reporting.plots import PlotQueue
from tests._synth_signals import signal_record

SMALL = Path(__file__).resolve().parents[1] / "data" / "records" / "small.json"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("cascade")
    save_record(signal_record(), out / "results.json")
    return report([out / "results.json"], out / "r").parent


def test_the_section_states_the_headline_signal_and_folds(built):
    text = (built / "report.md").read_text(encoding="utf-8")
    part = text[text.index("## Cascade") : text.index("## Performance") if "## Performance" in text else None]
    assert "5-fold cross-validation over items (seed 0)" in part
    assert "At E7B's accuracy (within its CI), the cascade uses" in part
    assert "| ARC-c     |   400   |    margin    |" in part and "| GSM8K     |   400   | mean_logprob |" in part
    assert "![cascade](plots/cascade_ruyi-7b.png)" in part
    assert (built / "plots" / "cascade_ruyi-7b.png").stat().st_size > 10_000
    assert "Per-token agreement with the last branch" in part and "Est. speedup over E7B" in part


def test_routing_json_holds_every_point(built):
    doc = json.loads((built / "routing.json").read_text())
    [fam] = doc["families"]
    assert fam["folds"] == 5 and [b["exit_layer"] for b in fam["branches"]] == [11, 15, 19, 23, 27]
    arc = next(d for d in fam["datasets"] if d["dataset"] == "arc_c")
    assert arc["signal"] == "margin" and list(arc["cascade"]) == ["margin"]
    gsm = next(d for d in fam["datasets"] if d["dataset"] == "gsm8k")
    assert set(gsm["cascade"]) == {"mean_logprob", "min_logprob", "first_entropy"}  # every signal's curve
    for d in (arc, gsm, fam["overall"]):
        assert len(d["fixed"]) == 5 and d["oracle"]["label"] == "oracle"
        for points in d["cascade"].values():
            assert len(points) == 16 and all(
                p["accuracy_ci"][0] <= p["accuracy"] <= p["accuracy_ci"][1] for p in points
            )
    h = arc["headline"]
    assert h["point"]["accuracy"] >= h["target_ci"][0]
    assert h["fraction_of_last_branch_compute"] == pytest.approx(h["point"]["cost"] / arc["fixed"][-1]["cost"])
    assert doc["agreement"][0]["datasets"][0]["dataset"] == "gsm8k"


def test_a_record_without_signals_still_reports(tmp_path):
    text = report([SMALL], tmp_path / "r").read_text(encoding="utf-8")
    part = text[text.index("## Cascade") :]
    assert "No item carries confidence signals" in part and "Per-token agreement: none recorded" in part
    assert json.loads((tmp_path / "r" / "routing.json").read_text())["families"][0]["overall"] is None


def _row(exit_layer, tpot, ttft, batch=1, role="ours"):
    stats = lambda v: SimpleNamespace(median=v)  # noqa: E731
    return SimpleNamespace(
        model="ruyi-7b",
        role=role,
        batch_size=batch,
        error=None,
        exit_layer=exit_layer,
        ttft_s=stats(ttft),
        tpot_s=stats(tpot),
        prompt_len=100,
    )


def test_bench_seconds_join_the_table(tmp_path):
    rows = [_row(e, 0.01 * (k + 1), 0.1 * (k + 1)) for k, e in enumerate((11, 15, 19, 23, 27))]
    rows.append(_row(11, 0.001, 0.01, batch=8))  # other batch sizes are not batch-1 latency
    env = SimpleNamespace(device_type="cpu", device="cpu (x86_64, 2 threads)", cuda=None)
    bench = SimpleNamespace(rows=rows, environment=env, dtype="fp32")
    timings = cascade.bench_timings([bench])
    assert timings["ruyi-7b"].tpot_s == (0.01, 0.02, 0.03, 0.04, 0.05)
    assert timings["ruyi-7b"].prefill_s_per_token[0] == pytest.approx(0.001)
    text, doc = cascade.section(signal_record(n=60), [(tmp_path / "b.json", bench)], tmp_path, PlotQueue())
    assert "Measured seconds per item (bench at batch 1 on CPU (x86_64, 2 threads), fp32" in text
    gsm = next(d for d in doc["families"][0]["datasets"] if d["dataset"] == "gsm8k")
    assert gsm["fixed"][0]["seconds_per_item"] > 0


def test_the_item_browser_shows_each_answers_signals(built):
    page = (built / "report.html").read_text(encoding="utf-8")
    data = json.loads(
        page[page.index("{", page.index('id="item-data"')) : page.index("</script>", page.index('id="item-data"'))]
    )
    assert {"mean_logprob", "margin", "agreement"} <= set(data["extra_fields"]) and "signals" not in data[
        "extra_fields"
    ]
    answers = [a for d in data["datasets"] for item in d["items"] for a in item["answers"].values()]
    assert any(isinstance(a.get("margin"), float) for a in answers)


def test_a_dataset_every_branch_aces_reports_and_plots(tmp_path):
    """All 20 items right at every branch: 20 weights of 1/20 sum a hair above 1, so an accuracy taken
    as their plain sum lands above its own bootstrap interval, and the error bars came out negative."""
    from evalkit.analysis.cascade_summary import cascades

    record = signal_record(n=20, easy=1.0, noise=0.0)
    (family,) = cascades(record)
    for d in family.datasets:
        for p in d.fixed:
            assert p.accuracy == 100.0 and p.accuracy_ci[0] <= p.accuracy <= p.accuracy_ci[1]
    save_record(record, tmp_path / "results.json")
    report([tmp_path / "results.json"], tmp_path / "r")
    assert (tmp_path / "r" / "plots" / "cascade_ruyi-7b.png").stat().st_size > 0


def test_a_dataset_every_branch_gets_wholly_wrong_is_left_out_of_the_pooled_agreement(tmp_path):
    import dataclasses

    from evalkit.records.results import Score

    record = signal_record(n=40)
    scores = tuple(
        Score(s.model, s.dataset, s.metric, 0.0, s.n, tuple(dataclasses.replace(i, score=0.0) for i in s.items))
        if s.dataset == "gsm8k"
        else s
        for s in record.scores
    )
    save_record(dataclasses.replace(record, scores=scores), tmp_path / "results.json")
    text = report([tmp_path / "results.json"], tmp_path / "r").read_text(encoding="utf-8")
    assert "(40 items over 1 dataset; left out: GSM8K, where every branch has the same outcome on every item)" in text
