"""Family-grouped tasks for OpenCompass's runners: one task runs all of a family's branches on its data.

OpenCompass's stock partitioners make one task per (model, dataset), so with several workers each branch
of a family runs in its own process, loads the checkpoint again and computes the trunk again.
`FamilyPartitioner` is an OpenCompass partitioner (the normal extension point) that groups instead:

- the branches of one familial checkpoint form one family; every other model (a baseline) is a family
  of one, so baselines stay ordinary per-model tasks;
- with `split`, a dataset larger than `min_shard` items is cut into at most `num_worker` shards (a
  `test_range` on its reader, named `<abbr>@<start>-<stop>`), so that N workers stay busy on one big
  dataset such as MMLU;
- a family's shards and datasets are dealt round-robin into at most `num_worker` tasks (OpenCompass's
  NumWorkerPartitioner heuristic), so each worker loads a family once;
- within a task, each shard runs every unfinished branch back to back, so the engine's shared trunk
  computes it once for all of them and the siblings read their answers from its cache.

A task lists its (branch, shard) pairs as OpenCompass's parallel `models` / `datasets` lists, so
OpenCompass's own `OpenICLInferTask` and `OpenICLEvalTask` run it unchanged and write each branch's
files under its own abbr. `merge_shards` then joins a branch's shard predictions into the one
`predictions/<abbr>/<dataset>.json` an unsharded run writes, item for item, before evaluation.
"""

from __future__ import annotations

import glob
import json
import math
import re
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmengine.config import Config
from opencompass.partitioners.base import BasePartitioner
from opencompass.registry import PARTITIONERS

from evalkit.errors import EvalkitError
from evalkit.oc.signals import join_shards, signals_path
from evalkit.records.io import write_text_atomic

_SHARD = re.compile(r"^(?P<abbr>.+)@(?P<start>\d+)-(?P<stop>\d+)$")


@dataclass(frozen=True)
class Shard:
    abbr: str  # the whole dataset's
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"{self.abbr}@{self.start}-{self.stop}"


def family_key(model: dict[str, Any]) -> str:
    """Models with one key share a task: a familial checkpoint's branches; a baseline is its own family."""
    return f"family:{model['path']}" if model.get("branch") else f"model:{model['abbr']}"


def shard_bounds(size: int, num_worker: int, min_shard: int) -> list[tuple[int, int]]:
    """[start, stop) ranges cutting `size` items into at most `num_worker` shards of at least `min_shard`."""
    if size <= min_shard or num_worker <= 1:
        return [(0, size)]
    step = max(math.ceil(size / num_worker), min_shard)
    return [(start, min(start + step, size)) for start in range(0, size, step)]


@PARTITIONERS.register_module()
class FamilyPartitioner(BasePartitioner):
    """OpenCompass partitioner: tasks grouped by family and data shard (see the module docstring).

    Args:
        out_dir: where the stage writes (predictions/ or results/); a pair whose file exists is done.
        num_worker: the runner's workers; at most this many tasks per family.
        split: cut datasets into shards (inference); evaluation reads whole datasets.
        min_shard: the fewest items a shard holds.
        requires_dir: a pair is ready only when its file exists there (evaluation needs predictions).
    """

    def __init__(
        self,
        out_dir: str,
        num_worker: int = 8,
        split: bool = True,
        min_shard: int = 16,
        requires_dir: str | None = None,
        keep_keys: list[str] | None = None,
    ):
        super().__init__(out_dir=out_dir, keep_keys=keep_keys)
        self.num_worker = max(1, int(num_worker))
        self.split = split
        self.min_shard = max(1, int(min_shard))
        self.requires_dir = requires_dir
        self.shards: dict[str, list[Shard]] = {}  # dataset abbr -> its shards, for merge_shards

    def partition(  # type: ignore[override]
        self,
        models: list[dict[str, Any]],
        datasets: list[dict[str, Any]],
        work_dir: str,
        out_dir: str,
        add_cfg: dict[str, Any] | None = None,
    ) -> list[Config]:
        families: dict[str, list[dict[str, Any]]] = {}
        for m in models:
            families.setdefault(family_key(m), []).append(m)
        pieces = [(d, piece) for d in datasets for piece in self._pieces(d)]
        tasks = []
        for family in families.values():
            chunks = [(piece, todo) for d, piece in pieces if (todo := self._todo(family, d, piece, out_dir))]
            buckets: list[list[tuple[dict[str, Any], list[dict[str, Any]]]]] = [[] for _ in range(self.num_worker)]
            for i, chunk in enumerate(chunks):
                buckets[i % self.num_worker].append(chunk)
            for bucket in filter(None, buckets):
                pairs = [(m, piece) for piece, todo in bucket for m in todo]
                tasks.append(
                    Config(
                        {
                            "models": [m for m, _ in pairs],
                            "datasets": [[piece] for _, piece in pairs],
                            "work_dir": work_dir,
                            **(add_cfg or {}),
                        }
                    )
                )
        return tasks

    def _pieces(self, dataset: dict[str, Any]) -> list[dict[str, Any]]:
        abbr = str(dataset["abbr"])
        if not self.split:
            return [dataset]
        bounds = shard_bounds(dataset_size(dataset), self.num_worker, self.min_shard)
        if len(bounds) == 1:
            return [dataset]
        self.shards[abbr] = [Shard(abbr, a, b) for a, b in bounds]
        out = []
        for shard in self.shards[abbr]:
            piece = deepcopy(dataset)
            piece["abbr"] = shard.name
            reader = dict(piece["reader_cfg"])
            reader["test_range"] = f"{reader.get('test_range', '')}[{shard.start}:{shard.stop}]"
            piece["reader_cfg"] = reader
            out.append(piece)
        return out

    def _todo(
        self, family: list[dict[str, Any]], dataset: dict[str, Any], piece: dict[str, Any], out_dir: str
    ) -> list[dict[str, Any]]:
        """The family's models that still need this piece (and, for evaluation, have its predictions)."""
        whole, part = str(dataset["abbr"]), str(piece["abbr"])

        def done(m: dict[str, Any]) -> bool:
            where = Path(out_dir) / str(m["abbr"])
            return (where / f"{whole}.json").is_file() or (where / f"{part}.json").is_file()

        def ready(m: dict[str, Any]) -> bool:
            return self.requires_dir is None or (Path(self.requires_dir) / str(m["abbr"]) / f"{whole}.json").is_file()

        return [m for m in family if not done(m) and ready(m)]


_SIZES: dict[str, int] = {}


def dataset_size(dataset: dict[str, Any]) -> int:
    """How many test items OpenCompass's reader gives this dataset config (its test_range applied)."""
    from opencompass.utils import build_dataset_from_cfg

    key = json.dumps(dataset, sort_keys=True, default=str)
    if key not in _SIZES:
        _SIZES[key] = len(build_dataset_from_cfg(Config(deepcopy(dataset))).test)
    return _SIZES[key]


def merge_shards(predictions: Path, models: Sequence[str], shards: dict[str, list[Shard]]) -> list[str]:
    """Join each model's finished shard predictions into `<dataset>.json`; returns the pairs still unfinished.

    The joined file holds the shards' items in order, numbered 0..n-1, laid out as one unsharded task writes it.
    Shard files of a joined dataset, and any left by another shard layout, are removed after the join.
    """
    unfinished = []
    for model in models:
        where = predictions / model
        for abbr, parts in shards.items():
            whole = where / f"{abbr}.json"
            if not whole.is_file():
                files = [where / f"{s.name}.json" for s in parts]
                if not all(f.is_file() for f in files):
                    unfinished.append(f"{model}/{abbr}")
                    continue
                items = [item for f in files for item in _ordered(f)]
                # laid out as OpenCompass's inferencers dump a predictions file, byte for byte
                joined = json.dumps({str(i): item for i, item in enumerate(items)}, indent=4, ensure_ascii=False)
                write_text_atomic(whole, joined)
            for stale in _shard_files(where, abbr):
                stale.unlink()
            # the shards' confidence signals, written by each shard's task to its own file
            signals = signals_path(predictions.parent, model, abbr)
            join_shards(signals, _shard_files(signals.parent, abbr))
    return unfinished


def _shard_files(folder: Path, abbr: str) -> list[Path]:
    """The files in `folder` of any shard of dataset `abbr` (`<abbr>@<start>-<stop>.json`), whatever the layout."""
    found = []
    for path in folder.glob(f"{glob.escape(abbr)}@*-*.json"):
        match = _SHARD.match(path.stem)
        if match is not None and match.group("abbr") == abbr:
            found.append(path)
    return found


def _ordered(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise EvalkitError(f"{path} is not valid JSON ({e}); delete it and resume the run") from None
    if not isinstance(data, dict) or set(data) != {str(i) for i in range(len(data))}:
        raise EvalkitError(f"{path} is not an OpenCompass predictions file; delete it and resume the run")
    return [data[str(i)] for i in range(len(data))]
