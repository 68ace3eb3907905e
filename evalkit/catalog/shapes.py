"""Real model shapes (published config.json values) for benchmarks with random weights.

At a fixed output length, decoding speed depends on the shapes and dtype, not on the weight values,
so `bench --shape ruyi-7b --random-weights` measures Ruyi-7B's branches (and the baselines) without a
checkpoint (`evalkit.load.random_weights` builds them on the device). Yi is the Llama architecture. Nothing is
written to disk and nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evalkit.errors import did_you_mean

_QWEN25_7B: dict[str, Any] = {
    "model_type": "qwen2",
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
    "use_sliding_window": False,
    "max_window_layers": 28,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "pad_token_id": 151643,
}

_YI_6B: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "vocab_size": 64000,
    "max_position_embeddings": 4096,
    "rope_theta": 5000000.0,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
    "attention_bias": False,
    "mlp_bias": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}


@dataclass(frozen=True)
class Shape:
    """A named model shape: its config.json, and whether it is ours (familial) or a baseline."""

    name: str  # the --shape key, e.g. "ruyi-7b"
    title: str  # display name
    config: Mapping[str, Any]
    role: str  # "ours" | "baseline"


SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape(
            "ruyi-7b",
            "AI-Flow-Ruyi-7B",
            {
                **_QWEN25_7B,
                "model_type": "ruyi_qwen2",
                "early_exit_points": [11, 15, 19, 23, 27],
                "shared_heads": False,
                "default_early_exit_point": 27,
            },
            "ours",
        ),
        Shape("qwen2.5-7b", "Qwen2.5-7B-Instruct", _QWEN25_7B, "baseline"),
        Shape(
            "llama-3.1-8b",
            "Llama-3.1-8B-Instruct",
            {
                "model_type": "llama",
                "hidden_size": 4096,
                "intermediate_size": 14336,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "head_dim": 128,
                "vocab_size": 128256,
                "max_position_embeddings": 131072,
                "rope_theta": 500000.0,
                "rms_norm_eps": 1e-5,
                "rope_scaling": {
                    "rope_type": "llama3",
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 8192,
                },
                "tie_word_embeddings": False,
                "hidden_act": "silu",
                "attention_bias": False,
                "mlp_bias": False,
                "bos_token_id": 128000,
                "eos_token_id": 128009,
                "pad_token_id": 128001,
            },
            "baseline",
        ),
        Shape(
            "qwen3-8b",
            "Qwen3-8B",
            {
                "model_type": "qwen3",
                "hidden_size": 4096,
                "intermediate_size": 12288,
                "num_hidden_layers": 36,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "head_dim": 128,
                "vocab_size": 151936,
                "max_position_embeddings": 40960,
                "rope_theta": 1000000.0,
                "rms_norm_eps": 1e-6,
                "tie_word_embeddings": False,
                "hidden_act": "silu",
                "attention_bias": False,
                "use_sliding_window": False,
                "max_window_layers": 36,
                "bos_token_id": 151643,
                "eos_token_id": 151645,
                "pad_token_id": 151643,
            },
            "baseline",
        ),
        Shape("yi-6b", "Yi-6B", _YI_6B, "baseline"),
        Shape(
            "yi-9b",
            "Yi-9B",
            {**_YI_6B, "num_hidden_layers": 48, "rope_theta": 10000.0, "rms_norm_eps": 1e-6},
            "baseline",
        ),
        Shape(
            "yi-34b",
            "Yi-34B",
            {
                **_YI_6B,
                "hidden_size": 7168,
                "intermediate_size": 20480,
                "num_hidden_layers": 60,
                "num_attention_heads": 56,
                "num_key_value_heads": 8,
            },
            "baseline",
        ),
    )
}


def parse_shapes(spec: str) -> tuple[Shape, ...]:
    """ "ruyi-7b,qwen2.5-7b" or "all" -> shapes, in the order given ("all": the table's order)."""
    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    if names == ["all"]:
        return tuple(SHAPES.values())
    for n in names:
        if n not in SHAPES:
            raise did_you_mean("shape", n, ["all", *SHAPES])
    return tuple(SHAPES[n] for n in dict.fromkeys(names))
