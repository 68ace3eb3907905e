"""Every Ruyi-7B branch, plus the baselines whose paths are set, on evalkit's suites, for the stock CLI:

    RUYI_7B_PATH=/models/AI-Flow-Ruyi-7B COMPASS_DATA_CACHE=/data/opencompass \
        opencompass opencompass_configs/eval_ruyi.py -w outputs/ruyi

Datasets are OpenCompass's own 0-shot configs (evalkit.oc.suites); code datasets are scored by evalkit's
sandboxed evaluators. EVALKIT_SUITES (default general,code,stem) and EVALKIT_LIMIT narrow the run.
"""

# mmengine turns `from ... import` in a config file into lazy placeholders that cannot be called.
_configs = __import__("evalkit.oc.configs", fromlist=["ruyi_models"])
datasets = __import__("evalkit.oc.driver", fromlist=["stock_cli_datasets"]).stock_cli_datasets()
models = _configs.ruyi_models() + _configs.available_baselines()
