"""The model protocol every evaluator talks to: request types in, lists of the same length out.

`LM` is four request-typed methods: each takes a list and returns a list of the same length, with no
side effects. `evalkit.engine.family_engine.BranchLM` serves it for one branch of a loaded family.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from evalkit.errors import EvalkitError

Message = dict[str, str]  # {"role": "user" | "assistant" | "system", "content": ...}


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str | tuple[Message, ...]  # plain text, or chat messages (rendered with the chat template)
    max_out_len: int = 512
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_tokens("max_out_len", self.max_out_len, 1)


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """log p(continuation | context), over the tokens `evalkit.engine.spans.continuation_span` names."""

    context: str
    continuation: str


@dataclass(frozen=True)
class PerplexityRequest:
    """Mean negative log-likelihood per token of `text`, over the tokens `evalkit.engine.spans.text_span` names."""

    text: str
    mask_length: int | None = None  # the first N tokens are context: only the tokens after them count

    def __post_init__(self) -> None:
        if self.mask_length is not None:
            _check_tokens("mask_length", self.mask_length, 0)


@dataclass(frozen=True)
class GenerationSettings:
    """How a model turns a prompt into text. Greedy always; everything else comes from the model config."""

    stop: tuple[str, ...] = ()  # extra stop strings, on top of each request's own
    chat_template: bool = True  # render prompts with the tokenizer's chat template when it has one
    thinking: bool | None = None  # Qwen3's enable_thinking; None leaves the template's default
    # The truncation rule, one for every request and both paths (per-branch and shared trunk): the model
    # reads at most max_seq_len tokens, counting the ones it writes, and an input longer than that loses
    # its first tokens, never its last.
    # - Generation reads the last (max_seq_len - max_out_len) tokens of the rendered prompt (`prompt_budget`).
    # - Scoring (loglikelihood, perplexity) reads the last max_seq_len tokens of the text (`first_read`): the
    #   scored tokens are at the end, so only context is lost, and all of them are read with the token before
    #   them. What cannot be kept whole is an EvalkitError, never a shorter prompt or a partial score:
    #   max_out_len >= max_seq_len, or more scored tokens than max_seq_len - 1.
    max_seq_len: int = 4096

    def __post_init__(self) -> None:
        _check_tokens("max_seq_len", self.max_seq_len, 2)  # one token read, one scored or written


def _check_tokens(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise EvalkitError(f"{name} must be a whole number of tokens, at least {least}; got {value!r}")


def prompt_budget(max_seq_len: int, max_out_len: int) -> int:
    """How many of a prompt's last tokens generation reads (see `GenerationSettings.max_seq_len`)."""
    if max_out_len >= max_seq_len:
        raise EvalkitError(
            f"max_out_len {max_out_len} leaves no room for the prompt within max_seq_len {max_seq_len}; "
            f"raise max_seq_len above {max_out_len} or lower max_out_len"
        )
    return max_seq_len - max_out_len


def first_read(n_tokens: int, first_scored: int, max_seq_len: int, what: str) -> int:
    """Index of the first token of a scored sequence the model reads: its last max_seq_len tokens, which must
    hold every scored token (those from `first_scored` on) and the one before them (see
    `GenerationSettings.max_seq_len`). `what` names the request in the error."""
    drop = max(0, n_tokens - max_seq_len)
    if drop > first_scored - 1:
        needed = n_tokens - first_scored + 1
        raise EvalkitError(
            f"{what} scores {n_tokens - first_scored} tokens, which with the one before them do not fit "
            f"max_seq_len {max_seq_len}; raise max_seq_len to at least {needed}"
        )
    return drop


@dataclass(frozen=True)
class EngineConfig:
    batch_size: int = 8
    shared_trunk: bool = False  # score all of the run's branches in one trunk pass (evalkit.engine.shared_trunk)
    # The run's branches, scored together on the shared path (() = all): names in any case or exit layers,
    # which the engine settles to the family's own names when it is made.
    branches: tuple[str, ...] = ()
    attn_implementation: str | None = None  # None: sdpa


class LM(Protocol):
    """What an evaluator needs from a model. Lists in, lists of the same length out, no side effects."""

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]: ...

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]: ...

    def perplexity(self, requests: Sequence[PerplexityRequest]) -> list[float]: ...

    def token_len(self, texts: Sequence[str]) -> list[int]: ...
