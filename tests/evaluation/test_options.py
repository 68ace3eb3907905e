"""Each run option is declared once, as a RunConfig field; the CLI, evalkit.run and run_config.json follow."""

from __future__ import annotations

import inspect
from dataclasses import asdict, fields

import pytest
from click.testing import CliRunner

import evalkit
from evalkit import EvalkitError, RunConfig
from evalkit.cli import main
from evalkit.evaluation.options import OPTIONS, flag, json_types, parse_options


def test_every_field_is_a_cli_flag_and_a_keyword_of_run() -> None:
    command = main.commands["run"]
    flags = {opt for p in command.params for opt in p.opts}
    names = {f.name for f in fields(RunConfig)}
    assert {flag(n) for n in names} <= flags
    assert names <= set(inspect.signature(evalkit.run).parameters)
    # and nothing else: the command's only other flag is --resume
    assert flags - {flag(n) for n in names} - {f"--no-{flag(n)[2:]}" for n in names} == {"--resume"}


def test_every_field_round_trips_through_its_stored_json_types() -> None:
    stored = asdict(RunConfig())
    for name, value in stored.items():
        value = list(value) if isinstance(value, tuple) else value
        assert isinstance(value, json_types(name)), name


def test_an_unknown_option_names_the_valid_ones() -> None:
    with pytest.raises(EvalkitError, match="unknown run option 'sutes'.*suites"):
        parse_options({"sutes": "general"})


@pytest.mark.parametrize(
    "args, message",
    [
        (["--limit", "0"], "--limit must be at least 1 (items), got 0"),
        (["--batch-size", "-2"], "--batch-size must be at least 1 (rows), got -2"),
        (["--device", "tpu9"], "unknown device 'tpu9'"),
        (["--suites", "genral"], "unknown suite 'genral'"),
        (["--baselines", "gpt-5"], "unknown baseline 'gpt-5'"),
        (["--baseline-path", "yi-9b"], "--baseline-path 'yi-9b' must look like NAME=DIR"),
        (["--partition", "debug"], "--partition debug is a Slurm partition"),
        (["--slurm-arg=--mem=4G"], "--slurm-arg is a Slurm option, but the runner is local; add --runner slurm"),
        (["--quotatype", "spot", "--slurm-arg=-c4"], "--quotatype and --slurm-arg are Slurm options"),
        (["--runner", "slurm", "--slurm-arg", "time=1"], "--slurm-arg takes srun options such as --time=2:00:00"),
        (["--runner", "slurm", "--slurm-retries", "-1"], "--slurm-retries must be 0 or more, got -1"),
        (["--max-num-workers", "0"], "--max-num-workers must be at least 1 (workers), got 0"),
    ],
)
def test_bad_flags_are_one_line_before_anything_loads(tmp_path, args, message) -> None:
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "results").exists()


def test_options_parse_in_declaration_order() -> None:
    given = parse_options({"dtype": "bf16", "limit": 2, "model": "."})
    assert list(given) == [n for n in OPTIONS if n in given]


def test_only_scheduling_options_may_change_on_resume() -> None:
    """Where tasks run changes no result; everything else a resume must keep."""
    assert {n for n, o in OPTIONS.items() if o.reschedules} == {
        "runner",
        "max_num_workers",
        "group_tasks",
        "partition",
        "quotatype",
        "slurm_retries",
        "slurm_args",
    }
    assert all(OPTIONS[n].may_be_absent for n, o in OPTIONS.items() if o.reschedules)


def test_a_resume_may_move_the_run_to_other_workers() -> None:
    from evalkit.evaluation.api import _rescheduled
    from evalkit.evaluation.options import RunConfig

    on_slurm = RunConfig(runner="slurm", partition="debug", slurm_args=("--mem=40M",), slurm_retries=0)
    more_memory = _rescheduled(on_slurm, {"slurm_args": ("--mem=3G",)})
    assert (more_memory.partition, more_memory.slurm_args, more_memory.slurm_retries) == ("debug", ("--mem=3G",), 0)
    here = _rescheduled(on_slurm, {"runner": "local", "max_num_workers": 2})
    assert (here.runner, here.partition, here.slurm_args, here.max_num_workers) == ("local", None, (), 2)
    with pytest.raises(EvalkitError, match="--partition gpu is a Slurm partition, but the runner is local"):
        _rescheduled(on_slurm, {"runner": "local", "partition": "gpu"})
