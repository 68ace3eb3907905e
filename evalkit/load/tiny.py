"""The tiny Ruyi-format familial checkpoint: built from a seed with a local tokenizer, and the trained one.

Same config keys and tensor layout as AI-Flow-Ruyi-7B (`model.eelayers.*`, `model.norms.*`,
`lm_head.{i}.*`), 8 layers with exits at 2/4/6/7. `make_tiny` writes one with random weights (tests
use it); the embedded default is one of these trained by `scripts/train_tiny.py` on templated items
and shipped in the package (`TRAINED_DIR`, with `training.json` saying what it was trained on).
Nothing comes from a hub.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
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


def make_tiny(out_dir: str | Path, *, flavour: str = "qwen2", shared_heads: bool = False, seed: int = 0) -> Path:
    """Write a tiny familial checkpoint (config, safetensors, tokenizer) to `out_dir`."""
    if flavour not in ("qwen2", "qwen3"):
        raise EvalkitError(f"unknown flavour {flavour!r}; valid flavours are qwen2, qwen3")
    return build_checkpoint(out_dir, TinySpec(flavour=flavour, shared_heads=shared_heads, seed=seed))


def build_checkpoint(out_dir: str | Path, spec: TinySpec, tokenizer_corpus: Sequence[str] = ()) -> Path:
    """Write the checkpoint into `out_dir` as a whole: it appears complete, or not at all.

    `tokenizer_corpus` adds lines to the tokenizer's training text (see `build_tokenizer`)."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EvalkitError(f"{out} exists and is not empty; choose a new directory")
    with atomic_directory(out) as tmp:
        _write_checkpoint(tmp, spec, tokenizer_corpus)
    return out


def _write_checkpoint(out: Path, spec: TinySpec, tokenizer_corpus: Sequence[str]) -> None:
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
