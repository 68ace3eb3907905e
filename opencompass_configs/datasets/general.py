"""evalkit's `general` suite for the stock OpenCompass CLI: OpenCompass 0.5.4's own 0-shot configs.

    opencompass opencompass_configs/datasets/general.py ...   (or import general_datasets from your config)

The same configs evalkit runs (evalkit/catalog/datasets.py). Data layout: README.md next to this file.
"""

from mmengine.config import read_base

with read_base():
    from opencompass.configs.datasets.ARC_c.ARC_c_gen_1e0de5 import ARC_c_datasets
    from opencompass.configs.datasets.bbh.bbh_0shot_nocot_gen_925fc4 import bbh_datasets
    from opencompass.configs.datasets.cmmlu.cmmlu_0shot_cot_gen_305931 import cmmlu_datasets
    from opencompass.configs.datasets.hellaswag.hellaswag_gen_6faab5 import hellaswag_datasets
    from opencompass.configs.datasets.mmlu.mmlu_openai_simple_evals_gen_b618ea import mmlu_datasets
    from opencompass.configs.datasets.mmlu_pro.mmlu_pro_0shot_cot_gen_08c1de import mmlu_pro_datasets
    from opencompass.configs.datasets.winogrande.winogrande_gen_458220 import winogrande_datasets

general_datasets = [
    *mmlu_datasets,
    *mmlu_pro_datasets,
    *cmmlu_datasets,
    *bbh_datasets,
    *ARC_c_datasets,
    *hellaswag_datasets,
    *winogrande_datasets,
]
