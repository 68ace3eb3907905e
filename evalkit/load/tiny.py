"""The tiny Ruyi-format familial checkpoint: built from a seed with a local tokenizer, and the trained one.

Same config keys and tensor layout as AI-Flow-Ruyi-7B (`model.eelayers.*`, `model.norms.*`,
`lm_head.{i}.*`), 8 layers with exits at 2/4/6/7 (or another structure, `make_tiny(layers=, exits=)`,
`like="ruyi-7b"`). `make_tiny` writes one with random weights (tests use it); the embedded default is
one of these trained by `scripts/train_tiny.py` on templated items and shipped in the package
(`TRAINED_DIR`, with `training.json` saying what it was trained on). Nothing comes from a hub.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.load.checkpoint import FAMILIAL_KEYS
from evalkit.load.tokenizer import build_tokenizer
from evalkit.records.io import atomic_directory, write_bytes_atomic, write_text_atomic

# The trained tiny family shipped in the package (written by scripts/train_tiny.py).
TRAINED_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "tiny-ruyi"


@dataclass(frozen=True)
class TinySpec:
    flavour: str = "qwen2"  # "qwen2" | "qwen3"
    shared_heads: bool = False
    seed: int = 0
    num_layers: int = 8
    exits: tuple[int, ...] = (2, 4, 6, 7)
    hidden_size: int = 64
    intermediate_size: int = 128
    num_heads: int = 4
    num_kv_heads: int = 2
    vocab_size: int = 768
    init_std: float = 0.1  # larger than the usual 0.02 so greedy choices have clear margins


def ruyi_config(spec: TinySpec, vocab_size: int, eos_id: int, pad_id: int) -> dict[str, Any]:
    """A Ruyi-format config.json for the given shape."""
    config: dict[str, Any] = {
        "architectures": [f"Ruyi{spec.flavour.capitalize()}ForCausalLM"],
        "model_type": f"ruyi_{spec.flavour}",
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "num_key_value_heads": spec.num_kv_heads,
        "head_dim": spec.hidden_size // spec.num_heads,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "vocab_size": vocab_size,
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "max_window_layers": spec.num_layers,
        "attention_dropout": 0.0,
        "initializer_range": spec.init_std,
        "bos_token_id": pad_id,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "torch_dtype": "float32",
        "use_cache": True,
        "early_exit_points": list(spec.exits),
        "shared_heads": spec.shared_heads,
        "default_early_exit_point": spec.exits[-1],
    }
    if spec.flavour == "qwen3":
        config["attention_bias"] = False
    return config


# Real families' layer structures, built at tiny width: (layers, exits).
LIKE = {"ruyi-7b": (28, (11, 15, 19, 23, 27))}


def make_tiny(
    out_dir: str | Path,
    *,
    flavour: str = "qwen2",
    shared_heads: bool = False,
    seed: int = 0,
    layers: int | None = None,
    exits: tuple[int, ...] | list[int] | None = None,
    like: str | None = None,
    refine: float = 1.0,
) -> Path:
    """Write a tiny familial checkpoint (config, safetensors, tokenizer) to `out_dir`.

    `layers` and `exits` set its structure (default 8 layers, exits 2/4/6/7; exits alone imply
    layers = last exit + 1); `like="ruyi-7b"` takes Ruyi-7B's 28 layers and exits 11/15/19/23/27, at
    the tiny width, so structure-dependent costs (how much of the work a shared trunk saves) can be
    measured on a CPU. `refine` below 1 makes the deeper branches refine the shallow ones instead of
    being unrelated (`refine_deep_layers`), so branches mostly agree, as a trained family's do.
    """
    if flavour not in ("qwen2", "qwen3"):
        raise EvalkitError(f"unknown flavour {flavour!r}; valid flavours are qwen2, qwen3")
    spec = TinySpec(flavour=flavour, shared_heads=shared_heads, seed=seed)
    if like is not None:
        if like not in LIKE:
            raise EvalkitError(f"unknown structure {like!r} for --like; valid: {', '.join(LIKE)}")
        layers, exits = layers or LIKE[like][0], exits or LIKE[like][1]
    if layers is not None or exits is not None:
        spec = replace(spec, **_structure(layers, exits))
    return build_checkpoint(out_dir, spec, refine=refine)


def _structure(layers: int | None, exits: tuple[int, ...] | list[int] | None) -> dict[str, Any]:
    """num_layers and exits, checked: exits distinct, ascending, >= 0, the last one the last layer."""
    if exits is None:
        if layers != TinySpec.num_layers:
            raise EvalkitError(f"--layers {layers} needs --exits too (e.g. --exits ...,{(layers or 1) - 1})")
        return {}
    got = tuple(exits)
    n = got[-1] + 1 if layers is None and got else layers
    if n is None or n < 1 or not got or list(got) != sorted(set(got)) or got[0] < 0 or got[-1] != n - 1:
        raise EvalkitError(
            f"--exits {','.join(map(str, got)) or '(none)'} with --layers {n}: exits must be distinct, ascending, "
            f">= 0 and end at the last layer ({(n or 1) - 1}); e.g. --layers 28 --exits 11,15,19,23,27"
        )
    return {"num_layers": n, "exits": got}


def build_checkpoint(
    out_dir: str | Path, spec: TinySpec, *, refine: float = 1.0, tokenizer_corpus: Sequence[str] = ()
) -> Path:
    """Write the checkpoint into `out_dir` as a whole: it appears complete, or not at all.

    `tokenizer_corpus` adds lines to the tokenizer's training text (see `build_tokenizer`)."""
    if not 0 <= refine <= 1:
        raise EvalkitError(f"--refine must be from 0 to 1 (1: unrelated random branches), got {refine}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EvalkitError(f"{out} exists and is not empty; choose a new directory")
    with atomic_directory(out) as tmp:
        _write_checkpoint(tmp, spec, refine, tokenizer_corpus)
    return out


def refine_deep_layers(state: dict[str, Any], first_exit: int, scale: float) -> dict[str, Any]:
    """Every layer from the first exit up (trunk and branch layers) adds `scale` times as much to the
    residual stream, and every branch has the first branch's final norm and head: deeper branches then
    refine the shallow ones' predictions a little, and branches agree on most tokens."""
    out = {}
    for name, t in state.items():
        parts = name.split(".")
        deep = (name.startswith("model.layers.") and int(parts[2]) >= first_exit) or name.startswith("model.eelayers.")
        if deep and name.endswith(("o_proj.weight", "down_proj.weight")):
            t = t * scale
        elif name.startswith("lm_head.") and name != "lm_head.weight":
            t = state["lm_head.0.weight"]
        elif name.startswith("model.norms."):
            t = state["model.norms.0.weight"]
        out[name] = t.clone()
    return out


def _write_checkpoint(out: Path, spec: TinySpec, refine: float, tokenizer_corpus: Sequence[str]) -> None:
    import torch
    from safetensors.torch import save
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer_dir = build_tokenizer(out, vocab_size=spec.vocab_size, extra_corpus=tokenizer_corpus)
    tok = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    vocab = len(tok["model"]["vocab"]) + sum(t["id"] >= len(tok["model"]["vocab"]) for t in tok["added_tokens"])
    ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
    config = ruyi_config(spec, vocab, eos_id=ids["<|im_end|>"], pad_id=ids["<|endoftext|>"])

    # One plain model with extra layers supplies the trunk and, from its extra layers, the branch layers.
    n_extra = len(spec.exits) - 1
    plain = {k: v for k, v in config.items() if k not in FAMILIAL_KEYS}
    plain.pop("model_type"), plain.pop("architectures")
    plain["num_hidden_layers"] = spec.num_layers + n_extra
    plain["max_window_layers"] = spec.num_layers + n_extra
    torch.manual_seed(spec.seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(spec.flavour, **plain), dtype=torch.float32)
    source = model.state_dict()
    gen = torch.Generator().manual_seed(spec.seed + 1)

    state: dict[str, torch.Tensor] = {}
    for name, t in source.items():
        if name.startswith("model.layers."):
            layer = int(name.split(".")[2])
            rest = name.split(".", 3)[3]
            key = (
                f"model.layers.{layer}.{rest}"
                if layer < spec.num_layers
                else f"model.eelayers.{layer - spec.num_layers}.{rest}"
            )
            state[key] = t.clone()
        elif name == "model.embed_tokens.weight":
            state[name] = t.clone()
    for i in range(len(spec.exits)):
        state[f"model.norms.{i}.weight"] = 1.0 + 0.1 * torch.randn(spec.hidden_size, generator=gen)
    heads = 1 if spec.shared_heads else len(spec.exits)
    for i in range(heads):
        name = "lm_head.weight" if spec.shared_heads else f"lm_head.{i}.weight"
        state[name] = spec.init_std * torch.randn(vocab, spec.hidden_size, generator=gen)

    if refine != 1:
        state = refine_deep_layers(state, spec.exits[0], refine)
    weights = save({k: v.contiguous() for k, v in state.items()}, metadata={"format": "pt"})
    write_bytes_atomic(out / "model.safetensors", weights)
    write_text_atomic(out / "config.json", json.dumps(config, indent=2) + "\n")
    gen_cfg = {"eos_token_id": config["eos_token_id"], "pad_token_id": config["pad_token_id"], "do_sample": False}
    write_text_atomic(out / "generation_config.json", json.dumps(gen_cfg, indent=2) + "\n")


def cache_root() -> Path:
    return Path(os.environ.get("EVALKIT_HOME", Path.home() / ".cache" / "evalkit"))


def embedded_path() -> Path:
    """Where the embedded (trained) tiny family lives: in the package, written by scripts/train_tiny.py."""
    return TRAINED_DIR


def default_model_path() -> Path:
    """The embedded tiny family, shipped trained in the package; nothing is built or downloaded at run time."""
    path = embedded_path()
    if not all((path / f).is_file() for f in ("config.json", "model.safetensors", "tokenizer.json")):
        raise EvalkitError(
            f"the embedded tiny family is missing from {path}; reinstall evalkit, or rebuild it with "
            "`python scripts/train_tiny.py` from a source checkout"
        )
    return path


def training_summary(path: Path) -> str | None:
    """What a trained tiny family was trained on (its training.json), or None for any other checkpoint."""
    try:
        return str(json.loads((Path(path) / "training.json").read_text(encoding="utf-8"))["summary"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
