"""The model protocol every evaluator talks to: request types in, lists of the same length out.

`LM` is four request-typed methods: each takes a list and returns a list of the same length, with no
side effects. `evalkit.engine.lm.BranchLM` serves it for one branch of a loaded family.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

Message = dict[str, str]  # {"role": "user" | "assistant" | "system", "content": ...}


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str | tuple[Message, ...]  # plain text, or chat messages (rendered with the chat template)
    max_out_len: int = 512
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoglikelihoodRequest:
    context: str
    continuation: str


@dataclass(frozen=True)
class PerplexityRequest:
    text: str
    mask_length: int | None = None  # the first N tokens are context: only the tokens after them count


@dataclass(frozen=True)
class GenerationSettings:
    """How a model turns a prompt into text. Greedy always; everything else comes from the model config."""

    stop: tuple[str, ...] = ()  # extra stop strings, on top of each request's own
    chat_template: bool = True  # render prompts with the tokenizer's chat template when it has one
    thinking: bool | None = None  # Qwen3's enable_thinking; None leaves the template's default
    max_seq_len: int = 4096  # prompt + output; longer prompts lose their start


@dataclass(frozen=True)
class EngineConfig:
    batch_size: int = 8
    shared_trunk: bool = False  # score all of the run's branches in one trunk pass (evalkit.engine.trunk)
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
