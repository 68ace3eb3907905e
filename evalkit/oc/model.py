"""OpenCompass model: one branch of one family (a plain checkpoint is a family with one branch).

A thin adapter from OpenCompass's `BaseModel` calls onto the `evalkit.engine.family_engine` protocol. The checkpoint is
loaded through the process's engine registry, so every branch and dataset run in one process shares
one copy of the weights. Config keys (besides OpenCompass's own abbr, batch_size, max_out_len, run_cfg):

    path, branch ("E3B", an exit layer, or None for a single-branch checkpoint), dtype, device,
    stop_words, chat_template, thinking (Qwen3), max_seq_len, shared_trunk, run_branches
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from opencompass.models.base import BaseModel, LMTemplateParser
from opencompass.models.base_api import APITemplateParser
from opencompass.utils.prompt import PromptList

from evalkit.engine.family_engine import engine_for
from evalkit.engine.requests import (
    EngineConfig,
    GenerateRequest,
    GenerationSettings,
    LoglikelihoodRequest,
    Message,
    PerplexityRequest,
)
from evalkit.errors import EvalkitError
from evalkit.oc.signals import record_signals

_ROLES = {"HUMAN": "user", "BOT": "assistant", "SYSTEM": "system"}
# Chat prompts arrive as role lists: HUMAN/BOT/SYSTEM, the BOT turn being the one to generate.
_CHAT_META = dict(
    round=[
        dict(role="HUMAN", api_role="HUMAN"),
        dict(role="SYSTEM", api_role="SYSTEM"),
        dict(role="BOT", api_role="BOT", generate=True),
    ]
)


class FamilialBranchModel(BaseModel):
    """One branch of a familial checkpoint (or a plain HF checkpoint) as an OpenCompass model."""

    def __init__(
        self,
        path: str,
        branch: str | int | None = None,
        *,
        dtype: str | None = None,
        device: str = "cpu",
        batch_size: int = 8,
        max_seq_len: int = 4096,
        stop_words: Sequence[str] = (),
        chat_template: bool = True,
        thinking: bool | None = None,
        shared_trunk: bool = False,
        run_branches: Sequence[str] = (),
        attn_implementation: str | None = None,
        **kwargs: Any,
    ):
        unknown = sorted(set(kwargs) - {"meta_template", "generation_kwargs", "tokenizer_only", "sync_rank"})
        if unknown:
            raise EvalkitError(
                f"unknown model config key(s) {', '.join(unknown)} for {type(self).__name__}; "
                "see evalkit/oc/model.py for the keys it reads"
            )
        super().__init__(path=path, max_seq_len=max_seq_len, meta_template=kwargs.get("meta_template"))
        config = EngineConfig(
            batch_size=batch_size,
            shared_trunk=shared_trunk,
            branches=tuple(run_branches),
            attn_implementation=attn_implementation,
        )
        engine = engine_for(path, dtype=dtype, device=device, config=config)
        branch_ref = branch if branch is not None else engine.family.branches[-1].name
        settings = GenerationSettings(
            stop=tuple(stop_words), chat_template=chat_template, thinking=thinking, max_seq_len=max_seq_len
        )
        self.lm = engine.lm(branch_ref, settings)
        self.chat = chat_template and bool(getattr(engine.tokenizer, "chat_template", None))
        self.template_parser = APITemplateParser(_CHAT_META) if self.chat else LMTemplateParser()
        self._plain_parser = LMTemplateParser()

    def parse_template(self, prompt_template: Any, mode: str) -> Any:
        """Generation keeps the chat roles (the chat template renders them); scoring reads plain text."""
        parser = self.template_parser if mode == "gen" else self._plain_parser
        return parser.parse_template(prompt_template, mode)

    def generate(
        self, inputs: list, max_out_len: int, stopping_criteria: Sequence[str] = (), **kwargs: Any
    ) -> list[str]:
        stop = tuple(stopping_criteria or ())
        answers = self.lm.generate_scored([GenerateRequest(chat_messages(p), max_out_len, stop) for p in inputs])
        for prompt, (_, signals) in zip(inputs, answers, strict=True):
            record_signals(prompt, signals)  # into the running task's signal sink, if it has one
        return [text for text, _ in answers]

    def get_ppl(self, inputs: list, mask_length: list[int] | None = None) -> np.ndarray:
        """Mean negative log-likelihood per token of each text, its first `mask_length` tokens unscored.

        mask_length counts the text's own tokens, as in OpenCompass's HF models; OpenCompass computes it
        by encoding the context alone, so a context that ends in whitespace (or merges with the text after
        it) is masked elsewhere than `get_loglikelihood` would split it (see `evalkit.engine.spans`). A text
        with no token left to score is an EvalkitError; longer texts lose their start (the truncation rule at
        `GenerationSettings.max_seq_len`).
        """
        masks: list[int | None] = list(mask_length) if mask_length else [None] * len(inputs)
        requests = [PerplexityRequest(_text(p), m) for p, m in zip(inputs, masks, strict=True)]
        return np.array(self.lm.perplexity(requests))

    def get_loglikelihood(self, inputs: list, conts: list[str]) -> np.ndarray:
        """log p(continuation | context) for prompts that end with their continuation, as OpenCompass's LL
        inferencer builds them.

        The span scored is lm-eval's (`evalkit.engine.spans`): the context's trailing whitespace moves into
        the continuation, and the tokens scored are those of enc(context + continuation) after
        enc(context), so every candidate of a question is scored from the same character on. A token
        that straddles the boundary (punctuation merged with the letters after it) is scored with the
        continuation. An empty continuation, one that is not at the end of its prompt, or one with no
        context token before it is an EvalkitError.
        """
        requests = [LoglikelihoodRequest(*_split_continuation(_text(p), c)) for p, c in zip(inputs, conts, strict=True)]
        return np.array(self.lm.loglikelihood(requests))

    def get_token_len(self, prompt: Any) -> int:
        if self.chat and not isinstance(prompt, str):
            return self.lm.token_len([self.lm.render(chat_messages(prompt))])[0]
        return self.lm.token_len([_text(prompt)])[0]

    def encode(self, prompt: str) -> Any:
        import torch

        return torch.tensor([self.lm.engine.tokenizer(prompt)["input_ids"]])

    def decode(self, tokens: Any) -> str:
        return str(self.lm.engine.tokenizer.decode(tokens[0]))


def chat_messages(p: Any) -> str | tuple[Message, ...]:
    """A PromptList of role turns -> chat messages (consecutive turns of one role merged); text stays text."""
    if isinstance(p, str):
        return p
    messages: list[Message] = []
    for item in p:
        if isinstance(item, str) or not item.get("prompt"):
            continue
        role = _ROLES.get(item["role"], "user")
        if messages and messages[-1]["role"] == role:
            messages[-1] = {"role": role, "content": messages[-1]["content"] + "\n" + item["prompt"]}
        else:
            messages.append({"role": role, "content": item["prompt"]})
    return tuple(messages)


def _text(p: Any) -> str:
    if isinstance(p, str):
        return p
    if isinstance(p, PromptList):
        return "".join(i if isinstance(i, str) else i.get("prompt", "") for i in p)
    return str(p)


def _split_continuation(text: str, cont: str) -> tuple[str, str]:
    """(context, continuation) of a prompt that ends with its continuation."""
    if not cont:
        return text, cont  # the loglikelihood request names the empty continuation
    if not text.endswith(cont):
        tail = text if len(text) <= 60 else "…" + text[-60:]
        raise EvalkitError(
            f"the continuation {cont!r} is not at the end of its prompt ({tail!r}); get_loglikelihood scores "
            "the end of the prompt, so check the dataset's prompt template"
        )
    return text[: len(text) - len(cont)], cont
