"""`evalkit.run`: the run stage's entry point, the same call as `python -m evalkit run`.

Its keyword arguments are `RunConfig`'s fields (see `evalkit.evaluation.options`). Every argument is
checked here, before OpenCompass or torch load, so a bad flag fails at once; then `execute` runs the
settled config.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from evalkit.evaluation.options import OPTIONS, RunConfig, check_out, check_schedule, new_config, parse_options
from evalkit.evaluation.state import RunResult, read_run_config
from evalkit.load.branches import parse_branches, read_branches
from evalkit.load.devices import resolve_device


def run(*, resume: str | None = None, echo: Callable[[str], None] = print, **options: Any) -> RunResult:
    """Evaluate the branches and baselines on the suites; returns the record and where it was written.

    The options are `RunConfig`'s fields. One left out (or None) takes `RunConfig`'s default in a new
    run (device: "auto", the first GPU if there is one; data_dir: $COMPASS_DATA_CACHE, else the
    embedded fixtures). With `resume`, the run under `out` continues with its stored settings, and an
    option that differs from them is an error, except those that only say where tasks run (runner,
    workers, Slurm options): a resume may change those to get failed tasks through.
    """
    out = options.pop("out", None) or "."
    given = parse_options(options)
    if given.get("device") == "auto":  # "auto" names whatever this machine has, as a stored run does
        given["device"] = str(resolve_device("auto"))
    if resume is not None:
        stored = read_run_config(Path(out), resume)
        moved = {k: v for k, v in given.items() if OPTIONS[k].reschedules}
        stored.refuse_conflicts({k: v for k, v in given.items() if k not in moved})
        config, continued = _rescheduled(replace(stored.config, out=out), moved), stored
    else:
        check_out(Path(out))
        config, continued = new_config(given, out), None
        if config.model is not None:  # the checkpoint's files and branch names, read without torch
            parse_branches(config.branches, read_branches(config.model))
    config = replace(config, device=str(resolve_device(config.device)))  # torch, but not OpenCompass, yet
    from evalkit.evaluation.execute import execute  # OpenCompass loads here, after the checks

    return execute(config, resume=continued, echo=echo)


def _rescheduled(config: RunConfig, moved: dict[str, Any]) -> RunConfig:
    """A resumed run on other workers (a fix for the tasks that failed); leaving Slurm drops its settings."""
    if moved.get("runner", config.runner) != "slurm":
        config = replace(config, partition=None, quotatype=None, slurm_args=())
    config = replace(config, **moved)
    check_schedule(config)
    return config


def _signature() -> inspect.Signature:
    """run's signature as help() and editors show it: every option by name, then resume and echo."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter(name, keyword, default=None) for name in OPTIONS]
    params += [inspect.Parameter("resume", keyword, default=None), inspect.Parameter("echo", keyword, default=print)]
    return inspect.Signature(params, return_annotation=RunResult)


run.__signature__ = _signature()  # type: ignore[attr-defined]
