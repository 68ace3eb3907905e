"""Reading a checkpoint directory: its config and its safetensors weights (single file or sharded)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.records.checks import RecordError, finite, flag, is_whole, number, obj, read_json, text, whole

FAMILIAL_TYPES = {"ruyi_qwen2": "qwen2", "ruyi_qwen3": "qwen3"}
PLAIN_TYPES = ("qwen2", "qwen3", "llama")
# Keys that only the familial format has; a branch's plain config drops them.
FAMILIAL_KEYS = ("early_exit_points", "shared_heads", "default_early_exit_point", "auto_map")
# Files that carry a tokenizer's vocabulary; a checkpoint needs one of them.
TOKENIZER_VOCABS = ("tokenizer.json", "tokenizer.model", "vocab.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "generation_config.json",
)


@dataclass(frozen=True)
class CheckpointFiles:
    root: Path
    config: dict[str, Any]
    weight_files: tuple[Path, ...]
    weight_map: dict[str, Path] | None  # tensor name -> shard, for sharded checkpoints

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))

    @property
    def flavour(self) -> str:
        """The plain architecture a branch is: qwen2, qwen3 or llama."""
        return FAMILIAL_TYPES.get(self.model_type, self.model_type)

    @property
    def is_familial(self) -> bool:
        return self.model_type in FAMILIAL_TYPES

    @property
    def is_quantized(self) -> bool:
        return self.config.get("quantization_config") is not None

    def fingerprint(self) -> str:
        """Identity of these weights: config plus each file's name, size and mtime.

        Two checkpoints with different weights never share a fingerprint, so caches keyed on it
        never mix their answers; hashing the metadata keeps this instant for 15 GB checkpoints.
        """
        h = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode())
        for f in self.weight_files:
            st = f.stat()
            h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]


def read_checkpoint(path: str | Path) -> CheckpointFiles:
    root = Path(path).expanduser()
    if not root.exists():
        raise EvalkitError(
            f"checkpoint directory {root} does not exist; pass --model pointing at a local directory "
            "with config.json and *.safetensors"
        )
    if not root.is_dir():
        raise EvalkitError(f"{root} is a file, not a checkpoint directory; pass the directory that holds config.json")
    config_path = root / "config.json"
    if not config_path.is_file():
        raise EvalkitError(f"{root} has no config.json; pass a Hugging Face-style checkpoint directory")
    config = read_json(config_path, "checkpoint config", "restore the checkpoint's config.json")
    if not isinstance(config, dict):
        raise EvalkitError(f"{config_path} does not hold a JSON object; restore the checkpoint's config")
    weight_files, weight_map = _weight_files(root)
    files = CheckpointFiles(root=root, config=config, weight_files=weight_files, weight_map=weight_map)
    _validate_config(files, config_path)
    return files


def _weight_files(root: Path) -> tuple[tuple[Path, ...], dict[str, Path] | None]:
    index = root / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_index(index)
        shards = tuple(sorted(set(weight_map.values())))
        for shard in shards:
            if not shard.is_file():
                raise EvalkitError(f"shard {shard.name} listed in {index.name} is missing from {root}")
        return shards, weight_map
    files = tuple(sorted(root.glob("*.safetensors")))
    if not files:
        raise EvalkitError(
            f"{root} has no *.safetensors weights; evalkit reads safetensors only "
            "(convert .bin weights with transformers' save_pretrained(safe_serialization=True))"
        )
    return files, None


def _read_index(index: Path) -> dict[str, Path]:
    """tensor name -> shard path, from a sharded checkpoint's index: an object whose `weight_map` maps
    each tensor name to a shard file in the checkpoint directory."""
    fix = "restore it from the checkpoint"
    data = read_json(index, "safetensors index", fix)
    try:
        found = obj(data, "the index")
        if "weight_map" not in found:
            raise RecordError("the index lacks 'weight_map'")
        mapping = obj(found["weight_map"], "weight_map")
        if not mapping:
            raise RecordError("weight_map lists no tensors")
        if "metadata" in found:
            finite(obj(found["metadata"], "metadata"), "metadata")
        out = {}
        for name, shard in mapping.items():
            where = f"weight_map[{name!r}]"
            shard_path = PurePosixPath(text(shard, where, empty=False))
            if shard_path.is_absolute() or ".." in shard_path.parts or any(c in shard for c in "\\\0"):
                raise RecordError(f"{where} is {shard!r}, expected a shard file inside the checkpoint directory")
            out[name] = index.parent / shard_path
    except RecordError as e:
        raise EvalkitError(f"{index} is not a valid safetensors index ({e}); {fix}") from None
    return out


def _validate_config(files: CheckpointFiles, config_path: Path) -> None:
    cfg, kind = files.config, files.model_type
    if kind not in FAMILIAL_TYPES and kind not in PLAIN_TYPES:
        valid = ", ".join([*FAMILIAL_TYPES, *PLAIN_TYPES])
        raise EvalkitError(f"{config_path}: model_type {kind!r} is not supported; supported types are {valid}")
    try:
        _check_fields(cfg)
    except RecordError as e:
        raise EvalkitError(f"{config_path}: {e}; restore the checkpoint's own config.json") from None
    n_layers = cfg["num_hidden_layers"]
    if not files.is_familial:
        return
    exits = cfg.get("early_exit_points")
    if not isinstance(exits, list) or not exits or not all(is_whole(e) for e in exits):
        raise EvalkitError(
            f"{config_path}: a {kind} config needs early_exit_points, a list of layer indices "
            f"such as [11, 15, 19, 23, 27]; got {json.dumps(exits)}"
        )
    if exits != sorted(set(exits)) or exits[0] < 0:
        raise EvalkitError(f"{config_path}: early_exit_points {exits} must be distinct, ascending and >= 0")
    if exits[-1] >= n_layers:
        raise EvalkitError(
            f"{config_path}: exit point {exits[-1]} is >= num_hidden_layers ({n_layers}); "
            f"exit points must lie in 0..{n_layers - 1}"
        )
    if exits[-1] != n_layers - 1:
        raise EvalkitError(
            f"{config_path}: the last exit point must be num_hidden_layers - 1 = {n_layers - 1}, got {exits[-1]}"
        )


# The config.json keys evalkit reads, or that set a tensor's shape, and what each must hold when present
# (num_hidden_layers always). A bool is not a number here, nor NaN or infinity; other keys pass to
# transformers as they are, checked only for NaN and infinity.
_WHOLE = {  # key -> lowest value
    "num_hidden_layers": 1,
    "hidden_size": 1,
    "intermediate_size": 1,
    "num_attention_heads": 1,
    "num_key_value_heads": 1,
    "vocab_size": 1,
    "head_dim": 1,
    "max_position_embeddings": 1,
    "max_window_layers": 0,
    "sliding_window": 1,
    "default_early_exit_point": 0,
    "bos_token_id": 0,
    "pad_token_id": 0,
}
_NULLABLE = frozenset({"head_dim", "sliding_window", "bos_token_id", "pad_token_id", "quantization_config"})
_NUMBERS = ("rms_norm_eps", "rope_theta")
_FLAGS = ("tie_word_embeddings", "shared_heads", "use_sliding_window", "attention_bias", "mlp_bias")
_TEXT = ("dtype", "torch_dtype", "hidden_act")
_OBJECTS = ("quantization_config", "rope_scaling")


def _check_fields(cfg: dict[str, Any]) -> None:
    """Each known key of a config holds what it must; a RecordError names the first that does not."""
    for key, value in cfg.items():
        finite(value, key)
    whole(cfg.get("num_hidden_layers"), "num_hidden_layers", low=1)
    for key, low in _WHOLE.items():
        if key in cfg:
            whole(cfg[key], key, null=key in _NULLABLE, low=low)
    for key in _NUMBERS:
        if key in cfg:
            number(cfg[key], key, low=0)
    for key in _FLAGS:
        if key in cfg:
            flag(cfg[key], key)
    for key in _TEXT:
        if key in cfg:
            text(cfg[key], key, null=True, empty=False)
    for key in _OBJECTS:
        if cfg.get(key) is not None:
            obj(cfg[key], key)
    if "eos_token_id" in cfg:
        eos = cfg["eos_token_id"]
        for i, token in enumerate(eos if isinstance(eos, list) else [eos]):
            whole(token, f"eos_token_id[{i}]" if isinstance(eos, list) else "eos_token_id", null=eos is None, low=0)
