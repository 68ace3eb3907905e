"""Every branch of a familial checkpoint, plus the baselines whose paths are set, on evalkit's suites:

    RUYI_7B_PATH=/models/AI-Flow-Ruyi-7B COMPASS_DATA_CACHE=/data/opencompass \
        opencompass opencompass_configs/eval_ruyi.py -w outputs/ruyi

Any familial checkpoint works: its branches come from its own config.json and weights. EVALKIT_BRANCHES
picks some, as `evalkit run --branches` does: all (default), names in any case (E3B,e7b) or exit layers
(11,27). Datasets are OpenCompass's own 0-shot configs (evalkit.oc.suites); code datasets are scored by
evalkit's sandboxed evaluators. EVALKIT_SUITES (default general,code,stem) and EVALKIT_LIMIT narrow the
run. A bad setting stops `opencompass` here with one line (evalkit.oc.stock lists them all).
"""

# mmengine turns `from ... import` in a config file into lazy placeholders that cannot be called.
_stock = __import__("evalkit.oc.stock", fromlist=["cli"])
datasets = _stock.cli(_stock.datasets)
models = _stock.cli(_stock.family_models, _stock.available_baselines)
