"""evalkit's `stem` suite for the stock OpenCompass CLI: OpenCompass 0.5.4's own 0-shot configs.

The same configs evalkit runs (evalkit/catalog/datasets.py). Data layout: README.md next to this file.
"""

from mmengine.config import read_base

with read_base():
    from opencompass.configs.datasets.gpqa.gpqa_openai_simple_evals_gen_5aeece import gpqa_datasets
    from opencompass.configs.datasets.gsm8k.gsm8k_0shot_v2_gen_a58960 import gsm8k_datasets
    from opencompass.configs.datasets.math.math_0shot_gen_393424 import math_datasets

stem_datasets = [*gpqa_datasets, *math_datasets, *gsm8k_datasets]
