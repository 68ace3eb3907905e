"""The datasets evalkit knows, the suites that group them, and their names across spellings.

One `Dataset` entry holds everything about a dataset: its id, title and other spellings, suite and metric,
its OpenCompass config (import path strings, the files its loader reads, the headline metric key), how its
groups are called and which of them the embedded fixtures hold. Suites, the configs a run uses, the data
check, result parsing and the fixture layout are derived from these entries.

Pure data, no heavy imports: reports, the CI gate and the table importer read it as well as `run`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from evalkit.errors import EvalkitError, did_you_mean


@dataclass(frozen=True)
class ItemFile:
    """The file that holds the items a dataset's loader evaluates, and how the loader reads it, so the data
    check can count what the loader will see before anything loads (`evalkit.oc.datacheck` reads it)."""

    file: str  # one of the dataset's `files`; "{g}" stands for the group
    reader: str  # how the loader reads that file: a key of evalkit.oc.datacheck.READERS


@dataclass(frozen=True)
class OpenCompassConfig:
    """Where a dataset's OpenCompass config lives, the data its loader reads, and how its results are named."""

    module: str  # under opencompass.configs.datasets, e.g. "gsm8k.gsm8k_0shot_v2_gen_a58960"
    variable: str  # the list of dataset dicts that module defines
    abbr: str  # the OpenCompass abbr, or its prefix when the dataset is split into groups (abbr = prefix + group)
    headline: str  # the headline metric's key in OpenCompass's results/<model>/<abbr>.json (scale 0-100)
    files: tuple[str, ...]  # what the loader opens, relative to the data root; "{g}" stands for the group
    abbrs: tuple[str, ...] | None = None  # keep only these abbrs of the module's list
    items: ItemFile | None = None  # None: its loader is a dataset script, so items are not counted up front

    @property
    def import_path(self) -> str:
        return f"opencompass.configs.datasets.{self.module}"


@dataclass(frozen=True)
class Groups:
    """How a grouped dataset is split: what one group is called, and which groups the embedded fixtures hold."""

    singular: str  # "subject", "category" or "task"
    plural: str
    fixture: tuple[str, ...]  # the groups in evalkit/fixtures/data (written by scripts/make_fixtures.py)

    def noun(self, n: int) -> str:
        """What n groups are called: the singular for one ("1 subject"), else the plural ("2 subjects")."""
        return self.singular if n == 1 else self.plural


@dataclass(frozen=True)
class Dataset:
    key: str  # canonical id used in records, e.g. "arc_c"
    title: str  # column header used in tables, e.g. "ARC-c"
    suite: str  # "general" | "code" | "stem"
    metric: str  # "accuracy" | "pass@1"
    opencompass: OpenCompassConfig
    groups: Groups | None = None  # set when items are grouped by subject/task and the score is the mean of group means
    # Other spellings seen in published tables (compared squashed, see normalize_dataset). Variants that are
    # other benchmarks (HumanEval+, MBPP+, MATH-500: other tests, other item sets, other scores) never are.
    aliases: tuple[str, ...] = ()

    @property
    def grouped(self) -> bool:
        return self.groups is not None


# The leaderboard's 0-shot configs, verified present in OpenCompass 0.5.4. All use ZeroRetriever.
DATASETS: tuple[Dataset, ...] = (
    Dataset(
        key="mmlu",
        title="MMLU",
        suite="general",
        metric="accuracy",
        opencompass=OpenCompassConfig(
            module="mmlu.mmlu_openai_simple_evals_gen_b618ea",
            variable="mmlu_datasets",
            abbr="lukaemon_mmlu_",
            headline="accuracy",
            files=("data/mmlu/dev/{g}_dev.csv", "data/mmlu/test/{g}_test.csv"),
            items=ItemFile("data/mmlu/test/{g}_test.csv", "csv"),
        ),
        groups=Groups("subject", "subjects", fixture=("astronomy", "high_school_geography")),
    ),
    Dataset(
        key="mmlu_pro",
        title="MMLU-Pro",
        suite="general",
        metric="accuracy",
        opencompass=OpenCompassConfig(
            module="mmlu_pro.mmlu_pro_0shot_cot_gen_08c1de",
            variable="mmlu_pro_datasets",
            abbr="mmlu_pro_",
            headline="accuracy",
            files=("data/mmlu_pro",),
            items=ItemFile("data/mmlu_pro", "parquet-category"),
        ),
        groups=Groups("category", "categories", fixture=("math", "biology")),
    ),
    Dataset(
        key="cmmlu",
        title="CMMLU",
        suite="general",
        metric="accuracy",
        opencompass=OpenCompassConfig(
            module="cmmlu.cmmlu_0shot_cot_gen_305931",
            variable="cmmlu_datasets",
            abbr="cmmlu-",
            headline="accuracy",
            files=("data/cmmlu/dev/{g}.csv", "data/cmmlu/test/{g}.csv"),
            items=ItemFile("data/cmmlu/test/{g}.csv", "csv-after-header"),
        ),
        groups=Groups("subject", "subjects", fixture=("high_school_geography", "elementary_mathematics")),
    ),
    Dataset(
        key="bbh",
        title="BBH",
        suite="general",
        metric="accuracy",
        opencompass=OpenCompassConfig(
            module="bbh.bbh_0shot_nocot_gen_925fc4",
            variable="bbh_datasets",
            abbr="bbh-",
            headline="score",
            files=("data/BBH/data/{g}.json",),
            items=ItemFile("data/BBH/data/{g}.json", "json-examples"),
        ),
        groups=Groups("task", "tasks", fixture=("date_understanding", "boolean_expressions")),
        aliases=("BIG-Bench Hard",),
    ),
    Dataset(
        key="arc_c",
        title="ARC-c",
        suite="general",
        metric="accuracy",
        opencompass=OpenCompassConfig(
            module="ARC_c.ARC_c_gen_1e0de5",
            variable="ARC_c_datasets",
            abbr="ARC-c",
            headline="accuracy",
            files=("data/ARC/ARC-c/ARC-Challenge-Dev.jsonl",),
            items=ItemFile("data/ARC/ARC-c/ARC-Challenge-Dev.jsonl", "arc-jsonl"),
        ),
        aliases=("ARC-Challenge", "ARC"),
    ),
    Dataset(
        key="hellaswag",
        title="HellaSwag",
        suite="general",
        metric="accuracy",
        opencompass=OpenCompassConfig(
            module="hellaswag.hellaswag_gen_6faab5",
            variable="hellaswag_datasets",
            abbr="hellaswag",
            headline="accuracy",
            files=("data/hellaswag/hellaswag.jsonl",),
            items=ItemFile("data/hellaswag/hellaswag.jsonl", "jsonl"),
        ),
    ),
    Dataset(
        key="winogrande",
        title="WinoGrande",
        suite="general",
        metric="accuracy",
        opencompass=OpenCompassConfig(
            module="winogrande.winogrande_gen_458220",
            variable="winogrande_datasets",
            abbr="winogrande",
            headline="accuracy",
            files=("data/winogrande/dev.jsonl",),
            items=ItemFile("data/winogrande/dev.jsonl", "jsonl"),
        ),
        aliases=("Winogrand",),
    ),
    Dataset(
        key="humaneval",
        title="HumanEval",
        suite="code",
        metric="pass@1",
        opencompass=OpenCompassConfig(
            module="humaneval.humaneval_openai_sample_evals_gen_dcae0e",
            variable="humaneval_datasets",
            abbr="openai_humaneval",
            headline="humaneval_pass@1",
            files=("data/humaneval/human-eval-v2-20210705.jsonl",),
            items=ItemFile("data/humaneval/human-eval-v2-20210705.jsonl", "jsonl"),
        ),
    ),
    Dataset(
        key="mbpp",
        title="MBPP",
        suite="code",
        metric="pass@1",
        opencompass=OpenCompassConfig(
            module="mbpp.sanitized_mbpp_mdblock_0shot_nocot_gen_a2e416",
            variable="sanitized_mbpp_datasets",
            abbr="sanitized_mbpp",
            headline="score",
            files=("data/mbpp/sanitized-mbpp.jsonl",),
            items=ItemFile("data/mbpp/sanitized-mbpp.jsonl", "mbpp-jsonl"),
        ),
    ),
    Dataset(
        key="livecodebench",
        title="LiveCodeBench",
        suite="code",
        metric="pass@1",
        # livecodebench_gen also defines code-execution and test-output tasks; the LiveCodeBench score is
        # code generation alone.
        opencompass=OpenCompassConfig(
            module="livecodebench.livecodebench_gen",
            variable="LCB_datasets",
            abbr="lcb_code_generation",
            headline="pass@1",
            files=("data/code_generation_lite/code_generation_lite.py",),
            abbrs=("lcb_code_generation",),
        ),
        aliases=("LCB",),
    ),
    Dataset(
        key="gpqa",
        title="GPQA",
        suite="stem",
        metric="accuracy",
        opencompass=OpenCompassConfig(
            module="gpqa.gpqa_openai_simple_evals_gen_5aeece",
            variable="gpqa_datasets",
            abbr="GPQA_diamond",
            headline="accuracy",
            files=("data/gpqa/gpqa_diamond.csv",),
            items=ItemFile("data/gpqa/gpqa_diamond.csv", "gpqa-csv"),
        ),
        aliases=("GPQA-Diamond",),
    ),
    Dataset(
        key="math",
        title="MATH",
        suite="stem",
        metric="accuracy",
        opencompass=OpenCompassConfig(
            module="math.math_0shot_gen_393424",
            variable="math_datasets",
            abbr="math",
            headline="accuracy",
            files=("data/math/math.json",),
            items=ItemFile("data/math/math.json", "json-object"),
        ),
        aliases=("Mathematics",),
    ),
    Dataset(
        key="gsm8k",
        title="GSM8K",
        suite="stem",
        metric="accuracy",
        opencompass=OpenCompassConfig(
            module="gsm8k.gsm8k_0shot_v2_gen_a58960",
            variable="gsm8k_datasets",
            abbr="gsm8k",
            headline="accuracy",
            files=("data/gsm8k/train.jsonl", "data/gsm8k/test.jsonl"),
            items=ItemFile("data/gsm8k/test.jsonl", "jsonl"),
        ),
        aliases=("GSM",),
    ),
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


def normalize_dataset(name: str) -> str:
    """Map any common spelling ("ARC-c", "GSM-8K", "Winogrand", "Math") to its canonical key.

    Variants that are different benchmarks ("HumanEval+", "MBPP+", "MATH-500") are unknown names.
    """
    squashed = _squash(name)
    for d in DATASETS:
        if squashed in (_squash(d.key), _squash(d.title)):
            return d.key
    for d in DATASETS:  # a key or title wins over another dataset's alias
        if squashed in map(_squash, d.aliases):
            return d.key
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


def dataset_of(abbr: str) -> tuple[str, str | None]:
    """OpenCompass dataset abbr -> (canonical dataset key, group), e.g. 'bbh-navigate' -> ('bbh', 'navigate').

    The group is the subject, category or task for grouped datasets and None otherwise.
    """
    for d in DATASETS:
        prefix = d.opencompass.abbr
        if d.grouped and abbr.startswith(prefix) and len(abbr) > len(prefix):
            return d.key, abbr[len(prefix) :]
        if not d.grouped and abbr == prefix:
            return d.key, None
    raise EvalkitError(
        f"unknown OpenCompass dataset abbr {abbr!r}; evalkit reads the abbrs of its own suites "
        f"({', '.join(d.opencompass.abbr + ('*' if d.grouped else '') for d in DATASETS)})"
    )
