"""OpenCompass model configs: the familial branches and the baselines, each a plain dict.

`run` and the files under opencompass_configs/ (through `evalkit.oc.stock`) both build their model dicts
here, so a stock `opencompass` run and `evalkit run` evaluate exactly the same models. Every checkpoint is
a local directory named by an environment variable (or `--baseline-path NAME=DIR`); nothing names a hub id.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evalkit.catalog.baselines import RUYI_GENERATION, Baseline, Generation
from evalkit.errors import EvalkitError
from evalkit.load.branches import Branch
from evalkit.load.checkpoint import TOKENIZER_VOCABS
from evalkit.records.checks import read_json

MODEL_TYPE = "evalkit.oc.model.FamilialBranchModel"


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
    path: str | Path, branches: Sequence[Branch], *, plain: bool = False, **kwargs: Any
) -> list[dict[str, Any]]:
    """One model dict per branch, abbr '<family>-<branch>' (e.g. ruyi-7b-e3b), so each has its own files.

    `branches` are the family's own values (from `parse_branches`), so every dict names its branch, and
    the run's branches, as the family does, however the user spelled them. `plain`: a plain
    (non-familial) checkpoint, a family of one whose branch is named after its directory; its abbr is
    the family's alone (e111k, not e111k-e111k).
    """
    slug = family_slug(path)
    names = [b.name for b in branches]
    return [
        model_config(
            abbr=slug if plain else f"{slug}-{name.lower()}",
            path=path,
            branch=name,
            generation=RUYI_GENERATION,
            run_branches=names,
            **kwargs,
        )
        for name in names
    ]


def baseline_configs(
    baselines: Sequence[Baseline], overrides: Mapping[str, str] | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    return [
        model_config(abbr=b.abbr, path=baseline_path(b, overrides), branch=None, generation=b.generation, **kwargs)
        for b in baselines
    ]
