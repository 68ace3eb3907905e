"""Planning a run: the models, datasets and data it evaluates, settled before anything runs.

`make_plan` loads the family once (the run's tasks reuse that load through the engine registry),
checks the data and every baseline checkpoint, and builds the OpenCompass model and dataset configs
and the run's identity, so a run that cannot finish fails before its directory exists.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.catalog.baselines import BASELINES
from evalkit.catalog.datasets import BY_KEY, dataset_of
from evalkit.engine.family_engine import engine_for, family_identity
from evalkit.errors import EvalkitError
from evalkit.evaluation.options import TINY_MAX_OUT_LEN, RunConfig, fixture_root
from evalkit.evaluation.state import identity
from evalkit.load.branches import parse_branches, read_branches
from evalkit.load.family import Family
from evalkit.load.tiny import default_model_path, training_summary
from evalkit.oc.driver import dotted
from evalkit.oc.evaluators import use_sandboxed_evaluators
from evalkit.oc.fixtures import FIXTURE_GROUPS
from evalkit.oc.model_configs import baseline_configs, familial_configs, family_slug
from evalkit.oc.suites import check_data, dataset_configs
from evalkit.records.results import ModelInfo


@dataclass(frozen=True)
class Plan:
    models: list[dict[str, Any]]
    infos: list[ModelInfo]
    datasets: list[dict[str, Any]]
    data_root: Path
    data_source: str
    dtype: str  # as the record states it
    identity: dict[str, Any]  # what the run evaluates (see state.identity)
    notes: list[str]


def _trained_on() -> str:
    """What the embedded family was trained on, from its training.json."""
    summary = training_summary(default_model_path())
    return summary.rstrip(".") if summary else "no training.json beside its weights, so what it learned is unknown"


def make_plan(config: RunConfig) -> Plan:
    """Everything a run needs, settled up front: whatever can fail fails here, before a directory is made."""
    notes: list[str] = []
    data_root, source, groups = _data(config, notes)
    check_data(data_root, config.suites, groups)
    baselines = [BASELINES[n] for n in config.baselines]
    max_out = config.max_out_len
    if config.embedded_model and max_out is None:
        max_out = TINY_MAX_OUT_LEN
        notes.append(
            f"embedded tiny family: {_trained_on()}; generation capped at {max_out} tokens; "
            "pass --max-out-len to change"
        )
    common: dict[str, Any] = dict(
        dtype=config.dtype, device=config.device, batch_size=config.batch_size, max_out_len=max_out
    )
    base_models = baseline_configs(baselines, dict(config.baseline_paths), **common)  # checks paths, kernels

    path = Path(config.model) if config.model else default_model_path()
    parse_branches(config.branches, read_branches(path))  # a bad --branches fails before the weights load
    family = _load(path, config.dtype, config.device)
    family.tokenizer  # noqa: B018 - a checkpoint without tokenizer files fails here, not in its first task
    chosen = parse_branches(config.branches, family.branches)
    plain = not family.files.is_familial
    models = familial_configs(path, chosen, shared_trunk=config.shared_trunk, plain=plain, **common)
    infos = [
        ModelInfo(
            abbr=m["abbr"],
            name=_display(path, b.name, plain),
            role="ours",
            family=family_slug(path),
            branch=b.name,
            exit_layer=b.exit_layer,
            num_params=b.num_params,
            path=str(path),
        )
        for m, b in zip(models, chosen, strict=True)
    ]
    checkpoints = {str(path): family.identity}
    checkpoints.update(
        {m["path"]: family_identity(m["path"], dtype=config.dtype, device=config.device) for m in base_models}
    )
    models += base_models
    infos += [
        ModelInfo(abbr=b.abbr, name=b.display, role="baseline", path=m["path"])
        for b, m in zip(baselines, base_models, strict=True)
    ]
    datasets = [
        dotted(use_sandboxed_evaluators(d))
        for d in dataset_configs(config.suites, limit=config.limit, max_out_len=max_out, groups=groups)
    ]
    if config.limit is not None:
        notes.append(_limit_note(config.limit, datasets))
    dtype = config.dtype or f"{str(family.dtype).removeprefix('torch.')} (stored)"
    return Plan(
        models, infos, datasets, data_root, source, dtype, identity(models, datasets, checkpoints, dtype), notes
    )


def _load(path: Path, dtype: str | None, device: str) -> Family:
    """The family, read through the engine registry (the run's tasks reuse this load)."""
    return engine_for(path, dtype=dtype, device=device).family


def _data(config: RunConfig, notes: list[str]) -> tuple[Path, str, dict[str, Any] | None]:
    if config.data_dir is not None:
        root = Path(config.data_dir)
        if not root.is_dir():
            raise EvalkitError(
                f"the run's data root {root} does not exist any more; restore it (a resumed run reads "
                "the data it started with), or start a new run"
            )
        return root, f"OpenCompass data at {root}", None
    root = fixture_root()
    notes.append(
        "data: the embedded fixtures (15-25 templated items per dataset or group, HumanEval's real 164 problems); "
        "pass --data-dir for real OpenCompass data"
    )
    return root, "embedded fixtures", dict(FIXTURE_GROUPS)


def _limit_note(limit: int, datasets: list[dict[str, Any]]) -> str:
    """What --limit N means for these datasets, in words: grouped datasets take N from every group."""
    groups = Counter(BY_KEY[key] for key, group in (dataset_of(d["abbr"]) for d in datasets) if group is not None)
    text = f"limit: the first {count(limit, 'item')} of each dataset"
    if groups:
        # only grouped datasets have abbrs with a group, so each of these has its group nouns
        named = ", ".join(f"{d.title} ({n} {d.groups.noun(n)})" for d, n in groups.items() if d.groups)
        text += f", and of each group of {named}, whose scores average their groups"
    return text + f": at most {limit * len(datasets)} items per model"


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _display(path: Path, branch: str, plain: bool) -> str:
    name = "tiny-ruyi" if path.name.startswith("tiny-ruyi") else path.resolve().name
    return name if plain else f"{name}-{branch}"
