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
