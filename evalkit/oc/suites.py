"""The suites as OpenCompass dataset configs: which config each dataset uses, the data it needs, and how
its results read back, all as the catalog (`evalkit.catalog.datasets`) states them.

The configs are OpenCompass's own (0-shot, `opencompass.configs.datasets.*`), loaded unchanged apart from
the item range and the generation length. Nothing here imports OpenCompass until `dataset_configs` is
called, so `check_data` runs before anything heavy loads.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from evalkit.catalog.datasets import BY_KEY, SUITES, Dataset, dataset_of, parse_suites
from evalkit.errors import EvalkitError, did_you_mean
from evalkit.oc.datacheck import Unreadable, count_items

__all__ = ["check_data", "dataset_configs", "max_out_len_of", "required_files"]


def _suite_keys(suites: str | Sequence[str]) -> list[str]:
    return [k for s in parse_suites(suites) for k in SUITES[s]]


def _load_module_list(dataset: Dataset) -> list[dict[str, Any]]:
    src = dataset.opencompass
    try:
        module = importlib.import_module(src.import_path)
    except ImportError as e:
        raise EvalkitError(
            f"cannot import OpenCompass config {src.import_path} ({e}); install opencompass 0.5.x"
        ) from e
    return [_plain(d) for d in getattr(module, src.variable)]


def _plain(value: Any) -> Any:
    """A config value with classes and functions replaced by their dotted import paths.

    OpenCompass resolves such strings through its registries, and the result can be written into a config
    file, hashed into a cache key or compared, which live class objects cannot.
    """
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, type) or callable(value):
        return f"{value.__module__}.{value.__qualname__}"
    return value


def dataset_configs(
    suites: str | Sequence[str],
    *,
    limit: int | None = None,
    max_out_len: int | None = None,
    groups: Mapping[str, Iterable[str]] | None = None,
) -> list[dict[str, Any]]:
    """OpenCompass dataset config dicts for the suites, in canonical order.

    limit: keep the first N items of each dataset config via reader_cfg['test_range']; a grouped dataset
        (MMLU, MMLU-Pro, CMMLU, BBH) has one config per subject or task, so N applies to each group.
    max_out_len: cap every generation length at this many tokens (configs that leave it to the model get it set).
    groups: for grouped datasets, keep only these groups, e.g. FIXTURE_GROUPS; others keep everything.
    """
    if limit is not None and limit < 1:
        raise EvalkitError(f"limit must be a positive number of items, got {limit}")
    out = []
    for key in _suite_keys(suites):
        dataset = BY_KEY[key]
        keep = None if groups is None or key not in groups else set(groups[key])
        abbrs = dataset.opencompass.abbrs
        for cfg in _load_module_list(dataset):
            if abbrs is not None and cfg["abbr"] not in abbrs:
                continue
            if keep is not None and dataset_of(cfg["abbr"])[1] not in keep:
                continue
            if limit is not None:
                cfg["reader_cfg"] = {**cfg["reader_cfg"], "test_range": f"[0:{limit}]"}
            if max_out_len is not None:
                inferencer = cfg["infer_cfg"]["inferencer"]
                inferencer["max_out_len"] = min(inferencer.get("max_out_len") or max_out_len, max_out_len)
            out.append(cfg)
        if keep is not None and not any(dataset_of(c["abbr"])[0] == key for c in out):
            raise did_you_mean(f"{dataset.title} group", sorted(keep)[0], _all_groups(dataset))
    return out


def _all_groups(dataset: Dataset) -> list[str]:
    return [g for g in (dataset_of(c["abbr"])[1] for c in _load_module_list(dataset)) if g]


def max_out_len_of(cfg: Mapping[str, Any]) -> int | None:
    """The generation length a dataset config asks for, or None when it leaves it to the model config."""
    return cfg["infer_cfg"]["inferencer"].get("max_out_len")


def _groups(key: str, groups: Mapping[str, Iterable[str]] | None) -> list[str]:
    """The groups of a grouped dataset a run evaluates: those `groups` names, else every group of the full
    config (which imports the OpenCompass config)."""
    return list(groups[key]) if groups is not None and key in groups else _all_groups(BY_KEY[key])


def required_files(suites: str | Sequence[str], groups: Mapping[str, Iterable[str]] | None = None) -> list[str]:
    """Paths (relative to the data root) the suites' loaders read. Without `groups`, every group of the
    full config is required; that needs the OpenCompass configs, so it imports OpenCompass."""
    paths: list[str] = []
    for key in _suite_keys(suites):
        templates = BY_KEY[key].opencompass.files
        if not any("{g}" in t for t in templates):
            paths += templates
            continue
        paths += [t.format(g=g) for g in _groups(key, groups) for t in templates]
    return paths


def check_data(
    data_root: str | Path,
    suites: str | Sequence[str],
    groups: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """Fail up front, with one error naming what is wrong and where, unless every file the suites read
    exists and every dataset, and every group of a grouped one, has items for its loader to evaluate."""
    root = Path(data_root).expanduser()
    missing = [p for p in required_files(suites, groups) if not (root / p).exists()]
    if missing:
        raise EvalkitError(
            f"OpenCompass data missing under {root}: {_first(missing, ', ')}; pass --data-dir pointing at the "
            f"OpenCompass data root (the directory that contains data/) or set COMPASS_DATA_CACHE "
            f"(layout: {LAYOUT})"
        )
    problems = []
    for key in _suite_keys(suites):
        dataset = BY_KEY[key]
        source = dataset.opencompass.items
        if source is None:
            continue
        for group in _groups(key, groups) if dataset.groups is not None else [None]:
            name = dataset.title if dataset.groups is None else f"{dataset.title} {dataset.groups.singular} {group}"
            path = source.file.format(g=group)
            try:
                count = count_items(root / path, source.reader, group)
            except Unreadable as e:
                problems.append(f"{name}: {path} {e}")
                continue
            if count == 0:
                problems.append(f"{name} has no items ({path})")
    if problems:
        raise EvalkitError(
            f"OpenCompass data under {root} would fail after inference, when OpenCompass scores it: "
            f"{_first(problems)}; restore those files from the dataset's release (layout: {LAYOUT})"
        )


LAYOUT = "opencompass_configs/datasets/README.md"


def _first(problems: list[str], sep: str = "; ", shown: int = 5) -> str:
    return sep.join(problems[:shown]) + (f" and {len(problems) - shown} more" if len(problems) > shown else "")
