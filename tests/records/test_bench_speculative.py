"""The bench record's speculative section (schema 2): read strictly; version 1 records still load."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
from test_bench_checks import STATS, record

from evalkit.errors import EvalkitError
from evalkit.records.bench import SpecBaseline, SpecCell, SpeculativeBench, load_bench, save_bench


def cell(**changes: object) -> SpecCell:
    base = SpecCell(
        draft="E3B",
        draft_exit=11,
        k=4,
        batch_size=2,
        acceptance_rate=0.6,
        tokens_per_step=3.1,
        spec_s=STATS,
        tok_s=100.0,
        speedup=1.4,
        speedup_low=1.3,
        speedup_high=1.5,
        identical_to_target=(True, False),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def spec_record(*cells: SpecCell):
    spec = SpeculativeBench(
        model="ruyi-7b",
        target="E7B",
        target_exit=27,
        prompt_len=256,
        gen_len=128,
        rounds=10,
        interval="paired bootstrap",
        baselines=(SpecBaseline(batch_size=2, target_s=STATS, tok_s=70.0),),
        cells=cells or (cell(),),
    )
    return replace(record(), speculative=spec)


def test_a_speculative_record_round_trips(tmp_path):
    rec = spec_record(cell(), cell(k=1, tokens_per_step=1.0, speedup_low=None, speedup_high=None))
    assert load_bench(save_bench(rec, tmp_path / "bench.json")) == rec


def test_a_version_1_record_still_loads(tmp_path):
    data = asdict(record())
    data["schema_version"] = 1
    del data["speculative"]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    loaded = load_bench(path)
    assert loaded.schema_version == 1 and loaded.speculative is None and loaded.rows == record().rows


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(schema_version=1), "speculative is a schema 2 field, but schema_version is 1"),
        (lambda d: d.update(schema_version=3), "schema_version 3 is not supported (this evalkit reads 1, 2)"),
        (lambda d: _cell(d).update(acceptance_rate=1.5), "acceptance_rate is 1.5, expected a fraction from 0 to 1"),
        (lambda d: _cell(d).update(tokens_per_step=0.5), "tokens_per_step is 0.5, expected 1 to k + 1 = 5"),
        (lambda d: _cell(d).update(tokens_per_step=5.5), "tokens_per_step is 5.5, expected 1 to k + 1 = 5"),
        (lambda d: _cell(d).update(identical_to_target=[True]), "has 1 entries, expected one per sequence"),
        (lambda d: _cell(d).update(identical_to_target=[1, 0]), "identical_to_target[0] is 1, expected true"),
        (lambda d: _cell(d).update(speedup_low=2.0), "speedup_low and speedup_high are not an interval"),
        (lambda d: _cell(d).update(speedup_high=None), "speedup_low and speedup_high are not an interval"),
        (lambda d: _cell(d).update(k=0), "speculative.cells[0].k is 0, expected a whole number >= 1"),
        (lambda d: _cell(d).update(extra=1), "speculative.cells[0] has 'extra', which this evalkit does not know"),
        (lambda d: d["speculative"].update(rounds=0), "speculative.rounds is 0, expected a whole number >= 1"),
    ],
)
def test_a_bad_speculative_field_is_one_clear_error(tmp_path, edit, message):
    data = json.loads(json.dumps(asdict(spec_record())))
    edit(data)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    with pytest.raises(EvalkitError) as err:
        load_bench(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def _cell(data: dict) -> dict:
    return data["speculative"]["cells"][0]
