"""Command line: each command is a thin shim over a Python function with the same arguments.

Heavy imports (torch, transformers, OpenCompass) happen inside the commands, so `--help` is instant.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from ._errors import EvalkitError

MODEL_HELP = "Checkpoint directory (default: the embedded tiny family, built on first use)."


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an EvalkitError into one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EvalkitError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="evalkit")
def main() -> None:
    """Evaluate and benchmark a familial early-exit LLM, branch by branch, against its baselines."""


@main.command()
@click.option("--model", "model", type=str, default=None, help=MODEL_HELP)
@click.option("--branches", default="all", show_default=True, help="all, names (E3B,E7B) or exit layers (11,27).")
@_user_errors
def branches(model: str | None, branches: str) -> None:
    """List the branches of a familial checkpoint."""
    from .family import branches_table

    click.echo(branches_table(model, branches=branches))


@main.command("export-branch")
@click.option("--branch", required=True, help="Branch name (E3B) or exit layer (11).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Directory to write.")
@click.option("--model", "model", type=str, default=None, help=MODEL_HELP)
@_user_errors
def export_branch(branch: str, out: str, model: str | None) -> None:
    """Write one branch as a plain checkpoint that stock transformers loads."""
    from .family import export_branch as _export

    path = _export(model, branch, out)
    click.echo(f"wrote {path}")


@main.command("make-tiny")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--flavour", type=click.Choice(["qwen2", "qwen3"]), default="qwen2", show_default=True)
@click.option("--shared-heads/--per-branch-heads", default=False, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@_user_errors
def make_tiny(out_dir: str, flavour: str, shared_heads: bool, seed: int) -> None:
    """Build a tiny Ruyi-format familial checkpoint (random weights, local tokenizer)."""
    from .tiny import make_tiny as _make

    path = _make(out_dir, flavour=flavour, shared_heads=shared_heads, seed=seed)
    click.echo(f"wrote {path}")
