"""One exported branch on evalkit's suites (sandboxed code scoring), for the stock CLI:

    EXPORTED_BRANCH_PATH=/models/Ruyi-7B-E3B COMPASS_DATA_CACHE=/data/opencompass \
        opencompass opencompass_configs/eval_exported.py -w outputs/e3b

EVALKIT_BACKEND=vllm uses OpenCompass's vLLM backend instead of evalkit's model class.
EVALKIT_SUITES (default general,code,stem) and EVALKIT_LIMIT narrow the run.
"""

import os as _os

# mmengine turns `from ... import` in a config file into lazy placeholders that cannot be called.
_configs = __import__("evalkit.model_configs", fromlist=["exported_models"])
_suites = __import__("evalkit.suites", fromlist=["dataset_configs"])
_sandboxed = __import__("evalkit.oc_evaluators", fromlist=["use_sandboxed_evaluators"]).use_sandboxed_evaluators
_dotted = __import__("evalkit._oc_driver", fromlist=["dotted"]).dotted  # classes -> import paths, for Config.dump

_limit = _os.environ.get("EVALKIT_LIMIT")
_suite_names = _os.environ.get("EVALKIT_SUITES", "general,code,stem")
_configured = _suites.dataset_configs(_suite_names, limit=int(_limit) if _limit else None)
datasets = [_dotted(_sandboxed(d)) for d in _configured]
models = _configs.exported_models(_os.environ.get("EVALKIT_BACKEND", "hf"))
