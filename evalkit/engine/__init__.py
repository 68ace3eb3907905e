"""Engine stage: the model protocol and what serves it, over a loaded family.

Owns the request types and the `LM` protocol (`requests`), the per-family engine that answers them
(`family_engine`), batching and stop strings (`batching`), shared-trunk scoring (`shared_trunk`), the fast decoder over
explicit tensors (`decode`), greedy generation with CUDA graphs (`generate`), shared-trunk
generation across branches (`shared_generate`) and self-speculative decoding, a shallow branch
drafting for a deeper one over the shared trunk (`speculative`). It imports load and nothing that knows OpenCompass.
"""
