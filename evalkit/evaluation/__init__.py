"""Run stage: evaluate every branch of a family (and any baselines) on the suites through OpenCompass.

Owns `evalkit.run` itself (`api`), the run's options (`options`), its plan (`plan`), executing it
(`execute`), what a run directory remembers for `--resume` (`state`), the lock that keeps one process in
a run directory (`lock`) and what `evalkit run` prints (`summary`). It may import every stage below it:
catalog, records, load, engine, sandbox and oc; nothing below imports it.
"""

from evalkit.evaluation.api import run
from evalkit.evaluation.options import RunConfig, data_root, flag, value_type
from evalkit.evaluation.state import RunResult
from evalkit.evaluation.summary import summary

__all__ = ["RunConfig", "RunResult", "data_root", "flag", "run", "summary", "value_type"]
