"""One branch exported by `evalkit export-branch`, from $EXPORTED_BRANCH_PATH, through OpenCompass's vLLM backend."""

# mmengine turns `from ... import` in a config file into lazy placeholders that cannot be called.
_stock = __import__("evalkit.oc.stock", fromlist=["cli"])
models = _stock.cli(lambda: _stock.exported_models("vllm"))
