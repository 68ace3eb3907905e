"""The data check counts each dataset's items, and each group's, the way its OpenCompass loader reads them,
so a group with no items stops a run before anything loads instead of failing after inference."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.catalog.datasets import DATASETS
from evalkit.errors import EvalkitError
from evalkit.oc import suites
from evalkit.oc.datacheck import count_items
from evalkit.oc.fixtures import FIXTURE_GROUPS, materialise_fixture_root


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return materialise_fixture_root(tmp_path_factory.mktemp("compass"))


@pytest.fixture
def root(fixtures: Path, tmp_path: Path) -> Path:
    out = tmp_path / "root"
    shutil.copytree(fixtures, out)
    return out


def _check(root: Path, suites_: str = "all") -> str:
    with pytest.raises(EvalkitError) as caught:
        suites.check_data(root, suites_, FIXTURE_GROUPS)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"OpenCompass data under {root} would fail after inference")
    assert message.endswith(
        "; restore those files from the dataset's release (layout: opencompass_configs/datasets/README.md)"
    )
    return message


def _keep_mmlu_pro_categories(root: Path, keep: set[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = root / "data/mmlu_pro/data/test-00000-of-00001.parquet"
    table = pq.read_table(path)
    rows = [r for r in table.to_pylist() if r["category"] in keep]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


def test_the_fixtures_pass_without_importing_opencompass_or_datasets(fixtures):
    code = (
        "import sys\nfrom evalkit.oc import suites\nfrom evalkit.oc.fixtures import FIXTURE_GROUPS\n"
        f"suites.check_data({str(fixtures)!r}, 'all', FIXTURE_GROUPS)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'opencompass', 'datasets', 'torch'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# What emptying one file does, and how the error names it.
EMPTIED = [
    (
        "data/mmlu/test/astronomy_test.csv",
        "",
        "MMLU subject astronomy has no items (data/mmlu/test/astronomy_test.csv)",
    ),
    (
        "data/cmmlu/test/high_school_geography.csv",
        ",Question,A,B,C,D,Answer\n",
        "CMMLU subject high_school_geography has no items (data/cmmlu/test/high_school_geography.csv)",
    ),
    ("data/BBH/data/date_understanding.json", '{"examples": []}', "BBH task date_understanding has no items"),
    ("data/gsm8k/test.jsonl", "\n", "GSM8K has no items (data/gsm8k/test.jsonl)"),
    ("data/hellaswag/hellaswag.jsonl", "", "HellaSwag has no items"),
    ("data/winogrande/dev.jsonl", "", "WinoGrande has no items"),
    ("data/humaneval/human-eval-v2-20210705.jsonl", "", "HumanEval has no items"),
    ("data/mbpp/sanitized-mbpp.jsonl", '{"task_id": 1}\n' * 7, "MBPP has no items"),  # seven few-shot lines only
    ("data/gpqa/gpqa_diamond.csv", ",,,,,,,Question,A,B,C,D\n", "GPQA has no items"),
    ("data/math/math.json", "{}", "MATH has no items"),
    (
        "data/ARC/ARC-c/ARC-Challenge-Dev.jsonl",
        json.dumps({"question": {"stem": "q", "choices": [{"text": "a", "label": "A"}] * 3}, "answerKey": "A"}),
        "ARC-c has no items",  # the loader skips questions without four choices
    ),
]


@pytest.mark.parametrize(("path", "content", "message"), EMPTIED, ids=[p.split("/")[-1] for p, _, _ in EMPTIED])
def test_a_dataset_or_group_with_no_items_is_named(root, path, content, message):
    (root / path).write_text(content, encoding="utf-8")
    assert message in _check(root)


def test_an_mmlu_pro_category_missing_from_the_test_split_is_named(root):
    _keep_mmlu_pro_categories(root, {"math"})
    assert ": MMLU-Pro category biology has no items (data/mmlu_pro);" in _check(root, "general")


UNREADABLE = [
    ("data/gsm8k/test.jsonl", b'{"question": "\xff"}\n', "GSM8K: data/gsm8k/test.jsonl is not UTF-8 text (byte 14)"),
    (
        "data/mmlu/test/astronomy_test.csv",
        b"a,\xe9\n",
        "MMLU subject astronomy: data/mmlu/test/astronomy_test.csv is not",
    ),
    (
        "data/BBH/data/boolean_expressions.json",
        b"[]",
        'data/BBH/data/boolean_expressions.json holds no "examples" list',
    ),
    ("data/BBH/data/boolean_expressions.json", b"[" * 100_000, "boolean_expressions.json the file is not valid JSON"),
    ("data/math/math.json", b"[1, 2]", "MATH: data/math/math.json holds no JSON object of items"),
    ("data/ARC/ARC-c/ARC-Challenge-Dev.jsonl", b"{}\n", "ARC-Challenge-Dev.jsonl line 1 has no question.choices list"),
    ("data/ARC/ARC-c/ARC-Challenge-Dev.jsonl", b"\n", "ARC-Challenge-Dev.jsonl line 1 is not valid JSON"),
    ("data/gpqa/gpqa_diamond.csv", b"a,b\n", "GPQA: data/gpqa/gpqa_diamond.csv row 1 has 2 fields"),
]


@pytest.mark.parametrize(("path", "content", "message"), UNREADABLE, ids=[m[:30] for _, _, m in UNREADABLE])
def test_a_file_its_loader_cannot_read_is_named(root, path, content, message):
    (root / path).write_bytes(content)
    assert message in _check(root)


def test_an_mmlu_pro_root_without_a_test_split_is_named(root):
    (root / "data/mmlu_pro/data/test-00000-of-00001.parquet").unlink()
    assert "MMLU-Pro category math: data/mmlu_pro has no test split" in _check(root, "general")
    (root / "data/mmlu_pro/data/test-00000-of-00001.parquet").write_bytes(b"not parquet")
    assert "data/mmlu_pro file data/test-00000-of-00001.parquet has no readable category column" in _check(
        root, "general"
    )


def test_many_problems_are_one_line_with_a_count(root):
    for name in ("gsm8k/test.jsonl", "gpqa/gpqa_diamond.csv"):
        (root / "data" / name).write_text("", encoding="utf-8")
    (root / "data/math/math.json").write_text("", encoding="utf-8")  # not even JSON: named as unreadable
    for task in ("date_understanding", "boolean_expressions"):
        (root / f"data/BBH/data/{task}.json").write_text('{"examples": []}', encoding="utf-8")
    (root / "data/mmlu/test/astronomy_test.csv").write_text("", encoding="utf-8")
    message = _check(root)
    assert message.count("has no items") == 4 and "MATH: data/math/math.json the file is not valid JSON" in message
    assert message.endswith(
        " and 1 more; restore those files from the dataset's release (layout: opencompass_configs/datasets/README.md)"
    )


def test_missing_files_are_still_reported_first(root):
    (root / "data/gsm8k/test.jsonl").unlink()
    with pytest.raises(EvalkitError, match="OpenCompass data missing under .*data/gsm8k/test.jsonl"):
        suites.check_data(root, "stem", FIXTURE_GROUPS)


def test_every_dataset_but_a_scripted_loader_says_how_its_items_are_read():
    unread = [d.key for d in DATASETS if d.opencompass.items is None]
    assert unread == ["livecodebench"]  # its loader is a dataset script that only `datasets` can run
    for d in DATASETS:
        if d.opencompass.items is not None:
            assert d.opencompass.items.file in d.opencompass.files, d.key


def test_counts_on_the_fixtures(fixtures):
    def count(key: str, group: str | None = None) -> int | None:
        source = next(d for d in DATASETS if d.key == key).opencompass.items
        return count_items(fixtures / source.file.format(g=group), source.reader, group)

    assert count("mmlu", "astronomy") == 15 and count("mmlu_pro", "biology") == 15 and count("mmlu_pro", "law") == 0
    assert count("cmmlu", "elementary_mathematics") == 15 and count("bbh", "boolean_expressions") == 15
    assert count("gsm8k") == count("math") == count("gpqa") == count("arc_c") == 25 and count("mbpp") == 5
    assert count("humaneval") == 164
