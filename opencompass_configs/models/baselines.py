"""The baselines whose local checkpoint directories are set in the environment:

    QWEN2_5_7B_INSTRUCT_PATH  LLAMA_3_1_8B_INSTRUCT_PATH  QWEN3_8B_PATH (thinking mode)  YI_6B_CHAT_PATH
    YI_9B_PATH  YI_34B_CHAT_PATH  YI_34B_CHAT_4BITS_PATH (AWQ)  YI_34B_CHAT_8BITS_PATH (GPTQ)

Generation settings per model live in evalkit.catalog.baselines.BASELINES, shared with `evalkit run`.
"""

# mmengine turns `from ... import` in a config file into lazy placeholders that cannot be called.
_stock = __import__("evalkit.oc.stock", fromlist=["cli"])
models = _stock.cli(_stock.available_baselines)
