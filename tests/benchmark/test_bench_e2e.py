"""The end-to-end part of `bench --shared-trunk`: stock configs, prediction comparison, record and table."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from evalkit.benchmark.e2e import BASELINE, compare_predictions, stock_models, write_stock_config
from evalkit.errors import EvalkitError
from evalkit.records.bench import SharedTrunk, TrunkE2E, bench_from_dict
from evalkit.reporting.bench_tables import trunk_tables


def write_predictions(run_dir, abbr, ds, texts):
    path = run_dir / "predictions" / abbr / f"{ds}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({str(i): {"origin_prompt": "q", "prediction": t} for i, t in enumerate(texts)}))


def test_predictions_are_compared_model_by_model_item_by_item(tmp_path):
    ours, stock = tmp_path / "ours", tmp_path / "stock"
    for run in (ours, stock):
        write_predictions(run, "m-e3b", "gsm8k", ["a", "b"])
        write_predictions(run, "m-e7b", "gsm8k", ["c", "d"])
    assert compare_predictions(ours, stock, ["m-e3b", "m-e7b"], ["gsm8k"]) == (4, [])
    write_predictions(stock, "m-e7b", "gsm8k", ["c", "D"])
    compared, diffs = compare_predictions(ours, stock, ["m-e3b", "m-e7b"], ["gsm8k"])
    assert compared == 4 and [d.describe() for d in diffs] == ["m-e7b/gsm8k item 1: 'd' != 'D'"]
    _, missing = compare_predictions(ours, stock, ["m-e3b"], ["gsm8k", "math"])
    assert [d.describe() for d in missing] == ["m-e3b/math: no predictions from the evalkit run"]


def test_stock_models_are_the_runs_models_on_exported_checkpoints_with_shared_trunk_off(tmp_path):
    from mmengine.config import Config

    from evalkit import Branch
    from evalkit.oc.model_configs import familial_configs

    branches = [Branch(0, "E3B", 11, 12, 0, 0), Branch(4, "E7B", 27, 28, 0, 0)]
    models = familial_configs("/ckpt/tiny-ruyi-x", branches, shared_trunk=True, batch_size=4, max_out_len=16)
    exported = {"E3B": tmp_path / "E3B", "E7B": tmp_path / "E7B"}
    stock = stock_models(models, exported)
    assert [m["abbr"] for m in stock] == [m["abbr"] for m in models]
    for m, ours in zip(stock, models, strict=True):
        assert m["path"] == str(exported[ours["branch"]].resolve()) and m["branch"] is None
        assert m["shared_trunk"] is False and m["run_branches"] == []
        assert {k: v for k, v in m.items() if k not in ("path", "branch", "shared_trunk", "run_branches")} == {
            k: v for k, v in ours.items() if k not in ("path", "branch", "shared_trunk", "run_branches")
        }
    datasets = [{"abbr": "gsm8k", "type": "opencompass.datasets.GSM8KDataset", "reader_cfg": {"test_range": "[0:2]"}}]
    cfg = Config.fromfile(str(write_stock_config(tmp_path / "cfg.py", stock, datasets)))
    assert cfg.models == stock and cfg.datasets == datasets


def e2e_record(**overrides):
    e2e = TrunkE2E(
        suite="stem",
        limit=2,
        branches=("E3B", "E7B"),
        datasets=("gsm8k",),
        evalkit_s=10.0,
        stock_s=50.0,
        e2e_stock_over_evalkit=5.0,
        predictions_identical=True,
        items_compared=4,
        export_s=1.0,
        evalkit_command="python -m evalkit run",
        stock_command="python -m opencompass.cli.main c.py",
        baseline=BASELINE,
    )
    return replace(e2e, **overrides)


def test_the_record_round_trips_and_the_table_states_the_figures():
    trunk = SharedTrunk(model="tiny-ruyi", e2e=(e2e_record(),))
    raw = {
        "schema": "evalkit.bench",
        "schema_version": 1,
        "run_id": "r",
        "created_at": "t",
        "command": "c",
        "environment": _environment(),
        "dtype": "fp32",
        "config": {},
        "protocol": {},
        "peak_bandwidth_gbps": None,
        "peak_bandwidth_source": "unknown",
        "rows": [],
        "ratios": [],
        "shared_trunk": asdict(trunk),
    }
    back = bench_from_dict(json.loads(json.dumps(raw)))
    assert back.shared_trunk == trunk
    assert asdict(back)["shared_trunk"]["e2e"][0]["e2e_stock_over_evalkit"] == 5.0
    text = trunk_tables(trunk)
    assert "stock / evalkit 5.00x" in text and "predictions identical: true (4 items)" in text
    assert "HuggingFacewithChatTemplate" in text  # the baseline is said in words
    older = {k: v for k, v in asdict(trunk).items() if k != "e2e"}  # records written before the part existed
    assert bench_from_dict({**raw, "shared_trunk": older}).shared_trunk == replace(trunk, e2e=())


def _environment():
    from dataclasses import fields

    from evalkit.records.bench import Environment

    return {f.name: None if "None" in str(f.type) else "x" for f in fields(Environment)}


@pytest.mark.parametrize("suite, limit", [("general,stem", 2), ("nope", 2), ("stem", 0)])
def test_bad_end_to_end_options_are_user_errors(suite, limit):
    from evalkit import BenchConfig

    with pytest.raises(EvalkitError):
        BenchConfig(e2e_suite=suite, e2e_limit=limit)
    assert BenchConfig(e2e_suite=None).e2e_suite is None


def test_repeated_end_to_end_runs_interleave_into_their_own_directories(tmp_path, monkeypatch):
    import evalkit.benchmark.e2e as e2e

    calls = []

    def timed(cmd, env, what):
        calls.append((what, cmd[-1] if what == "stock OpenCompass" else cmd[cmd.index("--out") + 1]))
        return 50.0 + len(calls) % 3 if what == "stock OpenCompass" else 10.0

    monkeypatch.setattr(e2e, "_timed", timed)
    setup = e2e.E2ESetup(model=None, rounds=4, seed=3)
    c = e2e._repeated(setup, tmp_path, {}, ["python", "-m", "opencompass.cli.main", "cfg.py", "-w", "first"])
    assert c.rounds == 4 and [w for w, _ in calls] == [
        {"evalkit": "evalkit run", "stock": "stock OpenCompass"}[k] for o in c.orders for k in o
    ]
    assert len({d for _, d in calls}) == 8  # every run writes a directory of its own
    ratio = c.ratios[0]
    assert ratio.name == "stock/evalkit" and 5.0 <= ratio.ci[0] <= ratio.value <= ratio.ci[1] <= 5.2
    text = trunk_tables(SharedTrunk("m", e2e=(e2e_record(rounds=4, e2e_stock_over_evalkit_ci=ratio.ci),)))
    assert "median of 4 interleaved rounds" in text and "stock / evalkit 5.00x [" in text
    assert "a single measurement of each side" in trunk_tables(SharedTrunk("m", e2e=(e2e_record(),)))
