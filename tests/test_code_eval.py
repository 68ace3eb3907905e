"""HumanEval scoring, score-code and the sandboxed OpenCompass evaluators, on real problems."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit._errors import EvalkitError
from evalkit.cli import main
from evalkit.code_eval import read_humaneval_problems, score_humaneval
from evalkit.sandbox import Limits

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
    rows = [{"task_id": "HumanEval/0", "completion": good},
            {"task_id": "HumanEval/0", "completion": "    return True\n"},
            {"task_id": "HumanEval/2", "completion": "    import sys\n    sys.exit(0)\n"},  # exiting is failing
            {"task_id": "HumanEval/2", "completion": "    while True:\n        pass\n"}]
    score = score_humaneval(_write(tmp_path / "s.jsonl", rows), tmp_path / "out.jsonl", limits=QUICK)
    assert [r["status"] for r in score.results] == ["passed", "failed", "failed", "timeout"]
    assert score.results[1]["result"].startswith("failed: AssertionError")
    assert score.results[3]["result"] == "timed out"
    assert score.pass_at_k == {"pass@1": pytest.approx(0.25)}
    assert (tmp_path / "out.jsonl").is_file()


@pytest.mark.parametrize("content, message", [
    ('{"task_id": "HumanEval/0"\n', "not valid JSON"),
    ('{"task_id": "HumanEval/0"}\n', "string fields task_id and completion"),
    ('{"task_id": "HumanEval/999", "completion": ""}\n', "unknown task_id 'HumanEval/999'"),
    ("\n", "has no samples"),
])
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


def test_score_code_cli_bad_file_is_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["score-code", "humaneval", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: samples file '{tmp_path / 'missing.jsonl'}' not found; pass a JSONL file of "
        '{"task_id": ..., "completion": ...} lines']


@pytest.fixture(scope="module")
def oc():
    return pytest.importorskip("evalkit.oc_evaluators")


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
    assert details["1"]["result"] == "failed: SyntaxError: 'return' outside function"
    assert details["0"]["task_id"] == "HumanEval/0" and details["0"]["prompt"] == p0["prompt"]


def test_oc_mbpp_evaluator_details(oc):
    preds = ["```python\ndef add(a, b):\n    return a + b\n```", "[BEGIN]\ndef add(a, b):\n    return a - b\n[DONE]",
             "```python\ndef add(a, b):\n    while True:\n        pass\n```",
             "```python\ndef add(a, b):\n    return a / 0\n```",
             "```python\ndef add(a, b):\n    return float(a + b)\n```"]
    out = oc.SandboxedMBPPEvaluator(limits=QUICK).score(preds, ["assert add(1, 2) == 3"] * 5)
    verdicts = [d["result"] for d in out["details"].values()]
    assert verdicts == ["pass", "wrong_answer", "timeout", "failed", "wrong_answer"]  # 3.0 is not int 3
    assert out["score"] == 20.0 and out["pass"] == 1 and out["wrong_answer"] == 2
    assert out["details"]["0"]["programs"][1] == "assert __opencompass_type_aware_equal(add(1, 2), 3)"


def test_oc_lcb_evaluator_runs_opencompass_tests_in_the_sandbox(oc):
    # The stock constructor loads the LiveCodeBench release from disk; give it two problems instead.
    ev = object.__new__(oc.SandboxedLCBEvaluator)
    ev.__dict__.update(timeout=3, memory_limit_bytes=1 << 30, extractor_version="v1", pred_postprocessor=None,
                       _dataset_replica_idx=0)
    ev.dataset = [
        {"question_id": "stdin", "evaluation_sample": json.dumps(
            {"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]})},
        {"question_id": "call", "evaluation_sample": json.dumps(
            {"inputs": ["[1, 2]", "[5, 6]"], "outputs": ["3", "11"], "fn_name": "add"})},
    ]
    preds = ["```python\na, b = map(int, input().split())\nprint(a + b)\n```",
             "```python\nclass Solution:\n    def add(self, xs):\n        return sum(xs)\n```",
             "```python\nprint(1)\n```",
             "```python\nimport socket\nsocket.create_connection(('127.0.0.1', 80))\n```"]
    out = ev.score(preds, ["stdin", "call", "stdin", "stdin"])
    assert [d["correct"] for d in out["details"]] == [True, True, False, False]
    assert out["pass@1"] == 50.0
    assert json.loads(out["details"][2]["final_metadata"])["error_message"] == "Wrong Answer"
    # Refused by the empty network namespace, or by the audit hook where namespaces are unavailable.
    error = json.loads(out["details"][3]["final_metadata"])["error"]
    assert "Network is unreachable" in error or "network access is disabled in the evalkit sandbox" in error


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
