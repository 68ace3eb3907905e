"""One familial early-exit checkpoint becomes a family of independent branch models.

Branch `i` with exit point `e` computes embed -> layers[0..e-1] -> eelayers[i] -> norms[i] -> head[i]
(the last branch runs every layer). That is exactly a plain `*ForCausalLM` with `e + 1` layers whose
last layer is the branch layer, so each branch is built as one, from views of the family's tensors.
A branch is a value you hold; nothing is selected through global state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import safe_open

from evalkit.errors import EvalkitError, did_you_mean
from evalkit.load.branches import Branch, branch_sources, exit_points, make_branches, parse_branches
from evalkit.load.checkpoint import (
    FAMILIAL_KEYS,
    TOKENIZER_FILES,
    TOKENIZER_VOCABS,
    CheckpointFiles,
    _validate_config,
    read_checkpoint,
)
from evalkit.load.devices import resolve_device, resolve_dtype
from evalkit.records.io import atomic_directory, write_bytes_atomic

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class Family:
    """The tensors of one checkpoint (one copy) and the branches they define."""

    files: CheckpointFiles
    tensors: dict[str, torch.Tensor]
    dtype: torch.dtype
    device: torch.device
    branches: tuple[Branch, ...] = field(default=())
    # In-memory families have no files to fingerprint: each gets an identity of its own.
    memory_id: str | None = None

    @classmethod
    def from_tensors(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor], *, name: str) -> Family:
        """A family over tensors already in memory (e.g. random weights of a real shape); no files are read.

        `config` is a config.json as a dict (Ruyi format or plain); `name` labels the family (its `path`
        is `<name>`). The tensors are used as they are: their dtype and device become the family's.
        """
        files = CheckpointFiles(root=Path(f"<{name}>"), config=dict(config), weight_files=(), weight_map=None)
        _validate_config(files, files.root / "config.json")
        first = next((t for t in tensors.values() if t.is_floating_point()), None)
        if first is None:
            raise EvalkitError(f"family {name!r} has no floating-point tensors; pass the model's weights")
        family = cls(
            files=files, tensors=dict(tensors), dtype=first.dtype, device=first.device, memory_id=uuid.uuid4().hex
        )
        family.branches = make_branches(files, {k: t.numel() for k, t in family.tensors.items()})
        return family

    @property
    def path(self) -> Path:
        return self.files.root

    @property
    def flavour(self) -> str:
        return self.files.flavour

    @property
    def exit_points(self) -> tuple[int, ...]:
        return exit_points(self.files)

    @cached_property
    def identity(self) -> str:
        """Cache key for this family's answers: the weights' fingerprint (or in-memory id), dtype and device."""
        if self.memory_id:
            return f"mem-{self.memory_id}:{str(self.dtype).removeprefix('torch.')}:{self.device}"
        return checkpoint_identity(self.files, self.dtype, self.device)

    @cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        if not any((self.path / name).is_file() for name in TOKENIZER_VOCABS):
            raise EvalkitError(
                f"{self.path} has no tokenizer files (none of {', '.join(TOKENIZER_VOCABS)}); copy "
                "the tokenizer of the model it was trained from into it"
            )
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # transformers warns that it does not know `ruyi_*` configs
        try:
            return AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError) as e:
            reason = " ".join(str(e).split())
            raise EvalkitError(
                f"cannot load the tokenizer from {self.path} ({reason}); restore the checkpoint's tokenizer files"
            ) from None
        finally:
            hf_logging.set_verbosity(verbosity)

    def branch(self, name_or_layer: str | int | Branch) -> Branch:
        if isinstance(name_or_layer, Branch):
            return name_or_layer
        return parse_branches(str(name_or_layer), self.branches)[0]

    def branch_config(self, branch: str | int | Branch) -> PretrainedConfig:
        """The plain transformers config of one branch: `num_hidden_layers = exit_layer + 1`."""
        from transformers import AutoConfig

        b = self.branch(branch)
        raw = {k: v for k, v in self.files.config.items() if k not in FAMILIAL_KEYS}
        # Derived per-layer lists must be rebuilt for the new depth, or validation fails.
        for key in ("layer_types", "architectures", "_name_or_path", "transformers_version"):
            raw.pop(key, None)
        raw.pop("model_type")
        raw["num_hidden_layers"] = b.num_layers
        if "max_window_layers" in raw:
            raw["max_window_layers"] = min(raw["max_window_layers"], b.num_layers)
        raw["dtype"] = str(self.dtype).removeprefix("torch.")
        raw.pop("torch_dtype", None)
        config = AutoConfig.for_model(self.flavour, **raw)
        config.architectures = [type(config).__name__.replace("Config", "ForCausalLM")]
        return config

    def branch_state_dict(self, branch: str | int | Branch) -> dict[str, torch.Tensor]:
        """The branch's weights under plain names; the tensors are the family's own (no copy)."""
        b = self.branch(branch)
        sources = branch_sources(self.files, self.tensors.keys(), b.index, b.exit_layer)
        return {name: self.tensors[src] for name, src in sources.items()}

    def branch_model(self, branch: str | int | Branch, *, attn_implementation: str | None = None) -> PreTrainedModel:
        """A stock transformers `*ForCausalLM` for one branch, sharing this family's tensors."""
        from transformers import AutoModelForCausalLM

        b = self.branch(branch)
        config = self.branch_config(b)
        config._attn_implementation = resolve_attention(attn_implementation)
        if self.files.is_quantized:
            return _load_quantized(self.path, config, self.device)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, dtype=self.dtype)
        state = self.branch_state_dict(b)
        missing = sorted(set(model.state_dict()) - set(state))
        if missing:
            raise EvalkitError(f"{self.path}: tensor {missing[0]} (branch {b.name}) is missing from the checkpoint")
        model.load_state_dict(state, strict=True, assign=True)
        # Non-persistent buffers (rotary frequencies) are not in any checkpoint: rebuild them for real.
        with torch.device(self.device):
            model.model.rotary_emb = type(model.model.rotary_emb)(config=config)
        stale = [name for name, buf in model.named_buffers() if buf.is_meta]
        if stale:
            raise RuntimeError(f"buffers left on the meta device: {stale}")
        _load_generation_config(model, self.path)
        return model.eval()

    def export_branch(self, branch: str | int | Branch, out_dir: str | Path) -> Path:
        """Write one branch as a plain checkpoint that stock `from_pretrained` loads unchanged (all or nothing)."""
        b = self.branch(branch)
        out = Path(out_dir)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise EvalkitError(f"{out} exists and is not empty; choose a new --out directory")
        model = self.branch_model(b)
        with atomic_directory(out) as tmp, _no_progress_bars():
            model.save_pretrained(tmp, safe_serialization=True)
            for name in TOKENIZER_FILES:
                if (self.path / name).is_file():
                    write_bytes_atomic(tmp / name, (self.path / name).read_bytes())
        return out


def load_family(path: str | Path, *, dtype: str | torch.dtype | None = None, device: str = "cpu") -> Family:
    """Read a local checkpoint directory into a `Family`.

    A Ruyi-format checkpoint (`ruyi_qwen2` / `ruyi_qwen3`) gives one branch per exit point; a plain
    Qwen2, Qwen3 or Llama checkpoint gives a family with one branch. `dtype=None` keeps the stored dtype.
    """
    files = read_checkpoint(path)
    torch_dtype = stored_dtype(dtype, files)
    dev = resolve_device(device)
    tensors = {} if files.is_quantized else _read_tensors(files, torch_dtype, dev)
    family = Family(files=files, tensors=tensors, dtype=torch_dtype, device=dev)
    family.branches = make_branches(files, {k: t.numel() for k, t in tensors.items()} if tensors else None)
    if tensors:
        _check_shapes(family)
    return family


def checkpoint_identity(files: CheckpointFiles, dtype: torch.dtype, device: str | torch.device) -> str:
    """The identity of a checkpoint's answers (weights fingerprint, dtype, device), known before loading it."""
    return f"{files.fingerprint()}:{str(dtype).removeprefix('torch.')}:{torch.device(device)}"


def resolve_attention(requested: str | None) -> str:
    """flash_attention_2 when asked for and installed; otherwise PyTorch SDPA."""
    if requested in (None, "sdpa"):
        return "sdpa"
    if requested == "flash_attention_2":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is None:
            raise EvalkitError(
                "flash_attention_2 needs flash-attn; install it with `pip install -e .[gpu]` or use sdpa"
            )
        return requested
    if requested == "eager":
        return requested
    raise did_you_mean("attention implementation", requested, ["sdpa", "flash_attention_2", "eager"])


# --- internals ---------------------------------------------------------------------------------


def stored_dtype(dtype: str | torch.dtype | None, files: CheckpointFiles) -> torch.dtype:
    """The dtype asked for, else the one config.json states, else fp32."""
    return resolve_dtype(dtype or files.config.get("dtype") or files.config.get("torch_dtype") or "float32")


def _read_tensors(files: CheckpointFiles, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    """One tensor at a time, cast as it is read, so peak memory stays near one copy of the weights."""
    from safetensors import SafetensorError

    tensors: dict[str, torch.Tensor] = {}
    for path in files.weight_files:
        try:
            with safe_open(str(path), framework="pt", device=str(device)) as f:
                for name in f.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                    t = f.get_tensor(name)
                    tensors[name] = t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t
        except SafetensorError as e:
            raise EvalkitError(
                f"cannot read {path} ({e}); the file is truncated or not safetensors: restore it from the checkpoint"
            ) from None
    return tensors


def _check_shapes(family: Family) -> None:
    """Every branch tensor has the shape config.json implies, so a config that does not match the weights
    (hidden_size, vocab_size, heads, ...) fails on load, not in the middle of a run."""
    from transformers import AutoModelForCausalLM

    config = family.branch_config(family.branches[-1])
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in AutoModelForCausalLM.from_config(config).state_dict().items()}
    source = {id(t): name for name, t in family.tensors.items()}
    for b in family.branches:
        for name, t in family.branch_state_dict(b).items():
            want = expected.get(name)
            if want is not None and tuple(t.shape) != want:
                cfg = family.files.config
                raise EvalkitError(
                    f"{family.path}: tensor {source.get(id(t), name)} has shape {list(t.shape)}, but config.json "
                    f"(hidden_size {cfg.get('hidden_size')}, vocab_size {cfg.get('vocab_size')}, "
                    f"intermediate_size {cfg.get('intermediate_size')}) implies {list(want)}; the weights and "
                    "config.json do not belong together: restore the checkpoint's own config.json"
                )


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """transformers' own bars (save_pretrained's "Writing model shards") off; the command prints one line."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def _load_generation_config(model: PreTrainedModel, root: Path) -> None:
    from transformers import GenerationConfig

    if (root / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(str(root), local_files_only=True)


def _load_quantized(root: Path, config: Any, device: torch.device) -> PreTrainedModel:
    """AWQ/GPTQ baselines load through transformers, which needs their kernels installed."""
    from transformers import AutoModelForCausalLM

    method = (
        config.quantization_config.get("quant_method", "?") if isinstance(config.quantization_config, dict) else "?"
    )
    try:
        return AutoModelForCausalLM.from_pretrained(str(root), device_map=str(device), local_files_only=True).eval()
    except (ImportError, ValueError, RuntimeError) as e:
        raise EvalkitError(
            f"{root} is {method}-quantised and its kernels could not load ({str(e).splitlines()[0]}); "
            "install them on a GPU machine (`pip install autoawq` for AWQ, `pip install gptqmodel optimum` for GPTQ)"
        ) from None
