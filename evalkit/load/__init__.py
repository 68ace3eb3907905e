"""Load stage: a checkpoint directory becomes a `Family` of branch models.

Owns reading checkpoints (`checkpoint`), a family's branches as values, named and sized from config.json
and the safetensors headers without torch (`branches`), the family and its branches as plain transformers
models made of views of the family's tensors (`family`), listing and exporting branches (`export`),
devices and dtypes (`devices`), the embedded tiny family and its tokenizer (`tiny`, `tokenizer`) and
random-weight families in published shapes (`random_weights`). It imports catalog and errors.
"""
