"""Family-grouped tasks: how FamilyPartitioner cuts a run into tasks, joins shards, and names failures."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("opencompass")

from evalkit.errors import EvalkitError  # noqa: E402
from evalkit.oc import partition  # noqa: E402
from evalkit.oc.partition import FamilyPartitioner, Shard, merge_shards, shard_bounds  # noqa: E402
from evalkit.oc.workers import Workers, failure_cause  # noqa: E402

BRANCHES = [dict(abbr=f"fam-e{i}", path="/ckpt/fam", branch=f"E{i}") for i in (1, 2, 3)]
BASELINE = dict(abbr="base", path="/ckpt/base", branch=None)


def _dataset(abbr: str, test_range: str | None = None) -> dict:
    reader = dict(input_columns=["q"], output_column="a")
    if test_range:
        reader["test_range"] = test_range
    return dict(abbr=abbr, type="x", reader_cfg=reader, infer_cfg={}, eval_cfg={})


def _pairs(tasks) -> list[tuple[str, str]]:
    return [(m["abbr"], d["abbr"]) for t in tasks for m, ds in zip(t["models"], t["datasets"], strict=True) for d in ds]


def _partition(tmp_path, datasets, *, sizes=None, models=None, **kwargs):
    cfg = dict(models=models or BRANCHES + [BASELINE], datasets=datasets, work_dir=str(tmp_path))
    p = FamilyPartitioner(out_dir=str(tmp_path / "predictions"), **kwargs)
    if sizes is not None:
        partition._SIZES.clear()
        original = partition.dataset_size
        partition.dataset_size = lambda d: sizes[d["abbr"]]
        try:
            return p, p.partition(**cfg, out_dir=p.out_dir)
        finally:
            partition.dataset_size = original
    return p, p.partition(**cfg, out_dir=p.out_dir)


@pytest.mark.parametrize(
    ("size", "workers", "least", "bounds"),
    [
        (100, 4, 16, [(0, 25), (25, 50), (50, 75), (75, 100)]),
        (20, 8, 16, [(0, 16), (16, 20)]),
        (16, 8, 16, [(0, 16)]),
        (1000, 1, 16, [(0, 1000)]),
        (14042, 8, 16, [(i * 1756, min((i + 1) * 1756, 14042)) for i in range(8)]),
    ],
)
def test_shards_cover_the_dataset_once(size, workers, least, bounds):
    got = shard_bounds(size, workers, least)
    assert got == bounds
    assert [i for a, b in got for i in range(a, b)] == list(range(size))


def test_a_family_runs_all_its_branches_in_each_task_and_baselines_stay_alone(tmp_path):
    datasets = [_dataset(n) for n in ("d0", "d1", "d2")]
    _, tasks = _partition(tmp_path, datasets, num_worker=2, split=False)

    family = [t for t in tasks if t["models"][0]["abbr"].startswith("fam")]
    baseline = [t for t in tasks if t["models"][0]["abbr"] == "base"]
    assert len(family) == 2 and len(baseline) == 2  # at most one task per worker and family
    for t in family:  # each dataset runs every branch back to back, so the trunk's cache serves the siblings
        pairs = _pairs([t])
        by_dataset = [pairs[i : i + 3] for i in range(0, len(pairs), 3)]
        assert all([m for m, _ in chunk] == ["fam-e1", "fam-e2", "fam-e3"] for chunk in by_dataset)
        assert all(len({d for _, d in chunk}) == 1 for chunk in by_dataset)
    assert all({m["abbr"] for m in t["models"]} == {"base"} for t in baseline)
    every = _pairs(tasks)
    assert sorted(every) == sorted((m["abbr"], d["abbr"]) for m in BRANCHES + [BASELINE] for d in datasets)


def test_finished_pairs_are_left_out(tmp_path):
    (tmp_path / "predictions" / "fam-e2").mkdir(parents=True)
    (tmp_path / "predictions" / "fam-e2" / "d0.json").write_text("{}")
    _, tasks = _partition(tmp_path, [_dataset("d0")], num_worker=2, split=False, models=BRANCHES)
    assert _pairs(tasks) == [("fam-e1", "d0"), ("fam-e3", "d0")]


def test_large_datasets_are_cut_into_shards_within_their_limit(tmp_path):
    datasets = [_dataset("big", "[0:40]"), _dataset("small")]
    p, tasks = _partition(tmp_path, datasets, sizes={"big": 40, "small": 3}, num_worker=2, min_shard=4, models=BRANCHES)

    assert p.shards == {"big": [Shard("big", 0, 20), Shard("big", 20, 40)]}
    pieces = {d["abbr"]: d for t in tasks for ds in t["datasets"] for d in ds}
    assert sorted(pieces) == ["big@0-20", "big@20-40", "small"]
    assert pieces["big@20-40"]["reader_cfg"]["test_range"] == "[0:40][20:40]"  # within --limit's range
    assert datasets[0]["reader_cfg"]["test_range"] == "[0:40]"  # the config given is not changed
    assert len(tasks) == 2 and all(len(t["models"]) % 3 == 0 for t in tasks)


def test_evaluation_waits_for_predictions(tmp_path):
    (tmp_path / "predictions" / "fam-e1").mkdir(parents=True)
    (tmp_path / "predictions" / "fam-e1" / "d0.json").write_text("{}")
    p = FamilyPartitioner(
        out_dir=str(tmp_path / "results"), num_worker=2, split=False, requires_dir=str(tmp_path / "predictions")
    )
    tasks = p.partition(models=BRANCHES, datasets=[_dataset("d0")], work_dir=str(tmp_path), out_dir=p.out_dir)
    assert _pairs(tasks) == [("fam-e1", "d0")]


def _write(path, items):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({str(i): item for i, item in enumerate(items)}))


def test_shards_are_joined_into_the_file_an_unsharded_task_writes(tmp_path):
    preds = tmp_path / "predictions"
    shards = {"big": [Shard("big", 0, 2), Shard("big", 2, 3)]}
    _write(preds / "m1" / "big@0-2.json", [{"prediction": "a"}, {"prediction": "b"}])
    _write(preds / "m1" / "big@2-3.json", [{"prediction": "c"}])
    _write(preds / "m1" / "big@0-5.json", [{"prediction": "stale"}])  # another layout's, left by a resume
    _write(preds / "m2" / "big@0-2.json", [{"prediction": "x"}, {"prediction": "y"}])

    unfinished = merge_shards(preds, ["m1", "m2"], shards)

    assert unfinished == ["m2/big"]
    whole = {"0": {"prediction": "a"}, "1": {"prediction": "b"}, "2": {"prediction": "c"}}
    assert (preds / "m1" / "big.json").read_text() == json.dumps(whole, indent=4)  # as OpenCompass dumps it
    assert sorted(p.name for p in (preds / "m1").iterdir()) == ["big.json"]
    assert (preds / "m2" / "big@0-2.json").is_file() and not (preds / "m2" / "big.json").exists()


def test_a_damaged_shard_is_one_line(tmp_path):
    preds = tmp_path / "predictions"
    _write(preds / "m" / "big@0-2.json", [{"prediction": "a"}])
    (preds / "m" / "big@2-3.json").write_text('{"0": {"predic')
    with pytest.raises(EvalkitError, match=r"big@2-3.json is not valid JSON .*delete it and resume the run"):
        merge_shards(preds, ["m"], {"big": [Shard("big", 0, 2), Shard("big", 2, 3)]})


SLURM = Workers(runner="slurm", partition="debug")


@pytest.mark.parametrize(
    ("log", "code", "cause"),
    [
        (  # what srun printed here when a job passed its --mem (slurm-wlm 22.05)
            "slurmstepd-vm: error: StepId=2.0 exceeded memory limit (217481216 > 31457280), being killed\n"
            "srun: Exceeded job memory limit\nsrun: error: vm: task 0: Killed\n",
            137,
            "Slurm killed it for exceeding its memory limit; ask for more with --slurm-arg=--mem=...",
        ),
        (
            "slurmstepd-vm: error: *** STEP 3.0 ON vm CANCELLED AT 2026-12-02T07:33:48 DUE TO TIME LIMIT ***\n"
            "srun: error: vm: task 0: Terminated\n",
            143,
            "Slurm cancelled it at its time limit; ask for more with --slurm-arg=--time=...",
        ),
        (
            "srun: error: invalid partition specified: nope\n"
            "srun: error: Unable to allocate resources: Invalid partition name specified\n",
            1,
            "Slurm has no partition 'debug'; fix --partition",
        ),
        ("/bin/sh: 1: srun: not found\n", 127, "srun is not on the workers' PATH"),
        (
            "loading\nerror: checkpoint /x is not a directory; fix --model\n",
            2,
            "checkpoint /x is not a directory; fix --model",
        ),
        ("Traceback (most recent call last):\n  ...\nValueError: bad shape\n", 1, "ValueError: bad shape"),
        ("", 9, "exit code 9"),
    ],
)
def test_a_failed_task_says_why(log, code, cause):
    assert failure_cause(log, code, SLURM) == cause


def test_shards_signals_are_joined_with_their_predictions_and_only_then(tmp_path):
    from evalkit.oc.signals import load_signals, signals_path

    preds, shards = tmp_path / "predictions", {"big": [Shard("big", 0, 2), Shard("big", 2, 3)]}
    sig = {"mean_logprob": -0.5, "min_logprob": -1.0, "first_entropy": 0.25}
    for model, parts in (("m1", ("big@0-2", "big@2-3")), ("m2", ("big@0-2",))):
        for i, name in enumerate(parts):
            _write(preds / model / f"{name}.json", [{"prediction": name}])
            path = signals_path(tmp_path, model, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"signals": {f"{name}-prompt": {**sig, "answer_tokens": i + 1}}}))

    merge_shards(preds, ["m1", "m2"], shards)

    joined = load_signals(signals_path(tmp_path, "m1", "big"))
    assert sorted(joined) == ["big@0-2-prompt", "big@2-3-prompt"]
    assert joined["big@2-3-prompt"].answer_tokens == 2 and joined["big@0-2-prompt"].mean_logprob == -0.5
    assert sorted(p.name for p in signals_path(tmp_path, "m1", "big").parent.iterdir()) == ["big.json"]
    # m2 is unfinished: its shard's signals stay where its task wrote them
    assert signals_path(tmp_path, "m2", "big@0-2").is_file() and not signals_path(tmp_path, "m2", "big").exists()
