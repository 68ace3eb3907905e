"""One exported branch on evalkit's suites (sandboxed code scoring), for the stock CLI:

    EXPORTED_BRANCH_PATH=/models/Ruyi-7B-E3B COMPASS_DATA_CACHE=/data/opencompass \
        opencompass opencompass_configs/eval_exported.py -w outputs/e3b

EVALKIT_BACKEND=vllm uses OpenCompass's vLLM backend instead of evalkit's model class.
EVALKIT_SUITES (default general,code,stem) and EVALKIT_LIMIT narrow the run. A bad setting stops
`opencompass` here with one line (evalkit.oc.stock lists them all).
"""

# mmengine turns `from ... import` in a config file into lazy placeholders that cannot be called.
_stock = __import__("evalkit.oc.stock", fromlist=["cli"])
datasets = _stock.cli(_stock.datasets)
models = _stock.cli(_stock.exported_models)
