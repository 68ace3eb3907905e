"""Confidence signals of generated answers, and each branch's agreement with the last branch's answer.

Both decoders (the shared one and stock `generate`) compute every step's logits anyway; from them each
generated token gets its log-probability and the entropy of its distribution, with no extra model call.
An answer's signals (`evalkit.records.results.Signals`) cover the tokens its text keeps: up to and
including an EOS, and up to the token that completes the text before a stop string.

Agreement is one teacher-forced shared-trunk pass over prompt + the last branch's answer: at every
answer position each branch's greedy next token is compared with the last branch's token, so a single
pass gives all branches' agreement at once. The fraction of agreeing positions predicts how many of a
draft branch's tokens the last branch would accept under self-speculative decoding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from evalkit.engine.batching import cut_at_stop, right_pad
from evalkit.engine.shared_trunk import Trunk
from evalkit.records.results import Signals


def kept_length(decode: Callable[[list[int]], str], tokens: Sequence[int], stop: Sequence[str]) -> int:
    """How many leading tokens the answer's text keeps: all of them unless a stop string cuts the text, else
    the fewest whose decoded text covers what is kept (at least one, so an answer always has a token)."""
    tokens = list(tokens)
    if not tokens:
        return 0
    full = decode(tokens)
    kept = cut_at_stop(full, stop)
    if len(kept) == len(full):
        return len(tokens)
    lo, hi = 1, len(tokens)
    while lo < hi:  # the smallest m whose text reaches the kept text's length
        mid = (lo + hi) // 2
        if len(decode(tokens[:mid])) >= len(kept):
            hi = mid
        else:
            lo = mid + 1
    return lo


def answer_signals(stats: Tensor, prompt_tokens: int) -> Signals:
    """Signals of one answer from its kept tokens' (n, 2) rows of (log-prob, entropy)."""
    stats = stats.float().cpu()
    if stats.shape[0] == 0:
        return Signals(prompt_tokens=prompt_tokens, answer_tokens=0)
    logp = stats[:, 0].clamp(max=0.0)  # float rounding may put the top token a hair above 0
    return Signals(
        mean_logprob=_finite(logp.mean()),
        min_logprob=_finite(logp.min()),
        first_entropy=_finite(stats[0, 1].clamp(min=0.0)),
        prompt_tokens=prompt_tokens,
        answer_tokens=int(stats.shape[0]),
    )


def _finite(x: Tensor) -> float | None:
    """A signal as a float; None where overflowing logits left it NaN or infinite (a record holds no NaN)."""
    value = float(x)
    return value if math.isfinite(value) else None


def step_stats(logits: Tensor, tokens: Tensor) -> Tensor:
    """(rows, 2) float32: log-prob of `tokens` under `logits` (rows, V) and the distribution's entropy."""
    logp = logits.float().log_softmax(-1)
    chosen = logp.gather(-1, tokens[:, None].to(logp.device)).squeeze(-1)
    p = logp.exp()
    entropy = -torch.xlogy(p, p).sum(-1)  # 0 log 0 = 0: tokens a processor set to -inf add nothing
    return torch.stack([chosen, entropy], dim=-1)


def confidence_processor() -> Any:
    """A transformers `LogitsProcessor` that keeps each step's (rows, 2) `step_stats` of the greedy pick and
    changes nothing: stock `generate` appends it after its own processors, so it sees the scores greedy
    takes its argmax of. Unlike `output_scores`, no (rows, vocabulary) tensor is kept per step."""
    from transformers import LogitsProcessor

    class ConfidenceProcessor(LogitsProcessor):
        def __init__(self) -> None:
            self.steps: list[Tensor] = []

        def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
            self.steps.append(step_stats(scores, scores.argmax(-1)))
            return scores

    return ConfidenceProcessor()


@torch.inference_mode()
def agreements(
    trunk: Trunk, prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]], pad_id: int
) -> dict[str, list[float | None]]:
    """branch name -> per prompt, the fraction of the answer's tokens that the branch predicts greedily
    when fed the prompt and the answer before it (None for an empty answer). One trunk pass per call."""
    out: dict[str, list[float | None]] = {b.name: [None] * len(prompts) for b in trunk.branches}
    rows = [i for i, a in enumerate(answers) if len(a) > 0]
    if not rows:
        return out
    seqs = [list(prompts[i]) + list(answers[i]) for i in rows]
    ids, mask = right_pad(seqs, pad_id, trunk.family.device)
    heads = {f.branch.name: f.head for f in trunk.forks}
    for branch, hidden in trunk.hidden_states(ids, mask):
        for j, i in enumerate(rows):
            p, a = len(prompts[i]), len(answers[i])
            at = hidden[j, p - 1 : p + a - 1]  # the positions that predict the answer's tokens
            guess = heads[branch.name](at).argmax(-1).cpu()
            target = torch.as_tensor(list(answers[i]), dtype=guess.dtype)
            out[branch.name][i] = float((guess == target).float().mean())
    return out
