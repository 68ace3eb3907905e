"""A family's branches as values, worked out from its files without loading a weight (and without torch).

config.json gives the exits; the safetensors headers give every tensor's shape, which sizes each branch
and so names it (E3B..E7B for Ruyi-7B's exits, E111K..E297K for the embedded tiny family). `load_family`
names its branches with the same functions, from the tensors it read, so `read_branches(path)` and
`load_family(path).branches` always agree. That lets the edges (the stock OpenCompass configs, resume)
settle a branch list to canonical names as cheaply as reading config.json.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError, did_you_mean
from evalkit.load.checkpoint import CheckpointFiles, read_checkpoint

EMBED = "model.embed_tokens.weight"
# A safetensors header is a few KB per thousand tensors; anything past this is not a header.
_MAX_HEADER = 100 * 2**20


@dataclass(frozen=True)
class Branch:
    """One exit of a family, as a model: its name, where it exits and how big it really is."""

    index: int
    name: str  # "E3B" for Ruyi-7B's exit at layer 11
    exit_layer: int
    num_layers: int  # exit_layer + 1: the trunk layers plus the branch layer
    num_params: int  # every parameter the branch model holds (embeddings and head included)
    non_embedding_params: int


def exit_points(files: CheckpointFiles) -> tuple[int, ...]:
    cfg = files.config
    return tuple(cfg["early_exit_points"]) if files.is_familial else (cfg["num_hidden_layers"] - 1,)


def branch_sources(files: CheckpointFiles, stored: Collection[str], index: int, exit_layer: int) -> dict[str, str]:
    """The branch's tensors as a plain checkpoint names them -> the names the family stores them under."""
    cfg = files.config
    if not files.is_familial:
        plain = {name: name for name in stored}
        if "lm_head.weight" not in plain and cfg.get("tie_word_embeddings", False):
            plain["lm_head.weight"] = EMBED  # tied: the embedding is the head
        return plain
    last = exit_points(files)[-1]
    label = f"branch at layer {exit_layer}"
    out = {EMBED: _stored(files, stored, EMBED)}
    trunk = range(exit_layer) if exit_layer < last else range(last + 1)
    prefixes = tuple(f"model.layers.{j}." for j in trunk)
    out.update({name: name for name in stored if name.startswith(prefixes)})
    if exit_layer < last:
        src = f"model.eelayers.{index}."
        layer = [name for name in stored if name.startswith(src)]
        if not layer:
            raise EvalkitError(f"{files.root}: tensors {src}* for the {label} are missing from the checkpoint")
        out.update({f"model.layers.{exit_layer}." + name[len(src) :]: name for name in layer})
    out["model.norm.weight"] = _stored(files, stored, f"model.norms.{index}.weight")
    head = "lm_head.weight" if cfg.get("shared_heads", False) else f"lm_head.{index}.weight"
    if head not in stored and cfg.get("tie_word_embeddings", False):
        head = EMBED
    if head not in stored:
        raise EvalkitError(f"{files.root}: tensor {head} for the {label} is missing from the checkpoint")
    out["lm_head.weight"] = head
    return out


def make_branches(files: CheckpointFiles, numels: Mapping[str, int] | None) -> tuple[Branch, ...]:
    """The branches of `files`, sized from the element count of each stored tensor.

    `numels` None: the sizes are unknown (quantised weights are packed), and the branches count 0.
    """
    exits = exit_points(files)
    counts = [_count(files, numels, i, e) if numels is not None else (0, 0) for i, e in enumerate(exits)]
    if files.is_familial:
        names = _size_names([non_emb for _, non_emb in counts])
    else:  # a checkpoint directory's name; a family made in memory is called `<name>`
        names = [files.root.resolve().name if files.weight_files else files.root.name.strip("<>")]
    return tuple(
        Branch(index=i, name=names[i], exit_layer=e, num_layers=e + 1, num_params=tot, non_embedding_params=non_emb)
        for i, (e, (tot, non_emb)) in enumerate(zip(exits, counts, strict=True))
    )


def read_branches(path: str | Path | CheckpointFiles) -> tuple[Branch, ...]:
    """The branches of the checkpoint at `path`, as `load_family(path).branches` has them, no weights read."""
    files = path if isinstance(path, CheckpointFiles) else read_checkpoint(path)
    return make_branches(files, None if files.is_quantized else stored_numels(files))


def stored_numels(files: CheckpointFiles) -> dict[str, int]:
    """Every stored tensor's element count, from the safetensors headers alone."""
    out: dict[str, int] = {}
    for path in files.weight_files:
        header, data_size = _header(path)
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            shape = meta.get("shape") if isinstance(meta, dict) else None
            offsets = meta.get("data_offsets") if isinstance(meta, dict) else None
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise _not_safetensors(path, f"tensor {name} has no valid shape")
            if not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets):
                raise _not_safetensors(path, f"tensor {name} has no valid data offsets")
            if offsets[1] > data_size:
                raise _not_safetensors(path, f"tensor {name} ends past the end of the file")
            n = 1
            for d in shape:
                n *= d
            out[name] = n
    return out


def parse_branches(spec: str | Sequence[str | int] | None, branches: Sequence[Branch]) -> tuple[Branch, ...]:
    """ "all", names ("E3B,E7B", any case) or exit layers ("11,27") -> the branches, in family order."""
    items = spec.split(",") if isinstance(spec, str) else list(spec or ["all"])
    tokens = [str(t).strip() for t in items if str(t).strip()]
    if not tokens or [t.lower() for t in tokens] == ["all"]:
        return tuple(branches)
    by_name = {b.name.lower(): b for b in branches}
    by_layer = {str(b.exit_layer): b for b in branches}
    chosen = []
    for t in tokens:
        b = by_name.get(t.lower()) or by_layer.get(t)
        if b is None:
            valid = ["all"] + [f"{b.name} (layer {b.exit_layer})" for b in branches]
            raise did_you_mean("branch", t, valid)
        chosen.append(b)
    return tuple(b for b in branches if b in chosen)


# --- internals ---------------------------------------------------------------------------------


def _stored(files: CheckpointFiles, stored: Collection[str], name: str) -> str:
    if name not in stored:
        raise EvalkitError(f"{files.root}: tensor {name} is missing from the checkpoint")
    return name


def _count(files: CheckpointFiles, numels: Mapping[str, int], index: int, exit_layer: int) -> tuple[int, int]:
    """(every parameter, the non-embedding ones) of one branch; a tied head counts once, as the embedding."""
    sources = branch_sources(files, numels.keys(), index, exit_layer)
    total = sum(numels[name] for name in set(sources.values()))
    # A plain checkpoint may lack either; building the branch model then names what is missing.
    embed, head = sources.get(EMBED), sources.get("lm_head.weight")
    non_embedding = total - numels.get(embed or "", 0) - (0 if head == embed else numels.get(head or "", 0))
    return total, non_embedding


def _size_names(non_embedding: Iterable[int]) -> list[str]:
    """E{size}B from the branch's non-embedding parameters, the convention behind Ruyi's E3B..E7B.

    Ruyi-7B's exits at 11..27 hold 2.8, 3.7, 4.7, 5.6 and 6.5 B non-embedding parameters: E3B..E7B.
    Smaller models get M or K units, with as many decimals as it takes to keep names distinct.
    """
    sizes = list(non_embedding)
    scale, unit = next(((s, u) for s, u in ((1e9, "B"), (1e6, "M"), (1e3, "K")) if min(sizes) >= 0.5 * s), (1, ""))
    for decimals in range(4):
        names = [f"E{round(n / scale, decimals):.{decimals}f}{unit}" for n in sizes]
        if len(set(names)) == len(names):
            return names
    return [f"E{n}" for n in sizes]


def _header(path: Path) -> tuple[dict[str, Any], int]:
    """A safetensors file's JSON header (8 bytes of little-endian length, then that many bytes of JSON) and
    the size of the data after it."""
    try:
        file_size = path.stat().st_size
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 2 <= size <= min(_MAX_HEADER, file_size - 8):
                raise _not_safetensors(path, "its header length is out of range")
            header = json.loads(f.read(size))
    except (ValueError, RecursionError):
        raise _not_safetensors(path, "its header is not JSON") from None
    if not isinstance(header, dict):
        raise _not_safetensors(path, "its header is not a JSON object")
    return header, file_size - 8 - size


def _not_safetensors(path: Path, why: str) -> EvalkitError:
    return EvalkitError(
        f"cannot read {path} ({why}); the file is truncated or not safetensors: restore it from the checkpoint"
    )
