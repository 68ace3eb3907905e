"""Judged programs: honest answers of every plain type pass, and every fixture's reference solution passes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest
from _lcb import lcb_evaluator

from evalkit.sandbox.code import prompt_needed, read_humaneval_problems
from evalkit.sandbox.judged import exec_judged, free_names, lcb_stub, run_judged
from evalkit.sandbox.runner import Limits

QUICK = Limits(timeout_s=5.0, cpu_s=3, memory_mb=1024, max_procs=8)
ROOT = Path(__file__).resolve().parents[2]

ANSWERS = """
def answer(kind):
    return {
        "float": 0.1 + 0.2,
        "nan": float("nan"),
        "inf": -float("inf"),
        "complex": complex(1, -2),
        "nested": [[1, [2.5, [None]]], [], [[["deep"]]]],
        "set": {3, 1, 2},
        "frozenset": frozenset({(1, 2), "a"}),
        "tuple": (1, ("a", None), []),
        "none": None,
        "odd": "tab\\t nul\\x00 é 😀 \\u200b \\ud800 end",
        "bytes": b"\\x00\\xff",
        "dict": {1: "a", "b": [2], (3, 4): {5}},
        "bool": True,
        "big": 3**300,
    }[kind]
"""

CHECKS = """
import math
assert answer("float") == 0.1 + 0.2 and answer("float") != 0.3
assert math.isclose(answer("float"), 0.3) and abs(answer("float") - 0.3) < 1e-9
assert math.isnan(answer("nan")) and answer("nan") != answer("nan")
assert answer("inf") == -math.inf and answer("inf") < -1e308
assert answer("complex") == 1 - 2j
assert answer("nested") == [[1, [2.5, [None]]], [], [[["deep"]]]]
assert answer("set") == {1, 2, 3} and type(answer("set")) is set
assert answer("frozenset") == frozenset({"a", (1, 2)}) and type(answer("frozenset")) is frozenset
assert answer("tuple") == (1, ("a", None), []) and type(answer("tuple")) is tuple
assert answer("none") is None
assert answer("odd") == "tab\\t nul\\x00 é 😀 \\u200b \\ud800 end"
assert answer("bytes") == b"\\x00\\xff"
assert answer("dict") == {1: "a", "b": [2], (3, 4): {5}}
assert answer("bool") is True and answer("big") == 3**300
assert all(isinstance(x, int) for x in answer("nested")[0][:1])
"""


def test_answers_of_every_plain_type_reach_the_judge_as_themselves():
    [verdict] = run_judged([exec_judged(ANSWERS, setup="", tests=CHECKS, proxies=("answer",), limits=QUICK)])
    assert verdict.passed, verdict
    assert verdict.calls == CHECKS.count("answer(")


def test_the_judge_says_where_its_tests_failed_and_that_a_silent_test_proves_nothing():
    items = [
        exec_judged(ANSWERS, setup="", tests='assert answer("float") == 0.3', proxies=("answer",), limits=QUICK),
        exec_judged(ANSWERS, setup="", tests='x = answer("none")\nx.append(1)', proxies=("answer",), limits=QUICK),
        exec_judged(ANSWERS, setup="", tests="assert True", proxies=("answer",), limits=QUICK),
    ]
    wrong, broke, silent = run_judged(items)
    assert (wrong.failure, wrong.reason) == ("wrong answer", "AssertionError (tests.py line 1)")
    assert broke.reason == "AttributeError: 'NoneType' object has no attribute 'append' (tests.py line 2)"
    assert (silent.failure, silent.reason) == ("wrong answer", "the tests never called the completion")


def test_mbpp_names_are_the_completions_functions_never_builtins_or_the_setups():
    tests = (
        "import re\nassert f(sorted([2, 1])) == [1, 2]\nassert math.floor(g()) == 3\ndef h(): return f\nassert helper"
    )
    assert set(free_names(tests)) == {"f", "math", "g", "helper"}


def test_the_prompt_runs_in_the_judge_only_where_the_tests_read_its_names():
    problems = read_humaneval_problems()
    needed = [t for t, p in problems.items() if prompt_needed(p["prompt"], p["test"], p["entry_point"])]
    assert needed == ["HumanEval/32", "HumanEval/38", "HumanEval/50"]  # poly, encode_cyclic, encode_shift
    assert prompt_needed("x = compute()\nif x:\n    pass\n", "assert f(1)", "f")  # does more than define


def test_lcb_stand_ins_have_the_shape_of_the_code():
    assert "class Solution" in lcb_stub("class Solution:\n    def f(self, x): ...", "f")
    assert lcb_stub("def f(x): ...", "f").startswith("def f(*args)")
    assert "sys.stdin.read()" in lcb_stub("print(input())", None)


def _fixture_items():
    spec = importlib.util.spec_from_file_location("fixture_items", ROOT / "scripts" / "_fixture_items_code_stem.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def oc():
    return pytest.importorskip("evalkit.oc.evaluators")


def test_every_mbpp_fixture_reference_solution_passes(oc):
    items = _fixture_items().MBPP
    preds = [f"```python\n{code}\n```" for _, code, _ in items]
    out = oc.SandboxedMBPPEvaluator().score(preds, ["\n".join(asserts) for _, _, asserts in items])
    assert [d["result"] for d in out["details"].values()] == ["pass"] * len(items), out["details"]
    assert out["score"] == 100.0


def test_every_lcb_fixture_reference_solution_passes(oc):
    items = _fixture_items().LCB
    dataset = [
        {
            "question_id": item["question_id"],
            "evaluation_sample": json.dumps(
                {
                    "inputs": [i for i, _ in item["public"] + item["private"]],
                    "outputs": [o for _, o in item["public"] + item["private"]],
                    "fn_name": item["func_name"],
                }
            ),
        }
        for item in items
    ]
    out = lcb_evaluator(oc, dataset).score(
        [f"```python\n{item['solution']}\n```" for item in items], [item["question_id"] for item in items]
    )
    assert [d["correct"] for d in out["details"]] == [True] * len(items), out["details"]
    assert out["pass@1"] == 100.0


_FALLBACK_DRIVER = """
import sys, warnings
sys.path.insert(0, sys.argv[1])
warnings.simplefilter("ignore")
from evalkit.sandbox.judged import exec_judged, run_judged
from evalkit.sandbox.runner import Limits
limits = Limits(timeout_s=10.0, cpu_s=5, memory_mb=512, max_procs=8)
sources = [
    "def f(x):\\n    return x * 2\\n",
    "def f(x):\\n    class E:\\n        def __eq__(s, o):\\n            return True\\n    return E()\\n",
    "import os\\ndef f(x):\\n    return os.getuid()\\n",
]
tests = ["assert f([1]) == [1, 1]", "assert f(2) == 4", "assert f(0) == 65534"]
items = [exec_judged(s, setup="", tests=t, proxies=("f",), limits=limits) for s, t in zip(sources, tests)]
print([(v.status, v.failure) for v in run_judged(items, isolation="rlimits")])
"""


def _system_python() -> str | None:
    """A Python >= 3.10 outside /root, which the fallback's unprivileged uid can run; None if there is none."""
    for path in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(path, os.X_OK) and not os.path.realpath(path).startswith("/root"):
            ok = subprocess.run([path, "-c", "import sys; sys.exit(sys.version_info < (3, 10))"], capture_output=True)
            if ok.returncode == 0:
                return path
    return None


@pytest.mark.skipif(
    os.geteuid() != 0 or _system_python() is None, reason="needs root and a system Python nobody can run"
)
def test_judged_programs_run_in_the_fallback_too():
    python = _system_python()
    assert python is not None
    proc = subprocess.run(
        [python, "-I", "-c", _FALLBACK_DRIVER, str(ROOT)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    verdicts = proc.stdout.strip().splitlines()[-1]
    assert verdicts == "[('passed', None), ('failed', 'not plain data'), ('passed', None)]"  # as nobody
