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
        speedup_ci=(1.3, 1.5),
        identical_to_target=(True, False),
        comparison="ruyi-7b speculative E7B batch 2",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def spec_record(*cells: SpecCell):
    spec = SpeculativeBench(
        model="ruyi-7b",
        target="E7B",
        target_exit=27,
        prompt_len=256,
        gen_len=128,
        baselines=(SpecBaseline(batch_size=2, target_s=STATS, tok_s=70.0),),
        cells=cells or (cell(),),
    )
    return replace(record(), speculative=spec)


def test_a_speculative_record_round_trips(tmp_path):
    rec = spec_record(cell(), cell(k=1, tokens_per_step=1.0, speedup=0.8, speedup_ci=(0.7, 0.9)))
    assert load_bench(save_bench(rec, tmp_path / "bench.json")) == rec


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_record_without_the_section_still_loads(tmp_path, version):
    data = asdict(record())
    data["schema_version"] = version
    del data["speculative"]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    loaded = load_bench(path)
    assert loaded.schema_version == version and loaded.speculative is None and loaded.rows == record().rows


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(schema_version=2), "speculative is a version 3 field, but schema_version is 2"),
        (lambda d: d.update(schema_version=4), "schema_version 4 is not supported (this evalkit reads 1, 2, 3)"),
        (lambda d: _cell(d).update(acceptance_rate=1.5), "acceptance_rate is 1.5, expected a fraction from 0 to 1"),
        (lambda d: _cell(d).update(tokens_per_step=0.5), "tokens_per_step is 0.5, expected 1 to k + 1 = 5"),
        (lambda d: _cell(d).update(tokens_per_step=5.5), "tokens_per_step is 5.5, expected 1 to k + 1 = 5"),
        (lambda d: _cell(d).update(identical_to_target=[True]), "has 1 entries, expected one per sequence"),
        (lambda d: _cell(d).update(identical_to_target=[1, 0]), "identical_to_target[0] is 1, expected true"),
        (lambda d: _cell(d).update(speedup_ci=[2.0, 1.0]), "speedup_ci is [2, 1], expected low <= high"),
        (lambda d: _cell(d).update(speedup_ci=[1.0]), "speedup_ci has 1 values, expected an interval"),
        (lambda d: _cell(d).pop("comparison"), "speculative.cells[0] lacks 'comparison'"),
        (lambda d: _cell(d).update(k=0), "speculative.cells[0].k is 0, expected a whole number >= 1"),
        (lambda d: _cell(d).update(extra=1), "speculative.cells[0] has 'extra', which this evalkit does not know"),
        (lambda d: d["speculative"].update(target_exit=-1), "speculative.target_exit is -1, expected a whole number"),
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


def test_plausibility_flags_a_differing_sequence_and_a_speedup_beyond_its_bound():
    from evalkit.benchmark.plausible import spec_flags

    spec = spec_record(
        cell(),  # one of two sequences differs
        cell(k=2, tokens_per_step=1.5, speedup=2.0, speedup_ci=(1.8, 2.2), identical_to_target=(True, True)),
        cell(k=8, tokens_per_step=4.0, speedup=1.5, speedup_ci=(1.2, 1.9), identical_to_target=(True, True)),
    ).speculative
    flags = spec_flags(spec, "fp32")
    assert [(f.kind, f.where) for f in flags] == [
        ("speculative-differs", "ruyi-7b E3B k=4 batch 2"),
        ("speculative-above-bound", "ruyi-7b E3B k=2 batch 2"),
    ]
    assert "1 of 2 sequences differ from E7B's own greedy output (a bug in fp32)" in flags[0].message
    assert "in bf16 a near-tie rounded the other way" in spec_flags(spec, "bf16")[0].message
