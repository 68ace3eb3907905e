"""Families with random weights in a catalog shape, built directly on the device (no checkpoint, no disk).

At a fixed output length, decoding speed depends on the shapes and dtype, not on the weight values, so
the benchmark measures Ruyi-7B and the baselines this way without downloading anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from evalkit.catalog.shapes import SHAPES, Shape
from evalkit.load.checkpoint import FAMILIAL_KEYS
from evalkit.load.devices import resolve_dtype
from evalkit.load.family import Family


def random_family(shape: Shape | str, *, dtype: str = "bf16", device: str = "cpu", seed: int = 0) -> Any:
    """A `Family` with `shape`'s tensors, random and allocated directly on `device` (no checkpoint)."""
    spec = SHAPES[shape] if isinstance(shape, str) else shape
    torch_dtype = resolve_dtype(dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    tensors = {}
    for name, size in tensor_shapes(spec.config).items():
        if name.endswith("norm.weight") or ".norms." in name:
            tensors[name] = torch.ones(size, dtype=torch_dtype, device=device)
        else:
            t = torch.empty(size, dtype=torch_dtype, device=device)
            tensors[name] = t.normal_(0.0, 0.02, generator=gen)
    return Family.from_tensors(dict(spec.config), tensors, name=spec.name)


def tensor_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape of a checkpoint with this config (Ruyi format or plain)."""
    familial = str(config["model_type"]).startswith("ruyi_")
    flavour = str(config["model_type"]).removeprefix("ruyi_")
    plain = {k: v for k, v in config.items() if k != "model_type" and k not in FAMILIAL_KEYS}
    plain["num_hidden_layers"] = 1  # one layer is enough to read every per-layer shape
    plain.pop("max_window_layers", None)
    with torch.device("meta"):
        one = AutoModelForCausalLM.from_config(AutoConfig.for_model(flavour, **plain))
    layer = {k.split(".", 3)[3]: tuple(v.shape) for k, v in one.state_dict().items() if k.startswith("model.layers.0.")}
    embed = tuple(one.state_dict()["model.embed_tokens.weight"].shape)
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": embed}
    for j in range(config["num_hidden_layers"]):
        out.update({f"model.layers.{j}.{k}": s for k, s in layer.items()})
    hidden = (config["hidden_size"],)
    if not familial:
        out["model.norm.weight"] = hidden
        if not config.get("tie_word_embeddings"):
            out["lm_head.weight"] = embed
        return out
    exits = config["early_exit_points"]
    for i in range(len(exits) - 1):
        out.update({f"model.eelayers.{i}.{k}": s for k, s in layer.items()})
    for i in range(len(exits)):
        out[f"model.norms.{i}.weight"] = hidden
    heads = ["lm_head.weight"] if config.get("shared_heads") else [f"lm_head.{i}.weight" for i in range(len(exits))]
    out.update({h: embed for h in heads})
    return out
