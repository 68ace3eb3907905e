"""A familial checkpoint as OpenCompass models, one per branch: for AI-Flow-Ruyi-7B, ruyi-7b-e3b .. ruyi-7b-e7b.

The checkpoint is the local directory in $RUYI_7B_PATH; any familial checkpoint works, its branches read
from its own config.json and weights. EVALKIT_BRANCHES picks some, as `evalkit run --branches` does: all
(default), names in any case (E3B,e7b) or exit layers (11,27). EVALKIT_DTYPE, EVALKIT_DEVICE and
EVALKIT_BATCH_SIZE override bf16 / cuda / 16. In one process (`opencompass --debug`, `evalkit run`) the
branches share one copy of the weights; stock runners load it once per task subprocess.
"""

# mmengine turns `from ... import` in a config file into lazy placeholders that cannot be called.
_stock = __import__("evalkit.oc.stock", fromlist=["cli"])
models = _stock.cli(_stock.family_models)
