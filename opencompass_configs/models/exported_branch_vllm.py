"""One branch exported by `evalkit export-branch`, from $EXPORTED_BRANCH_PATH, through OpenCompass's vLLM backend."""

# mmengine turns `from ... import` in a config file into lazy placeholders that cannot be called.
models = __import__("evalkit.oc.configs", fromlist=["exported_models"]).exported_models("vllm")
