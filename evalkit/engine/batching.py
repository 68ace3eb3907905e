"""Batching and stopping, shared by every generation and scoring path: length-sorted batches, padding,
and stop strings (cut after decoding, or checked on the token stream while decoding).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from evalkit.errors import EvalkitError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def batches(indices: list[int], lengths: list[int], size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first); callers restore input order."""
    if size < 1:
        raise EvalkitError(f"batch size must be at least 1, got {size}")
    order = [i for _, i in sorted(zip(lengths, indices, strict=True), key=lambda p: (-p[0], p[1]))]
    return [order[k : k + size] for k in range(0, len(order), size)]


def right_pad(seqs: Sequence[Sequence[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[r, : len(s)] = 1
    return ids.to(device), mask.to(device)


def left_pad(seqs: Sequence[Sequence[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for r, s in enumerate(seqs):
        if s:
            ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s) :] = 1
    return ids.to(device), mask.to(device)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text up to the earliest stop string."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


def stop_string_check(tokenizer: PreTrainedTokenizerBase, stop: Sequence[str], every: int) -> Any:
    """A `generate.StopCheck`: a row is finished once the decoded tail of its tokens holds a stop string.

    The tail covers the tokens since the last check plus the longest stop string's tokens and a margin,
    so a stop string completed since the last check is found.
    """
    strings = [s for s in stop if s]
    lookback = every + max(len(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in strings) + 2

    def check(tokens: torch.Tensor) -> torch.Tensor:
        tails = tokenizer.batch_decode(tokens[:, -lookback:].cpu(), skip_special_tokens=True)
        return torch.tensor([any(s in t for s in strings) for t in tails], dtype=torch.bool)

    return check


class StopStrings:
    """Per-row stopping for stock `generate`: a row is done once its generated text holds a stop string."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, stop: Sequence[str], prompt_len: int):
        self.prompt_len = prompt_len
        self.check = stop_string_check(tokenizer, stop, every=1)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return self.check(input_ids[:, self.prompt_len :]).to(input_ids.device)
