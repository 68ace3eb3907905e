"""Self-speculative decoding across the branches of one family: a shallow branch drafts, a deeper one verifies.

The draft branch (exit d) and the target branch (exit t > d) run the same trunk layers 0..d-1. One
round, for every row at once:

1. draft: the pending token x0 and then each drafted token go, one at a time, through trunk layers
   0..d-1 and the draft's own layer; the draft's head proposes x1..xk greedily. The hidden state at
   exit d of x0..xk is kept, and the trunk's keys/values of those layers are written as it goes:
   both are exactly what the target computes for the same tokens.
2. verify: the target runs only trunk layers d..t-1 and its own layer, norm and head, on the k + 1
   kept hidden states in one pass: its greedy token after each of x0..xk.
3. accept: the longest prefix of x1..xk the target agrees with, plus the target's own next token
   (`accepted_lengths`), so every round yields 1 to k + 1 tokens, all of them the target's.
4. roll back: each row's cache length moves to just past its accepted tokens, in every layer (trunk,
   draft layer, target layer); the keys/values of rejected tokens stay in the static cache but lie
   beyond that length, so no query sees them, and the next round overwrites them.

Rows keep their own lengths (per-row cache slots and rotary positions), so a batch of mixed prompt
lengths accepts per row. The output equals the target's greedy decoding token for token in fp32
(tests check it against stock `generate` for every draft branch); in bf16 the multi-token verify
pass rounds differently from one-token steps, so a near-tie can flip, as with any change of batch shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evalkit.engine.batching import stop_string_check
from evalkit.engine.decode import (
    EAGER,
    BranchHead,
    Kernels,
    KVCache,
    Layer,
    _check_shared_trunk,
    _dims,
    _head,
    _layer,
    _rotary_tables,
    additive,
    compiled_kernels,
    rms_norm,
)
from evalkit.engine.generate import _stop, resolve_mode
from evalkit.engine.shared_trunk import position_ids
from evalkit.errors import EvalkitError
from evalkit.load.family import Branch, Family

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def accepted_lengths(drafted: Tensor, predicted: Tensor) -> Tensor:
    """Drafted tokens accepted per row: the longest prefix of drafted[:, 1:] equal to predicted[:, :-1].

    drafted (B, k + 1): the pending token, then the k proposals; predicted (B, k + 1): the target's
    greedy token after each of them. A row accepting j keeps predicted[:, : j + 1] (the j proposals
    and the target's own next token).
    """
    agree = drafted[:, 1:] == predicted[:, :-1]
    return agree.long().cumprod(dim=1).sum(dim=1)


class RowCache(KVCache):
    """A layer's static keys/values where each row writes at its own slots (rows advance unevenly)."""

    def update(self, slot: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """slot (B, S): row b's S new entries go to slot[b]."""
        index = slot[:, None, :, None].expand_as(k)
        self.k.scatter_(2, index, k)
        self.v.scatter_(2, index, v)
        return self.k, self.v


class SpecDecoder(nn.Module):
    """The state of speculative decoding for one (draft, target) pair at a fixed batch size and length."""

    cos: Tensor
    sin: Tensor
    slots: Tensor
    valid: Tensor  # (B, max_len): False at prompt padding
    pad: Tensor  # (B,): padding slots before each row's prompt

    def __init__(self, family: Family, draft: Branch, target: Branch, batch_size: int, max_len: int, k: int) -> None:
        super().__init__()
        if draft.exit_layer >= target.exit_layer:
            raise EvalkitError(
                f"draft branch {draft.name} (exit {draft.exit_layer}) must exit before the target "
                f"{target.name} (exit {target.exit_layer}); choose a shallower draft"
            )
        if k < 1:
            raise EvalkitError(f"k (tokens drafted per round) must be >= 1, got {k}")
        self.k, self.batch_size, self.max_len = k, batch_size, max_len
        self.draft_exit, self.target_exit = draft.exit_layer, target.exit_layer
        states = [family.branch_state_dict(draft), family.branch_state_dict(target)]
        _check_shared_trunk(states, (draft, target))
        config = family.branch_config(target)
        self.dims = _dims(config)
        self.trunk = nn.ModuleList(_layer(states[1], j, self.dims) for j in range(target.exit_layer))
        self.draft = BranchHead(
            draft, _layer(states[0], draft.exit_layer, self.dims), states[0]["model.norm.weight"], _head(states[0])
        )
        self.target = BranchHead(
            target, _layer(states[1], target.exit_layer, self.dims), states[1]["model.norm.weight"], _head(states[1])
        )
        self.embed = nn.Parameter(states[1]["model.embed_tokens.weight"], requires_grad=False)
        like, d = self.embed, self.dims
        kv = (batch_size, d.num_kv_heads, max_len, d.head_dim, like)
        self.trunk_cache = nn.ModuleList(RowCache(*kv) for _ in range(target.exit_layer))
        self.draft_cache, self.target_cache = RowCache(*kv), RowCache(*kv)
        cos, sin = _rotary_tables(family.flavour, config, max_len, like)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.register_buffer("slots", torch.arange(max_len, device=like.device), persistent=False)
        self.register_buffer("valid", torch.ones(batch_size, max_len, dtype=torch.bool, device=like.device), False)
        self.register_buffer("pad", torch.zeros(batch_size, dtype=torch.long, device=like.device), False)

    @torch.no_grad()
    def prefill(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The prompt through every layer both branches use; returns the target's first token, (B,)."""
        b, s = input_ids.shape
        if b != self.batch_size or s + self.k >= self.max_len:
            raise EvalkitError(
                f"prompt batch {tuple(input_ids.shape)} does not fit this decoder "
                f"(batch {self.batch_size}, {self.max_len} tokens with k={self.k})"
            )
        real = attention_mask.bool()
        self.valid[:, :s] = real
        self.valid[:, s:] = True
        self.pad.copy_(s - real.long().sum(-1))
        positions = position_ids(real)
        cos, sin = self.cos[positions], self.sin[positions]
        causal = torch.ones(s, s, dtype=torch.bool, device=real.device).tril()
        mask = (causal & real[:, None, :]) | torch.eye(s, dtype=torch.bool, device=real.device)
        mask = additive(mask[:, None], self.embed.dtype)
        x = F.embedding(input_ids, self.embed)
        for j in range(self.target_exit):
            if j == self.draft_exit:
                self.draft.layer(x, cos, sin, self.draft_cache, mask, None)
            layer, cache = self._trunk(j)
            x = layer(x, cos, sin, cache, mask, None)
        out = self.target.layer(x, cos, sin, self.target_cache, mask, None)
        return self._greedy(self.target, out[:, -1:])[:, 0]

    def round(self, pending: Tensor, lengths: Tensor, kernels: Kernels = EAGER) -> tuple[Tensor, Tensor]:
        """One draft-and-verify round at each row's cache length; static shapes, no host sync.

        pending (B,): each row's last token, not yet in the cache; lengths (B,): its slot.
        Returns drafted (B, k + 1) (pending first) and the target's greedy token after each, (B, k + 1).
        """
        tokens, hidden = [pending], []
        for i in range(self.k + 1):
            slot = (lengths + i)[:, None]
            cos, sin, mask = self._at(slot)
            x = F.embedding(tokens[-1][:, None], self.embed)
            for j in range(self.draft_exit):
                layer, cache = self._trunk(j)
                x = layer(x, cos, sin, cache, mask, slot, kernels)
            hidden.append(x)
            out = self.draft.layer(x, cos, sin, self.draft_cache, mask, slot, kernels)
            if i < self.k:  # the last one only writes its keys/values; its proposal would be discarded
                tokens.append(self._greedy(self.draft, out)[:, 0])
        slot = lengths[:, None] + self.slots[: self.k + 1]
        cos, sin, mask = self._at(slot)
        x = torch.cat(hidden, dim=1)
        for j in range(self.draft_exit, self.target_exit):
            layer, cache = self._trunk(j)
            x = layer(x, cos, sin, cache, mask, slot, kernels)
        out = self.target.layer(x, cos, sin, self.target_cache, mask, slot, kernels)
        return torch.stack(tokens, dim=1), self._greedy(self.target, out)

    def _at(self, slot: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Rotary tables and additive mask for queries at slot (B, S): each sees its row's valid slots up to itself."""
        positions = slot - self.pad[:, None]
        seen = self.valid[:, None, :] & (self.slots[None, None, :] <= slot[:, :, None])
        return self.cos[positions], self.sin[positions], additive(seen[:, None], self.embed.dtype)

    def _trunk(self, j: int) -> tuple[Layer, RowCache]:
        return cast(Layer, self.trunk[j]), cast(RowCache, self.trunk_cache[j])

    def _greedy(self, head: BranchHead, hidden: Tensor) -> Tensor:
        return F.linear(rms_norm(hidden, head.norm, self.dims.eps), head.head).argmax(-1)


RoundFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


class _GraphedRound:
    """A whole round recorded once in a CUDA graph (after two warm-up rounds on a side stream), then replayed."""

    def __init__(self, fn: RoundFn, pending: Tensor, lengths: Tensor) -> None:
        self.inputs = (pending.clone(), lengths.clone())
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(2):  # rewrites the slots the first real round writes, with the same values
                fn(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.outputs = fn(*self.inputs)

    def __call__(self, pending: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        self.inputs[0].copy_(pending)
        self.inputs[1].copy_(lengths)
        self.graph.replay()
        return self.outputs[0].clone(), self.outputs[1].clone()


@dataclass(frozen=True)
class Speculative:
    """What speculative decoding produced: the tokens, and per row how the draft fared.

    tokens (B, n): new tokens as `generate_fast` returns them (EOS kept, pad after a row stops).
    rounds: verify passes of the target per row while it was generating; drafted = k x rounds;
    accepted: drafted tokens the target agreed with; kept: tokens in the row's output.
    """

    tokens: Tensor
    k: int
    rounds: Tensor
    accepted: Tensor
    kept: Tensor

    @property
    def drafted(self) -> Tensor:
        return self.rounds * self.k

    def acceptance_rate(self) -> float:
        """Accepted over drafted, over the whole batch."""
        return float(self.accepted.sum()) / max(1, int(self.drafted.sum()))

    def tokens_per_step(self) -> float:
        """Output tokens after the first (which prefill gives) per verify pass of the target, batch mean."""
        return float((self.kept - 1).clamp(min=0).sum()) / max(1, int(self.rounds.sum()))


class SpeculativeGenerator:
    """A `SpecDecoder` and its round function, reusable across prompts of the same batch size and length."""

    def __init__(
        self,
        family: Family,
        draft: Branch,
        target: Branch,
        batch_size: int,
        max_len: int,
        k: int,
        mode: str = "auto",
    ) -> None:
        self.mode = resolve_mode(mode, family.device.type)
        self.decoder = SpecDecoder(family, draft, target, batch_size, max_len, k)
        kernels = compiled_kernels() if self.mode == "compile" else EAGER
        self._round: RoundFn = lambda p, n: self.decoder.round(p, n, kernels)
        self._graphed = family.device.type == "cuda" and self.mode != "eager"
        self._graph: _GraphedRound | None = None

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        max_new_tokens: int,
        eos_token_ids: Sequence[int] = (),
        pad_token_id: int = 0,
        stop_check: Callable[[Tensor], Tensor] | None = None,
    ) -> Speculative:
        d, b, width = self.decoder, input_ids.shape[0], input_ids.shape[1]
        if width + max_new_tokens + d.k > d.max_len:
            raise EvalkitError(f"{width} prompt + {max_new_tokens} new + {d.k} draft tokens exceed {d.max_len}")
        pending = d.prefill(input_ids, attention_mask)
        lengths = torch.full((b,), width, dtype=torch.long, device=input_ids.device)
        eos = frozenset(int(t) for t in eos_token_ids)
        rows: list[list[int]] = [[int(t)] for t in pending.tolist()]
        rounds, accepted = [0] * b, [0] * b
        active = [not self._done(r, max_new_tokens, eos, None) for r in rows]
        while any(active):
            drafted, predicted = self._call(pending, lengths)
            j = accepted_lengths(drafted, predicted)
            pending = predicted.gather(1, j[:, None])[:, 0]
            for r, (n, new) in enumerate(zip(j.tolist(), predicted.tolist(), strict=True)):
                if active[r]:
                    rows[r] += new[: n + 1]
                    rounds[r] += 1
                    accepted[r] += n
            checked = self._stopped(rows, active, stop_check, pad_token_id)
            done = [self._done(r, max_new_tokens, eos, c) for r, c in zip(rows, checked, strict=True)]
            active = [a and not x for a, x in zip(active, done, strict=True)]
            # Roll back: each row's next round starts just past its accepted tokens. A finished row may
            # have run past the limit; it goes on writing (static shapes) from its first new slot, read by nothing.
            lengths = torch.where(torch.tensor(active, device=j.device), lengths + j + 1, width)
        kept = [_cut(r, max_new_tokens, eos) for r in rows]
        return Speculative(
            tokens=_pad(kept, pad_token_id, input_ids.device),
            k=d.k,
            rounds=torch.tensor(rounds),
            accepted=torch.tensor(accepted),
            kept=torch.tensor([len(r) for r in kept]),
        )

    def _call(self, pending: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if not self._graphed:
            return self._round(pending, lengths)
        if self._graph is None:
            self._graph = _GraphedRound(self._round, pending, lengths)
        return self._graph(pending, lengths)

    @staticmethod
    def _done(row: list[int], limit: int, eos: frozenset[int], stopped: bool | None) -> bool:
        return bool(stopped) or len(row) >= limit or not eos.isdisjoint(row)

    @staticmethod
    def _stopped(
        rows: list[list[int]], active: list[bool], check: Callable[[Tensor], Tensor] | None, pad: int
    ) -> list[bool | None]:
        """The stop check on every active row (each round adds at most k + 1 tokens, within its look-back)."""
        if check is None or not any(active):
            return [None] * len(rows)
        live = [r for r, a in zip(rows, active, strict=True) if a]
        width = max(len(r) for r in live)
        tails = torch.tensor([[pad] * (width - len(r)) + r for r in live])
        hits = iter(check(tails).tolist())
        return [bool(next(hits)) if a else None for a in active]


def generate_speculative(
    family: Family,
    draft: str | int | Branch,
    target: str | int | Branch,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    k: int = 4,
    max_new_tokens: int,
    eos_token_ids: Sequence[int] = (),
    ignore_eos: bool = False,
    pad_token_id: int | None = None,
    stop: Sequence[str] = (),
    tokenizer: PreTrainedTokenizerBase | None = None,
    mode: str = "auto",
) -> Speculative:
    """Greedy decoding of `target`, drafted `k` tokens at a time by the shallower `draft` over the shared trunk.

    Rows stop at an EOS token (then pad), at `max_new_tokens`, or once their text holds a stop
    string (checked after every round with `tokenizer`, the family's own by default; the caller cuts
    the text there, as on the other paths).
    `.tokens` equals `generate_fast(family, target, ...)` in fp32.
    """
    draft_b, target_b = family.branch(draft), family.branch(target)
    if max_new_tokens < 1:
        raise EvalkitError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    input_ids = input_ids.to(family.device)
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(family.device)
    eos = () if ignore_eos else tuple(eos_token_ids)
    strings = [s for s in stop if s]
    stopping = _stop(family, eos, pad_token_id) if eos or strings else None
    pad = stopping.pad_token_id if stopping else int(pad_token_id or 0)
    check = stop_string_check(tokenizer or family.tokenizer, strings, k + 1) if strings else None
    gen = SpeculativeGenerator(
        family, draft_b, target_b, input_ids.shape[0], input_ids.shape[1] + max_new_tokens + k, k, mode
    )
    return gen.generate(input_ids, mask, max_new_tokens, eos, pad, check)


def _cut(row: list[int], limit: int, eos: frozenset[int]) -> list[int]:
    """A row's tokens up to `limit` and up to and including its first EOS."""
    row = row[:limit]
    ends = [i for i, t in enumerate(row) if t in eos]
    return row[: ends[0] + 1] if ends else row


def _pad(rows: list[list[int]], pad: int, device: torch.device) -> Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long, device=device)
