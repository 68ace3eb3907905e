"""The suites as OpenCompass dataset configs: which config each dataset uses, the data it needs, and how
its results read back.

The configs are OpenCompass's own (0-shot, `opencompass.configs.datasets.*`), loaded unchanged apart from
the item range and the generation length. Nothing here imports OpenCompass until `dataset_configs` is
called, so reports and the CI gate can use `dataset_of`, `item_outcomes` and `check_data` cheaply.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.catalog.datasets import BY_KEY, SUITES, parse_suites
from evalkit.errors import EvalkitError, did_you_mean
from evalkit.oc.fixtures import FIXTURE_GROUPS, materialise_fixture_root
from evalkit.oc.outcomes import HEADLINE_METRIC, headline_score, item_outcomes

__all__ = [
    "CONFIGS",
    "FIXTURE_GROUPS",
    "HEADLINE_METRIC",
    "ConfigSource",
    "check_data",
    "dataset_configs",
    "dataset_of",
    "headline_score",
    "item_outcomes",
    "materialise_fixture_root",
    "max_out_len_of",
    "required_files",
]


@dataclass(frozen=True)
class ConfigSource:
    """Where one dataset's OpenCompass config lives and how its result files are named."""

    key: str  # canonical dataset key (evalkit.catalog.datasets)
    module: str  # module under opencompass.configs.datasets
    variable: str  # the list of dataset dicts that module defines
    abbr: str  # the OpenCompass abbr, or its prefix when the dataset is split into groups
    metric: str  # headline metric key in OpenCompass's results/<model>/<abbr>.json
    grouped: bool = False  # one abbr per subject/task: abbr = prefix + group
    abbrs: tuple[str, ...] | None = None  # keep only these abbrs of the module's list

    @property
    def import_path(self) -> str:
        return f"opencompass.configs.datasets.{self.module}"


# The leaderboard's 0-shot configs, verified present in OpenCompass 0.5.4. All use ZeroRetriever.
CONFIGS: dict[str, ConfigSource] = {c.key: c for c in (
    ConfigSource("mmlu", "mmlu.mmlu_openai_simple_evals_gen_b618ea", "mmlu_datasets",
                 "lukaemon_mmlu_", "accuracy", grouped=True),
    ConfigSource("mmlu_pro", "mmlu_pro.mmlu_pro_0shot_cot_gen_08c1de", "mmlu_pro_datasets",
                 "mmlu_pro_", "accuracy", grouped=True),
    ConfigSource("cmmlu", "cmmlu.cmmlu_0shot_cot_gen_305931", "cmmlu_datasets", "cmmlu-", "accuracy", grouped=True),
    ConfigSource("bbh", "bbh.bbh_0shot_nocot_gen_925fc4", "bbh_datasets", "bbh-", "score", grouped=True),
    ConfigSource("arc_c", "ARC_c.ARC_c_gen_1e0de5", "ARC_c_datasets", "ARC-c", "accuracy"),
    ConfigSource("hellaswag", "hellaswag.hellaswag_gen_6faab5", "hellaswag_datasets", "hellaswag", "accuracy"),
    ConfigSource("winogrande", "winogrande.winogrande_gen_458220", "winogrande_datasets", "winogrande",
                 "accuracy"),
    ConfigSource("humaneval", "humaneval.humaneval_openai_sample_evals_gen_dcae0e", "humaneval_datasets",
                 "openai_humaneval", "humaneval_pass@1"),
    ConfigSource("mbpp", "mbpp.sanitized_mbpp_mdblock_0shot_nocot_gen_a2e416", "sanitized_mbpp_datasets",
                 "sanitized_mbpp", "score"),
    # livecodebench_gen also defines code-execution and test-output tasks; the LiveCodeBench score is
    # code generation alone.
    ConfigSource("livecodebench", "livecodebench.livecodebench_gen", "LCB_datasets", "lcb_code_generation",
                 "pass@1", abbrs=("lcb_code_generation",)),
    ConfigSource("gpqa", "gpqa.gpqa_openai_simple_evals_gen_5aeece", "gpqa_datasets", "GPQA_diamond", "accuracy"),
    ConfigSource("math", "math.math_0shot_gen_393424", "math_datasets", "math", "accuracy"),
    ConfigSource("gsm8k", "gsm8k.gsm8k_0shot_v2_gen_a58960", "gsm8k_datasets", "gsm8k", "accuracy"),
)}


def dataset_of(abbr: str) -> tuple[str, str | None]:
    """OpenCompass dataset abbr -> (canonical dataset key, group), e.g. 'bbh-navigate' -> ('bbh', 'navigate').

    The group is the subject, category or task for grouped datasets and None otherwise.
    """
    for src in CONFIGS.values():
        if src.grouped and abbr.startswith(src.abbr) and len(abbr) > len(src.abbr):
            return src.key, abbr[len(src.abbr):]
        if not src.grouped and abbr == src.abbr:
            return src.key, None
    raise EvalkitError(
        f"unknown OpenCompass dataset abbr {abbr!r}; evalkit reads the abbrs of its own suites "
        f"({', '.join(c.abbr + ('*' if c.grouped else '') for c in CONFIGS.values())})")


def _suite_keys(suites: str | Sequence[str]) -> list[str]:
    return [k for s in parse_suites(suites) for k in SUITES[s]]


def _load_module_list(src: ConfigSource) -> list[dict[str, Any]]:
    try:
        module = importlib.import_module(src.import_path)
    except ImportError as e:
        raise EvalkitError(
            f"cannot import OpenCompass config {src.import_path} ({e}); install opencompass 0.5.x") from e
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
        src = CONFIGS[key]
        keep = None if groups is None or key not in groups else set(groups[key])
        for cfg in _load_module_list(src):
            if src.abbrs is not None and cfg["abbr"] not in src.abbrs:
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
            raise did_you_mean(f"{BY_KEY[key].title} group", sorted(keep)[0], _all_groups(src))
    return out


def _all_groups(src: ConfigSource) -> list[str]:
    return [g for g in (dataset_of(c["abbr"])[1] for c in _load_module_list(src)) if g]


def max_out_len_of(cfg: Mapping[str, Any]) -> int | None:
    """The generation length a dataset config asks for, or None when it leaves it to the model config."""
    return cfg["infer_cfg"]["inferencer"].get("max_out_len")


# Files each dataset's loader opens, relative to the data root ($COMPASS_DATA_CACHE); {g} is the group.
_FILES: dict[str, tuple[str, ...]] = {
    "mmlu": ("data/mmlu/dev/{g}_dev.csv", "data/mmlu/test/{g}_test.csv"),
    "mmlu_pro": ("data/mmlu_pro",),
    "cmmlu": ("data/cmmlu/dev/{g}.csv", "data/cmmlu/test/{g}.csv"),
    "bbh": ("data/BBH/data/{g}.json",),
    "arc_c": ("data/ARC/ARC-c/ARC-Challenge-Dev.jsonl",),
    "hellaswag": ("data/hellaswag/hellaswag.jsonl",),
    "winogrande": ("data/winogrande/dev.jsonl",),
    "humaneval": ("data/humaneval/human-eval-v2-20210705.jsonl",),
    "mbpp": ("data/mbpp/sanitized-mbpp.jsonl",),
    "livecodebench": ("data/code_generation_lite/code_generation_lite.py",),
    "gpqa": ("data/gpqa/gpqa_diamond.csv",),
    "math": ("data/math/math.json",),
    "gsm8k": ("data/gsm8k/train.jsonl", "data/gsm8k/test.jsonl"),
}


def required_files(suites: str | Sequence[str], groups: Mapping[str, Iterable[str]] | None = None) -> list[str]:
    """Paths (relative to the data root) the suites' loaders read. Without `groups`, every group of the
    full config is required; that needs the OpenCompass configs, so it imports OpenCompass."""
    paths: list[str] = []
    for key in _suite_keys(suites):
        templates = _FILES[key]
        if not any("{g}" in t for t in templates):
            paths += templates
            continue
        names = list(groups[key]) if groups is not None and key in groups else _all_groups(CONFIGS[key])
        paths += [t.format(g=g) for g in names for t in templates]
    return paths


def check_data(
    data_root: str | Path,
    suites: str | Sequence[str],
    groups: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """Fail up front, with one error naming what is missing and where, unless every file the suites read exists."""
    root = Path(data_root).expanduser()
    missing = [p for p in required_files(suites, groups) if not (root / p).exists()]
    if not missing:
        return
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    raise EvalkitError(
        f"OpenCompass data missing under {root}: {shown}; pass --data-dir pointing at the OpenCompass data "
        f"root (the directory that contains data/) or set COMPASS_DATA_CACHE "
        f"(layout: opencompass_configs/datasets/README.md)")
