"""The two decode paths a benchmark times, on the same inputs: stock `generate` and the fast decoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import Protocol as TypingProtocol

import torch

from evalkit.benchmark.measure import Clock
from evalkit.engine.generate import Generator
from evalkit.load.family import Branch, Family


class Runner(TypingProtocol):
    def once(self, clock: Clock) -> tuple[float, float]:
        """Generate gen_len tokens for the batch once; (seconds to the first token, seconds end to end)."""
        ...


def prompts(family: Family, batch_size: int, prompt_len: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids (full length, no padding) and their attention mask, on the family's device."""
    vocab = int(family.files.config["vocab_size"])
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch_size, prompt_len), generator=gen)
    return ids.to(family.device), torch.ones_like(ids, device=family.device)


class FastRunner:
    """evalkit's static-cache decoder: prefill and decode timed in one pass."""

    def __init__(
        self,
        family: Family,
        branches: Sequence[Branch],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        gen_len: int,
        mode: str = "auto",
    ) -> None:
        self.ids, self.mask, self.gen_len = input_ids, attention_mask, gen_len
        self.gen = Generator(family, branches, input_ids.shape[0], input_ids.shape[1] + gen_len, mode)

    def once(self, clock: Clock) -> tuple[float, float]:
        start = clock.now()
        first = self.gen.prefill(self.ids, self.mask)
        prefilled = clock.now()
        self.gen.decode(first, self.mask, self.gen_len - 1)  # no stop: EOS is ignored, length is fixed
        end = clock.now()
        return clock.seconds(start, prefilled), clock.seconds(start, end)


class HFRunner:
    """Stock transformers `generate` on the branch model (min_new_tokens = max_new_tokens). A stopping
    criterion, called once per generated token, marks the clock at the first one: the time to first token."""

    def __init__(
        self,
        family: Family,
        branch: Branch,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        gen_len: int,
        attn: str,
    ) -> None:
        self.model: Any = family.branch_model(branch, attn_implementation=attn)
        self.ids, self.mask, self.gen_len = input_ids, attention_mask, gen_len
        config = family.files.config
        eos = config.get("eos_token_id")
        self.pad = config.get("pad_token_id", eos if isinstance(eos, int) else 0)

    def once(self, clock: Clock) -> tuple[float, float]:
        from transformers import StoppingCriteriaList

        first = _FirstToken(clock)
        start = clock.now()
        with torch.no_grad():
            self.model.generate(
                input_ids=self.ids,
                attention_mask=self.mask,
                max_new_tokens=self.gen_len,
                min_new_tokens=self.gen_len,
                do_sample=False,
                pad_token_id=self.pad,
                stopping_criteria=StoppingCriteriaList([first]),
            )
        end = clock.now()
        return clock.seconds(start, first.mark), clock.seconds(start, end)


class _FirstToken:
    """A stopping criterion that never stops: it records the clock when the first token is chosen."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.mark: Any = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
        if self.mark is None:
            self.mark = self.clock.now()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
