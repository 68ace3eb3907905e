"""The datasets evalkit knows, the suites that group them, and their names across spellings.

Pure data, no heavy imports: reports, the CI gate and the table importer read it as well as `run`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from evalkit.errors import did_you_mean


@dataclass(frozen=True)
class Dataset:
    key: str  # canonical id used in records, e.g. "arc_c"
    title: str  # column header used in tables, e.g. "ARC-c"
    suite: str  # "general" | "code" | "stem"
    metric: str  # "accuracy" | "pass@1"
    grouped: bool = False  # items are grouped by subject/task and the score is the mean of group means


DATASETS: tuple[Dataset, ...] = (
    Dataset("mmlu", "MMLU", "general", "accuracy", grouped=True),
    Dataset("mmlu_pro", "MMLU-Pro", "general", "accuracy", grouped=True),
    Dataset("cmmlu", "CMMLU", "general", "accuracy", grouped=True),
    Dataset("bbh", "BBH", "general", "accuracy", grouped=True),
    Dataset("arc_c", "ARC-c", "general", "accuracy"),
    Dataset("hellaswag", "HellaSwag", "general", "accuracy"),
    Dataset("winogrande", "WinoGrande", "general", "accuracy"),
    Dataset("humaneval", "HumanEval", "code", "pass@1"),
    Dataset("mbpp", "MBPP", "code", "pass@1"),
    Dataset("livecodebench", "LiveCodeBench", "code", "pass@1"),
    Dataset("gpqa", "GPQA", "stem", "accuracy"),
    Dataset("math", "MATH", "stem", "accuracy"),
    Dataset("gsm8k", "GSM8K", "stem", "accuracy"),
)
BY_KEY = {d.key: d for d in DATASETS}
SUITES: dict[str, tuple[str, ...]] = {
    s: tuple(d.key for d in DATASETS if d.suite == s) for s in ("general", "code", "stem")
}
SUITE_TITLES = {"general": "General", "code": "Code", "stem": "STEM"}
AVERAGE = "avg"  # the key of a row's or family's average over datasets, beside the dataset keys


def title(key: str) -> str:
    """The display name of a dataset key (or of AVERAGE); an unknown key is shown as it is."""
    return "Average" if key == AVERAGE else BY_KEY[key].title if key in BY_KEY else key


def _squash(name: str) -> str:
    """Lower case, letters and digits only; a "+" stays as "plus" (HumanEval+ is not HumanEval)."""
    return re.sub(r"[^a-z0-9]", "", name.lower().replace("+", "plus"))


# Spellings seen in published tables, squashed. Variants that are other benchmarks (HumanEval+,
# MBPP+, MATH-500: other tests, other item sets, other scores) are deliberately absent.
_ALIASES = {
    "winogrand": "winogrande",
    "arcchallenge": "arc_c",
    "arc": "arc_c",
    "gsm": "gsm8k",
    "mathematics": "math",
    "lcb": "livecodebench",
    "gpqadiamond": "gpqa",
    "bigbenchhard": "bbh",
}


def normalize_dataset(name: str) -> str:
    """Map any common spelling ("ARC-c", "GSM-8K", "Winogrand", "Math") to its canonical key.

    Variants that are different benchmarks ("HumanEval+", "MBPP+", "MATH-500") are unknown names.
    """
    squashed = _squash(name)
    for d in DATASETS:
        if squashed in (_squash(d.key), _squash(d.title)):
            return d.key
    if squashed in _ALIASES:
        return _ALIASES[squashed]
    raise did_you_mean("dataset", name, [d.title for d in DATASETS])


def parse_suites(spec: str | Sequence[str]) -> tuple[str, ...]:
    """ "all", "general,code" or a list of names -> suite names, in canonical order."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip().lower() for n in names if n.strip()]
    if not names or names == ["all"]:
        return tuple(SUITES)
    for n in names:
        if n not in SUITES:
            raise did_you_mean("suite", n, list(SUITES))
    return tuple(s for s in SUITES if s in names)
