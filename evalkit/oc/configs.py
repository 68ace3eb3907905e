"""OpenCompass model configs: the familial branches and the baselines, each a plain dict.

`run` and the files under opencompass_configs/models/ both build their model dicts here, so a stock
`opencompass` run and `evalkit run` evaluate exactly the same models. Every checkpoint is a local
directory named by an environment variable (or `--baseline-path NAME=DIR`); nothing names a hub id.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evalkit.catalog.baselines import BASELINES, RUYI_GENERATION, Baseline, Generation
from evalkit.errors import EvalkitError, did_you_mean
from evalkit.load.checkpoint import TOKENIZER_VOCABS
from evalkit.records.checks import read_json

MODEL_TYPE = "evalkit.oc.model.FamilialBranchModel"
RUYI_ENV = "RUYI_7B_PATH"


# What each quantisation method needs importable, and how to install it.
_KERNELS = {
    "awq": (("awq",), "pip install autoawq"),
    "gptq": (("gptqmodel", "optimum"), "pip install gptqmodel optimum"),
}


def baseline_path(b: Baseline, overrides: Mapping[str, str] | None = None) -> Path:
    """The baseline's local directory, from --baseline-path or its environment variable; checked up front."""
    raw = (overrides or {}).get(b.name) or os.environ.get(b.env)
    if not raw:
        raise EvalkitError(
            f"no local checkpoint for baseline {b.name} ({b.display}); set {b.env}=DIR "
            f"or pass --baseline-path {b.name}=DIR"
        )
    path = Path(raw).expanduser()
    if not (path / "config.json").is_file():
        raise EvalkitError(
            f"baseline {b.name}: {path} is not a checkpoint directory (no config.json); "
            f"fix {b.env} or --baseline-path {b.name}=DIR"
        )
    if not any((path / name).is_file() for name in TOKENIZER_VOCABS):
        raise EvalkitError(
            f"baseline {b.name}: {path} has no tokenizer files (tokenizer.json, tokenizer.model or "
            f"vocab.json); fix {b.env} or --baseline-path {b.name}=DIR"
        )
    check_kernels(path)
    return path


def check_kernels(path: Path) -> None:
    """A quantised checkpoint needs its kernels; say which and how to install them before anything runs."""
    config_path = path / "config.json"
    config = read_json(config_path, "checkpoint config", "restore the checkpoint's config.json")
    quantization = config.get("quantization_config") if isinstance(config, dict) else None
    if not isinstance(config, dict) or not isinstance(quantization, dict | None):
        what = "a JSON object" if not isinstance(config, dict) else "a quantization_config that is an object"
        raise EvalkitError(f"{config_path} does not hold {what}; restore the checkpoint's config.json")
    method = str((quantization or {}).get("quant_method", "")).lower()
    if method not in _KERNELS:
        return
    modules, install = _KERNELS[method]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise EvalkitError(
            f"{path} is {method.upper()}-quantised and needs {', '.join(missing)}, which is not "
            f"installed; run `{install}` on a CUDA machine, or leave this baseline out"
        )


def family_slug(path: str | Path) -> str:
    """A short lower-case name for a checkpoint directory: 'AI-Flow-Ruyi-7B' -> 'ruyi-7b'."""
    name = Path(path).resolve().name
    if name.startswith("tiny-ruyi"):
        return "tiny-ruyi"
    slug = re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-")
    return slug.removeprefix("ai-flow-") or "model"


def model_config(
    *,
    abbr: str,
    path: str | Path,
    branch: str | None,
    generation: Generation,
    dtype: str | None = None,
    device: str = "cpu",
    batch_size: int = 8,
    shared_trunk: bool = False,
    run_branches: Sequence[str] = (),
    max_out_len: int | None = None,
) -> dict[str, Any]:
    """One OpenCompass model dict for `FamilialBranchModel`; plain values only, so stock runners can dump it."""
    cfg: dict[str, Any] = dict(
        type=MODEL_TYPE,
        abbr=abbr,
        path=str(path),
        branch=branch,
        dtype=dtype,
        device=device,
        batch_size=batch_size,
        max_out_len=generation.max_out_len if max_out_len is None else min(generation.max_out_len, max_out_len),
        max_seq_len=generation.max_seq_len,
        stop_words=list(generation.stop_words),
        chat_template=generation.chat_template,
        thinking=generation.thinking,
        shared_trunk=shared_trunk,
        run_branches=list(run_branches),
        run_cfg=dict(num_gpus=1 if str(device).startswith("cuda") else 0),
    )
    if generation.strip_reasoning:
        cfg["pred_postprocessor"] = dict(type="opencompass.utils.text_postprocessors.extract_non_reasoning_content")
    return cfg


def familial_configs(
    path: str | Path, branches: Sequence[str], *, display: str | None = None, plain: bool = False, **kwargs: Any
) -> list[dict[str, Any]]:
    """One model dict per branch, abbr '<family>-<branch>' (e.g. ruyi-7b-e3b), so each has its own files.

    `plain`: a plain (non-familial) checkpoint, a family of one whose branch is named after its directory;
    its abbr is the family's alone (e111k, not e111k-e111k).
    """
    slug = family_slug(path)
    return [
        model_config(
            abbr=slug if plain else f"{slug}-{b.lower()}",
            path=path,
            branch=b,
            generation=RUYI_GENERATION,
            run_branches=branches,
            **kwargs,
        )
        for b in branches
    ]


def baseline_configs(
    baselines: Sequence[Baseline], overrides: Mapping[str, str] | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    return [
        model_config(abbr=b.abbr, path=baseline_path(b, overrides), branch=None, generation=b.generation, **kwargs)
        for b in baselines
    ]


# --- for the config files under opencompass_configs/ (the stock `opencompass` CLI) --------------

RUYI_BRANCHES = ("E3B", "E4B", "E5B", "E6B", "E7B")


def env_path(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        raise EvalkitError(f"set {var} to the local checkpoint directory before loading this config")
    return value


def stock_settings() -> dict[str, Any]:
    """dtype, device and batch size for config files: EVALKIT_DTYPE / EVALKIT_DEVICE / EVALKIT_BATCH_SIZE."""
    return dict(
        dtype=os.environ.get("EVALKIT_DTYPE", "bf16"),
        device=os.environ.get("EVALKIT_DEVICE", "cuda"),
        batch_size=int(os.environ.get("EVALKIT_BATCH_SIZE", "16")),
    )


def ruyi_models() -> list[dict[str, Any]]:
    """Ruyi-7B's branches from $RUYI_7B_PATH: all five, or the names in EVALKIT_BRANCHES (e.g. E3B,E7B)."""
    names = [b.strip() for b in os.environ.get("EVALKIT_BRANCHES", ",".join(RUYI_BRANCHES)).split(",") if b.strip()]
    return familial_configs(env_path(RUYI_ENV), names, **stock_settings())


def available_baselines() -> list[dict[str, Any]]:
    """Every baseline whose environment variable is set."""
    return baseline_configs([b for b in BASELINES.values() if os.environ.get(b.env)], **stock_settings())


def exported_models(backend: str = "hf") -> list[dict[str, Any]]:
    """One branch written by `evalkit export-branch`, from $EXPORTED_BRANCH_PATH.

    backend "hf": evalkit's model class (a plain checkpoint is a family with one branch);
    backend "vllm": OpenCompass's stock VLLMwithChatTemplate on the same directory.
    """
    path = env_path("EXPORTED_BRANCH_PATH")
    slug = family_slug(path)
    if backend == "hf":
        return [model_config(abbr=slug, path=path, branch=None, generation=RUYI_GENERATION, **stock_settings())]
    if backend != "vllm":
        raise did_you_mean("backend", backend, ["hf", "vllm"])
    return [
        dict(
            type="opencompass.models.VLLMwithChatTemplate",
            abbr=f"{slug}-vllm",
            path=path,
            model_kwargs=dict(tensor_parallel_size=1, gpu_memory_utilization=0.85, dtype="bfloat16"),
            generation_kwargs=dict(temperature=0),
            stop_words=list(RUYI_GENERATION.stop_words),
            max_out_len=RUYI_GENERATION.max_out_len,
            max_seq_len=RUYI_GENERATION.max_seq_len,
            batch_size=64,
            run_cfg=dict(num_gpus=1),
        )
    ]
