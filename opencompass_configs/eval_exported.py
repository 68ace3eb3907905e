"""One exported branch on evalkit's suites (sandboxed code scoring), for the stock CLI:

    EXPORTED_BRANCH_PATH=/models/Ruyi-7B-E3B COMPASS_DATA_CACHE=/data/opencompass \
        opencompass opencompass_configs/eval_exported.py -w outputs/e3b

EVALKIT_BACKEND=vllm uses OpenCompass's vLLM backend instead of evalkit's model class.
EVALKIT_SUITES (default general,code,stem) and EVALKIT_LIMIT narrow the run.
"""

import os as _os

# mmengine turns `from ... import` in a config file into lazy placeholders that cannot be called.
_configs = __import__("evalkit.oc.configs", fromlist=["exported_models"])
datasets = __import__("evalkit.oc.driver", fromlist=["stock_cli_datasets"]).stock_cli_datasets()
models = _configs.exported_models(_os.environ.get("EVALKIT_BACKEND", "hf"))
