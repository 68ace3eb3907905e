"""What the config files under opencompass_configs/ build for the stock `opencompass` CLI, from the environment.

Every setting is an environment variable, read and checked here while OpenCompass loads the config
file, so a bad value stops the command there with one line naming the variable and the fix (exit 2),
not later inside a task. The dicts come from the functions `evalkit run` uses (`evalkit.oc.model_configs`,
`evalkit.oc.suites`), and branch lists mean what `run --branches` means:

    RUYI_7B_PATH            a familial checkpoint directory; its branches come from its own files
    EVALKIT_BRANCHES        all (default), names in any case (E3B,e7b) or exit layers (11,27)
    EXPORTED_BRANCH_PATH    one branch written by `evalkit export-branch`
    EVALKIT_BACKEND         hf (default: evalkit's model class) or vllm, for the exported branch
    EVALKIT_DTYPE           bf16 (default), fp16 or fp32
    EVALKIT_DEVICE          cuda (default), cuda:N or cpu
    EVALKIT_BATCH_SIZE      16 (default)
    EVALKIT_SUITES          general,code,stem (default), or some of them
    EVALKIT_LIMIT           the first N items of each dataset (default: all)
    <BASELINE>_PATH         each baseline whose variable is set (evalkit.catalog.baselines)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evalkit.catalog.baselines import BASELINES, RUYI_GENERATION
from evalkit.errors import EvalkitError, did_you_mean
from evalkit.load.branches import parse_branches, read_branches
from evalkit.load.checkpoint import TOKENIZER_VOCABS, read_checkpoint
from evalkit.load.devices import DTYPE_NAMES, check_device, check_dtype
from evalkit.oc.driver import dotted
from evalkit.oc.evaluators import use_sandboxed_evaluators
from evalkit.oc.model_configs import baseline_configs, familial_configs, family_slug, model_config
from evalkit.oc.suites import dataset_configs

FAMILY_ENV = "RUYI_7B_PATH"
EXPORTED_ENV = "EXPORTED_BRANCH_PATH"
BACKENDS = ("hf", "vllm")
Configs = list[dict[str, Any]]


def cli(*builders: Callable[[], Configs]) -> Configs:
    """The builders' configs, in order. For a config file: a bad setting ends the `opencompass` command
    with one line on stderr and exit 2, as evalkit's own CLI does, never a traceback."""
    try:
        return [config for build in builders for config in build()]
    except EvalkitError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    except OSError as e:
        if e.filename is None:
            raise
        print(f"error: cannot read {e.filename} ({e.strerror}); check its permissions", file=sys.stderr)
        raise SystemExit(EvalkitError.exit_code) from None


def family_models() -> Configs:
    """One model per branch of the family in $RUYI_7B_PATH that EVALKIT_BRANCHES selects (default all)."""
    files = read_checkpoint(checkpoint_dir(FAMILY_ENV))
    with _named("EVALKIT_BRANCHES"):
        chosen = parse_branches(os.environ.get("EVALKIT_BRANCHES", "all"), read_branches(files))
    return familial_configs(files.root, chosen, plain=not files.is_familial, **settings())


def available_baselines() -> Configs:
    """Every baseline whose environment variable is set."""
    return baseline_configs([b for b in BASELINES.values() if os.environ.get(b.env)], **settings())


def exported_models(backend: str | None = None) -> Configs:
    """The branch in $EXPORTED_BRANCH_PATH, written by `evalkit export-branch`.

    backend (default $EVALKIT_BACKEND, else "hf") "hf": evalkit's model class; "vllm": OpenCompass's stock
    VLLMwithChatTemplate on the same directory (in EVALKIT_DTYPE; vLLM batches by itself).
    """
    backend = backend or os.environ.get("EVALKIT_BACKEND", "hf")
    if backend not in BACKENDS:
        with _named("EVALKIT_BACKEND"):
            raise did_you_mean("backend", backend, list(BACKENDS))
    path = checkpoint_dir(EXPORTED_ENV)
    files = read_checkpoint(path)
    if files.is_familial:
        names = ", ".join(b.name for b in read_branches(files))
        raise EvalkitError(
            f"{EXPORTED_ENV}={path} is a whole family (branches {names}), not one exported branch; write "
            f"one with `evalkit export-branch --model {path} --branch NAME --out DIR` and point "
            f"{EXPORTED_ENV} at DIR, or evaluate every branch with eval_ruyi.py and {FAMILY_ENV}"
        )
    slug = family_slug(path)
    stock = settings()
    if backend == "hf":
        return [model_config(abbr=slug, path=path, branch=None, generation=RUYI_GENERATION, **stock)]
    return [
        dict(
            type="opencompass.models.VLLMwithChatTemplate",
            abbr=f"{slug}-vllm",
            path=str(path),
            model_kwargs=dict(tensor_parallel_size=1, gpu_memory_utilization=0.85, dtype=DTYPE_NAMES[stock["dtype"]]),
            generation_kwargs=dict(temperature=0),
            stop_words=list(RUYI_GENERATION.stop_words),
            max_out_len=RUYI_GENERATION.max_out_len,
            max_seq_len=RUYI_GENERATION.max_seq_len,
            batch_size=64,
            run_cfg=dict(num_gpus=1),
        )
    ]


def datasets() -> Configs:
    """The suites' dataset configs (EVALKIT_SUITES, EVALKIT_LIMIT): code scored in the sandbox, classes as
    import paths (for Config.dump)."""
    with _named("EVALKIT_SUITES"):
        suites = os.environ.get("EVALKIT_SUITES", "general,code,stem")
        configs = dataset_configs(suites, limit=_positive("EVALKIT_LIMIT", None))
    return [dotted(use_sandboxed_evaluators(d)) for d in configs]


def settings() -> dict[str, Any]:
    """dtype, device and batch size: EVALKIT_DTYPE / EVALKIT_DEVICE / EVALKIT_BATCH_SIZE."""
    with _named("EVALKIT_DTYPE"):
        dtype = check_dtype(os.environ.get("EVALKIT_DTYPE", "bf16"))
    with _named("EVALKIT_DEVICE"):
        device = check_device(os.environ.get("EVALKIT_DEVICE", "cuda"))
    if device == "auto":  # OpenCompass gives a task its GPUs from the config, before any device is chosen
        raise EvalkitError("EVALKIT_DEVICE=auto cannot be settled in a config file; set it to cuda, cuda:N or cpu")
    return dict(dtype=dtype, device=device, batch_size=_positive("EVALKIT_BATCH_SIZE", 16))


def checkpoint_dir(var: str) -> Path:
    """The checkpoint directory in `var`, absolute, checked as far as its files go without reading weights."""
    raw = os.environ.get(var)
    if not raw:
        raise EvalkitError(f"set {var} to the local checkpoint directory before loading this config")
    path = Path(raw).expanduser().absolute()
    if not (path / "config.json").is_file():
        raise EvalkitError(
            f"{var}={raw} is not a checkpoint directory (no config.json there); set {var} to the directory "
            "that holds config.json and *.safetensors"
        )
    if not any((path / name).is_file() for name in TOKENIZER_VOCABS):
        raise EvalkitError(
            f"{var}={raw} has no tokenizer files (none of {', '.join(TOKENIZER_VOCABS)}); copy the tokenizer "
            "of the model it was trained from into it"
        )
    with _named(var):
        read_branches(path)  # config.json and every safetensors header parse, and every branch has its tensors
    return path


# --- internals ---------------------------------------------------------------------------------


@contextmanager
def _named(var: str) -> Iterator[None]:
    """An error about a value read from `var` says which variable held it."""
    try:
        yield
    except EvalkitError as e:
        raise EvalkitError(f"{var}: {e}") from None


def _positive(var: str, default: int | None) -> int | None:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise EvalkitError(f"{var}={raw} is not a positive whole number; set it to one (e.g. 8) or unset it")
    return value
