"""evalkit's `code` suite for the stock OpenCompass CLI: OpenCompass 0.5.4's own 0-shot configs.

The same configs evalkit runs (evalkit/catalog/datasets.py). Data layout: README.md next to this file.
These evaluators execute model-written code; evalkit runs them in its sandbox, the stock CLI does not.
"""

from mmengine.config import read_base

with read_base():
    from opencompass.configs.datasets.humaneval.humaneval_openai_sample_evals_gen_dcae0e import humaneval_datasets
    from opencompass.configs.datasets.livecodebench.livecodebench_gen import LCB_datasets
    from opencompass.configs.datasets.mbpp.sanitized_mbpp_mdblock_0shot_nocot_gen_a2e416 import (
        sanitized_mbpp_datasets,
    )

# livecodebench_gen also defines the code-execution and test-output tasks; the LiveCodeBench score
# is code generation alone.
code_datasets = [
    *humaneval_datasets,
    *sanitized_mbpp_datasets,
    *[d for d in LCB_datasets if d["abbr"] == "lcb_code_generation"],
]
