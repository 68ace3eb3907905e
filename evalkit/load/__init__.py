"""Load stage: a checkpoint directory becomes a `Family` of branch models.

Owns reading checkpoints (`checkpoint`), the family and its branches as plain transformers models made
of views of the family's tensors (`family`), listing and exporting branches (`export`), devices and
dtypes (`devices`), the embedded tiny family and its tokenizer (`tiny`, `tokenizer`) and random-weight
families in published shapes (`random`). It imports catalog and errors.
"""
