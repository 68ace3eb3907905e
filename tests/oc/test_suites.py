"""Suites: OpenCompass configs load the embedded fixtures offline, data checks, abbr mapping, outcomes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.catalog.datasets import DATASETS, dataset_of
from evalkit.errors import EvalkitError
from evalkit.oc import suites
from evalkit.oc.fixtures import FIXTURE_GROUPS, FIXTURES, materialise_fixture_root
from evalkit.oc.outcomes import headline_score, item_outcomes

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return materialise_fixture_root(tmp_path_factory.mktemp("compass"))


@pytest.fixture(scope="module")
def offline_env(data_root: Path):
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**OFFLINE, "COMPASS_DATA_CACHE": str(data_root)}.items():
            mp.setenv(key, value)
        yield


# Test items per abbr in the fixtures (HumanEval is the real 164).
FIXTURE_SIZES = {
    "lukaemon_mmlu_astronomy": 15,
    "lukaemon_mmlu_high_school_geography": 15,
    "mmlu_pro_math": 15,
    "mmlu_pro_biology": 15,
    "cmmlu-high_school_geography": 15,
    "cmmlu-elementary_mathematics": 15,
    "bbh-date_understanding": 15,
    "bbh-boolean_expressions": 15,
    "ARC-c": 25,
    "hellaswag": 25,
    "winogrande": 25,
    "openai_humaneval": 164,
    "sanitized_mbpp": 5,
    "lcb_code_generation": 4,
    "GPQA_diamond": 25,
    "math": 25,
    "gsm8k": 25,
}


def test_every_dataset_loads_from_fixtures_offline(data_root: Path, offline_env: None) -> None:
    from opencompass.utils.build import build_dataset_from_cfg

    suites.check_data(data_root, "all", FIXTURE_GROUPS)
    configs = suites.dataset_configs("all", groups=FIXTURE_GROUPS)
    assert {dataset_of(c["abbr"])[0] for c in configs} == {d.key for d in DATASETS}
    sizes = {}
    for cfg in configs:
        dataset = build_dataset_from_cfg(cfg)
        sizes[cfg["abbr"]] = len(dataset.test)
        assert dataset.test[0][cfg["reader_cfg"]["output_column"]] not in (None, "")
    assert sizes == FIXTURE_SIZES


def test_limit_and_max_out_len(data_root: Path, offline_env: None) -> None:
    from opencompass.utils.build import build_dataset_from_cfg

    configs = suites.dataset_configs("stem", limit=2, max_out_len=32)
    assert [c["abbr"] for c in configs] == ["GPQA_diamond", "math", "gsm8k"]
    for cfg in configs:
        assert cfg["reader_cfg"]["test_range"] == "[0:2]"
        assert suites.max_out_len_of(cfg) == 32
        assert len(build_dataset_from_cfg(cfg).test) == 2
    full = {c["abbr"]: suites.max_out_len_of(c) for c in suites.dataset_configs("stem")}
    assert full == {"GPQA_diamond": None, "math": 1024, "gsm8k": 512}


def test_configs_are_plain_and_zero_shot() -> None:
    configs = suites.dataset_configs("all", groups=FIXTURE_GROUPS)
    json.dumps(configs)  # types are dotted import paths, so a config can be written, hashed and compared
    for cfg in configs:
        assert cfg["infer_cfg"]["retriever"]["type"].endswith("ZeroRetriever"), cfg["abbr"]
    full = suites.dataset_configs("general")
    assert sum(c["abbr"].startswith("lukaemon_mmlu_") for c in full) == 57
    assert sum(c["abbr"].startswith("bbh-") for c in full) == 27


def test_missing_file_names_file_and_location(data_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(data_root, root)
    (root / "data/gsm8k/test.jsonl").unlink()
    suites.check_data(root, "general,code", FIXTURE_GROUPS)
    with pytest.raises(EvalkitError) as err:
        suites.check_data(root, "stem", FIXTURE_GROUPS)
    msg = str(err.value)
    assert "data/gsm8k/test.jsonl" in msg and str(root) in msg
    assert "--data-dir" in msg and "COMPASS_DATA_CACHE" in msg and "\n" not in msg


def test_missing_groups_are_summarised(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match=r"data/mmlu/dev/\w+_dev\.csv.* and \d+ more"):
        suites.check_data(tmp_path, "general")


def test_unknown_suite_lists_valid_ones() -> None:
    with pytest.raises(EvalkitError, match="unknown suite 'maths'; valid suites are: general, code, stem"):
        suites.dataset_configs("maths")
    with pytest.raises(EvalkitError, match="unknown suite"):
        suites.check_data(".", "general,nope")


def test_unknown_group_lists_valid_ones() -> None:
    with pytest.raises(EvalkitError, match="unknown BBH group 'nope'; valid BBH groups are: temporal_sequences"):
        suites.dataset_configs("general", groups={"bbh": ["nope"]})


@pytest.mark.parametrize(
    ("abbr", "expected"),
    [
        ("lukaemon_mmlu_astronomy", ("mmlu", "astronomy")),
        ("mmlu_pro_computer_science", ("mmlu_pro", "computer_science")),
        ("cmmlu-high_school_geography", ("cmmlu", "high_school_geography")),
        ("bbh-boolean_expressions", ("bbh", "boolean_expressions")),
        ("ARC-c", ("arc_c", None)),
        ("hellaswag", ("hellaswag", None)),
        ("winogrande", ("winogrande", None)),
        ("openai_humaneval", ("humaneval", None)),
        ("sanitized_mbpp", ("mbpp", None)),
        ("lcb_code_generation", ("livecodebench", None)),
        ("GPQA_diamond", ("gpqa", None)),
        ("math", ("math", None)),
        ("gsm8k", ("gsm8k", None)),
    ],
)
def test_dataset_of(abbr: str, expected: tuple[str, str | None]) -> None:
    assert dataset_of(abbr) == expected


def test_dataset_of_unknown_abbr() -> None:
    with pytest.raises(EvalkitError, match="unknown OpenCompass dataset abbr 'lukaemon_mmlu_'"):
        dataset_of("lukaemon_mmlu_")


# One dataset per evaluator family. The scripted model answers every other fixture item correctly.
RUN_ABBRS = (
    "lukaemon_mmlu_astronomy",
    "bbh-date_understanding",
    "bbh-boolean_expressions",
    "sanitized_mbpp",
    "GPQA_diamond",
    "math",
)
# The scripted model knows the answers to every other item of answers.json (counted across a dataset's
# groups), and to every item that repeats one of those (templated questions can repeat): per config, its
# dataset's key and where its items start in that list.
EXPECTED = {
    "lukaemon_mmlu_astronomy": ("mmlu", 0),  # AccEvaluator: details formatted by OpenCompass
    "bbh-date_understanding": ("bbh", 0),  # BBHEvaluator_mcq: `correct`
    "bbh-boolean_expressions": ("bbh", FIXTURE_SIZES["bbh-date_understanding"]),  # BBHEvaluator (free form)
    "sanitized_mbpp": ("mbpp", 0),  # MBPPEvaluator: `is_correct` after really running the code
    "GPQA_diamond": ("gpqa", 0),  # GPQAEvaluator: `correct`
    "math": ("math", 0),  # MATHEvaluator v2 (MATH and GSM8K): `correct`
}


def _write_run_config(path: Path, table: Path) -> None:
    datasets = [c for c in suites.dataset_configs("all", groups=FIXTURE_GROUPS) if c["abbr"] in RUN_ABBRS]
    models = [
        dict(
            type="oc_scripted_model.ScriptedModel",
            abbr="scripted",
            path=str(table),
            default="I am not sure.",
            max_out_len=64,
            batch_size=8,
            run_cfg=dict(num_gpus=0),
        )
    ]
    # All datasets in one evaluation task: OpenCompass pretty-prints every task's config, seconds each.
    evaluation = dict(
        partitioner=dict(type="opencompass.partitioners.NaivePartitioner", n=len(datasets)),
        runner=dict(type="opencompass.runners.LocalRunner", task=dict(type="opencompass.tasks.OpenICLEvalTask")),
    )
    path.write_text(f"datasets = {datasets!r}\nmodels = {models!r}\neval = {evaluation!r}\n")


@pytest.mark.slow
def test_real_opencompass_run_outcomes(data_root: Path, tmp_path: Path) -> None:
    answers = json.loads((FIXTURES / "answers.json").read_text(encoding="utf-8"))
    table = tmp_path / "answers.json"
    known = [a for items in answers.values() for a in items[::2]]
    table.write_text(json.dumps(known))
    config = tmp_path / "run_config.py"
    _write_run_config(config, table)
    env = {
        **os.environ,
        **OFFLINE,
        "COMPASS_DATA_CACHE": str(data_root),
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    cli = [sys.executable, "-m", "opencompass.cli.main", str(config), "--debug", "-w", str(tmp_path / "out")]
    proc = subprocess.run(cli, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (results,) = (tmp_path / "out").glob("*/results/scripted")
    for abbr, (key, start) in EXPECTED.items():
        mine = answers[key][start : start + FIXTURE_SIZES[abbr]]
        expected = [int(a in known) for a in mine]
        assert 0 < sum(expected) < len(expected), abbr  # a test of right and wrong answers alike
        result = json.loads((results / f"{abbr}.json").read_text(encoding="utf-8"))
        key, _ = dataset_of(abbr)
        outcomes = item_outcomes(key, result)
        assert outcomes == [(str(i), float(s)) for i, s in enumerate(expected)], abbr
        assert headline_score(key, result) == pytest.approx(100 * sum(expected) / len(expected))


def test_item_outcomes_shapes() -> None:
    formatted = {
        "accuracy": 50.0,
        "details": {
            "type": "GEN",
            "1": {"predictions": "B", "references": "C"},
            "0": {"predictions": "A", "references": "A"},
        },
    }
    assert item_outcomes("mmlu", formatted) == [("0", 1.0), ("1", 0.0)]
    sampled = {
        "humaneval_pass@1": 50.0,
        "details": [
            {"example_abbr": "openai_humaneval_0", "is_correct": [True, False]},
            {"example_abbr": "openai_humaneval_1", "is_correct": [False, False]},
        ],
    }
    assert item_outcomes("humaneval", sampled) == [("0", 0.5), ("1", 0.0)]
    with pytest.raises(EvalkitError, match="no per-item details"):
        item_outcomes("gsm8k", {"accuracy": 10.0})
    with pytest.raises(EvalkitError, match="has no 'score'"):
        headline_score("bbh", {"error": "predictions and references have different length"})


@pytest.mark.parametrize("suite", ["general", "code", "stem"])
def test_stock_cli_config_files_match_suites(suite: str) -> None:
    from mmengine.config import Config

    path = Path(__file__).resolve().parents[2] / "opencompass_configs" / "datasets" / f"{suite}.py"
    stock = Config.fromfile(str(path), format_python_code=False)[f"{suite}_datasets"]
    assert [d["abbr"] for d in stock] == [c["abbr"] for c in suites.dataset_configs(suite)]
