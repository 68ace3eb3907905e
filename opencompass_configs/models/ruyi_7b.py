"""AI-Flow-Ruyi-7B as five OpenCompass models, one per branch: abbrs ruyi-7b-e3b .. ruyi-7b-e7b.

The checkpoint is the local directory in $RUYI_7B_PATH (EVALKIT_DTYPE, EVALKIT_DEVICE and
EVALKIT_BATCH_SIZE override bf16 / cuda / 16). In one process (`opencompass --debug`, `evalkit run`)
the five branches share one copy of the weights; stock runners load it once per task subprocess.
"""

# mmengine turns `from ... import` in a config file into lazy placeholders that cannot be called.
models = __import__("evalkit.oc.configs", fromlist=["ruyi_models"]).ruyi_models()
