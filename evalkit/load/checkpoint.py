"""Reading a checkpoint directory: its config and its safetensors weights (single file or sharded)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError

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
        return "quantization_config" in self.config

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
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EvalkitError(f"{config_path} is not valid JSON ({e}); restore the checkpoint's config") from None
    if not isinstance(config, dict):
        raise EvalkitError(f"{config_path} does not hold a JSON object; restore the checkpoint's config")
    weight_files, weight_map = _weight_files(root)
    files = CheckpointFiles(root=root, config=config, weight_files=weight_files, weight_map=weight_map)
    _validate_config(files, config_path)
    return files


def _weight_files(root: Path) -> tuple[tuple[Path, ...], dict[str, Path] | None]:
    index = root / "model.safetensors.index.json"
    if index.is_file():
        try:
            mapping = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            if not isinstance(mapping, dict) or not all(isinstance(s, str) for s in mapping.values()):
                raise ValueError("weight_map is not a map from tensor names to shard files")
        except (ValueError, KeyError, TypeError) as e:
            raise EvalkitError(
                f"{index} is not a valid safetensors index ({e}); restore it from the checkpoint"
            ) from None
        weight_map = {name: root / shard for name, shard in mapping.items()}
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


def _validate_config(files: CheckpointFiles, config_path: Path) -> None:
    cfg, kind = files.config, files.model_type
    if kind not in FAMILIAL_TYPES and kind not in PLAIN_TYPES:
        valid = ", ".join([*FAMILIAL_TYPES, *PLAIN_TYPES])
        raise EvalkitError(f"{config_path}: model_type {kind!r} is not supported; supported types are {valid}")
    n_layers = cfg.get("num_hidden_layers")
    if not isinstance(n_layers, int) or n_layers < 1:
        raise EvalkitError(f"{config_path}: num_hidden_layers must be a positive integer, got {n_layers!r}")
    if not files.is_familial:
        return
    exits = cfg.get("early_exit_points")
    if not isinstance(exits, list) or not exits or not all(isinstance(e, int) for e in exits):
        raise EvalkitError(
            f"{config_path}: a {kind} config needs early_exit_points, a list of layer indices "
            f"such as [11, 15, 19, 23, 27]; got {exits!r}"
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
