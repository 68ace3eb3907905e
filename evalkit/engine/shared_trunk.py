"""Shared-trunk scoring: one pass through the trunk scores every branch of a family.

Every branch runs the same trunk layers, so scoring the five branches of Ruyi-7B one by one costs
12 + 16 + 20 + 24 + 28 = 100 layer passes per token. One trunk pass that forks at each exit costs
27 + 5 = 32: the trunk runs layers 0..e_max-1 once, and at each exit `e` the branch's own layer `e`
(its branch layer; for the last exit, the last trunk layer) runs on the hidden state there, then
the branch's norm and head. The modules driven here are the stock transformers layers of the branch
models, which are views of the family's tensors, so the numbers equal per-branch evaluation (within
float rounding: a sibling's rows were scored in the batch another branch asked for).

A score is the log-probability of each actual next token, `(B, T-1)` float32: entry `t` scores
token `t+1` given tokens `..t`. Positions with padding on either side score 0. Positions follow the
attention mask (left padding shifts them), so a padded row scores as it would alone.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from evalkit.errors import did_you_mean
from evalkit.load.family import Branch, Family

if TYPE_CHECKING:
    from transformers import PreTrainedModel

# Peak size of one chunk of fp32 logits; the head never materialises more than this at once.
LOGITS_CHUNK_BYTES = 256 * 2**20
# Default bound on the answers kept for sibling branches.
CACHE_BYTES = 1 * 2**30


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """0, 1, 2.. over each row's real tokens; padding repeats its neighbour (it is masked anyway)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def scored_positions(attention_mask: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T-1) bool: the positions to score: both the token and its successor are real (and asked for)."""
    mask = attention_mask.bool()
    valid = mask[:, :-1] & mask[:, 1:]
    return valid if positions is None else valid & positions.to(valid.device).bool()


def head_logprobs(
    hidden: torch.Tensor,
    head: nn.Module,
    input_ids: torch.Tensor,
    wanted: torch.Tensor,
    *,
    chunk_bytes: int = LOGITS_CHUNK_BYTES,
) -> torch.Tensor:
    """Log-probabilities of the next tokens from final (normed) hidden states, a chunk of tokens at a time.

    Only the `wanted` positions (B, T-1) run through the head; the others score 0. At most
    `chunk_bytes` of fp32 logits exist at once, whatever the vocabulary.
    """
    b, t = input_ids.shape
    out = torch.zeros(b, t - 1, dtype=torch.float32, device=hidden.device)
    if t < 2:
        return out
    wanted = wanted.to(hidden.device)
    rows = hidden[:, :-1][wanted]  # (N, H)
    targets = input_ids[:, 1:].to(hidden.device)[wanted]  # (N,)
    vocab = _out_features(head)
    step = max(1, chunk_bytes // (4 * vocab))
    scores = torch.empty(rows.shape[0], dtype=torch.float32, device=hidden.device)
    for s in range(0, rows.shape[0], step):
        logits = head(rows[s : s + step]).float()
        picked = logits.gather(-1, targets[s : s + step, None]).squeeze(-1)
        scores[s : s + step] = picked - logits.logsumexp(-1)  # log_softmax at the target, one V-sized pass fewer
    out[wanted] = scores
    return out


def score_branch(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    positions: torch.Tensor | None = None,
    chunk_bytes: int = LOGITS_CHUNK_BYTES,
) -> torch.Tensor:
    """The per-branch reference: next-token log-probs (B, T-1) float32 through one stock branch model."""
    mask = _mask_for(input_ids, attention_mask)
    device = model.lm_head.weight.device
    ids, mask = input_ids.to(device), mask.to(device)
    with torch.inference_mode():
        hidden = model.model(
            input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False
        ).last_hidden_state
        return head_logprobs(hidden, model.lm_head, ids, scored_positions(mask, positions), chunk_bytes=chunk_bytes)


@functools.cache
def mask_spelling(create_mask: Callable[..., object]) -> tuple[str, str, bool]:
    """How a transformers mask function names its arguments, read once from its signature.

    The embeddings are `inputs_embeds` (`input_embeds` in 5.0); the cache is `cache` (from 5.24;
    `past_key_values` before, deprecated from 5.24 and removed in 5.40); 5.0 also wants `cache_position`.
    """
    params = inspect.signature(create_mask).parameters  # follows the deprecation wrapper to the function
    embeds = "inputs_embeds" if "inputs_embeds" in params else "input_embeds"
    cache = "cache" if "cache" in params else "past_key_values"
    return embeds, cache, "cache_position" in params


def mask_arguments(
    config: object, hidden: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
) -> dict[str, object]:
    """Keyword arguments for transformers' `create_causal_mask` and `create_sliding_window_causal_mask` (which
    name them alike) with no cache, spelled as the installed version (anything from 5.0 on) names them."""
    from transformers.masking_utils import create_causal_mask

    embeds, cache, cache_position = mask_spelling(create_causal_mask)
    args: dict[str, object] = {
        "config": config,
        embeds: hidden,
        "attention_mask": attention_mask,
        cache: None,
        "position_ids": positions,
    }
    if cache_position:
        args["cache_position"] = torch.arange(hidden.shape[1], device=hidden.device)
    return args


@dataclass(frozen=True)
class Fork:
    """Where one branch leaves the trunk: its layer at the exit, then its norm and head."""

    branch: Branch
    layer: nn.Module  # the branch layer (for the last exit, the last trunk layer)
    layer_type: str  # which attention mask it takes ("full_attention" or "sliding_attention")
    norm: nn.Module
    head: nn.Module


class Trunk:
    """The layers every requested branch shares, and each branch's fork, as stock transformers modules.

    The trunk is the deepest requested branch's model: its layers 0..e_max-1 are the family's trunk
    layers. Each branch's fork is layer `e` of its own branch model (the eelayer, or for the last exit
    the last trunk layer), its final norm and its head; all are views of the family's tensors.
    """

    def __init__(
        self,
        family: Family,
        branches: Sequence[str | int | Branch] | None = None,
        *,
        attn_implementation: str | None = None,
    ):
        chosen = sorted({family.branch(b) for b in (branches or family.branches)}, key=lambda b: b.exit_layer)
        self.family = family
        self.branches: tuple[Branch, ...] = tuple(chosen)
        self.models = {b.name: family.branch_model(b, attn_implementation=attn_implementation) for b in chosen}
        self.deepest = self.models[chosen[-1].name]
        self.forks = tuple(self._fork(b) for b in chosen)

    def _fork(self, b: Branch) -> Fork:
        model = self.models[b.name]
        e = b.exit_layer
        return Fork(b, model.model.layers[e], model.config.layer_types[e], model.model.norm, model.lm_head)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.branches)

    def hidden_states(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> Iterator[tuple[Branch, torch.Tensor]]:
        """Each branch's final normed hidden state (B, T, H), shallowest first, from one trunk pass."""
        from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask

        core = self.deepest.model
        ids = input_ids.to(self.family.device)
        mask = _mask_for(input_ids, attention_mask).to(self.family.device)
        pos = position_ids(mask)
        hidden = core.embed_tokens(ids)
        args = mask_arguments(core.config, hidden, mask, pos)
        masks = {"full_attention": create_causal_mask(**args)}
        if "sliding_attention" in {*core.config.layer_types, *(f.layer_type for f in self.forks)}:
            masks["sliding_attention"] = create_sliding_window_causal_mask(**args)
        rope = core.rotary_emb(hidden, pos)
        # No cache argument: a layer's cache defaults to none under either of its names (see mask_arguments).
        kw = {"position_embeddings": rope, "position_ids": pos, "use_cache": False}
        done = 0
        for fork in self.forks:
            for i in range(done, fork.branch.exit_layer):  # the trunk up to this exit
                hidden = core.layers[i](hidden, attention_mask=masks[core.config.layer_types[i]], **kw)
            done = fork.branch.exit_layer
            branch = fork.layer(hidden, attention_mask=masks[fork.layer_type], **kw)
            yield fork.branch, fork.norm(branch)

    def score(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        positions: torch.Tensor | None = None,
        chunk_bytes: int = LOGITS_CHUNK_BYTES,
    ) -> dict[str, torch.Tensor]:
        """branch name -> next-token log-probs (B, T-1) float32, every branch from one trunk pass."""
        mask = _mask_for(input_ids, attention_mask)
        wanted = scored_positions(mask, positions)
        heads = {f.branch.name: f.head for f in self.forks}
        ids = input_ids.to(self.family.device)
        with torch.inference_mode():
            return {
                b.name: head_logprobs(h, heads[b.name], ids, wanted, chunk_bytes=chunk_bytes)
                for b, h in self.hidden_states(input_ids, mask)
            }


class SharedScorer:
    """Scores several branches of one family together and keeps the siblings' answers for them.

    Each branch is its own OpenCompass model and asks for its scores on its own. The first to ask
    for an item gets every branch scored in one trunk pass; the others' answers are kept and handed
    over (and dropped) when that branch asks. An item is a row's real tokens and which of its
    positions are scored, so a sibling finds its answer however its batch is padded or composed;
    the key also holds the family's identity (weights fingerprint, dtype, device) and the branch.
    The cache is a byte-bounded LRU; scorers of different families may share one, since their keys
    never meet.
    """

    def __init__(
        self,
        family: Family,
        branches: Sequence[str | int | Branch] | None = None,
        *,
        cache: ScoreCache | None = None,
        chunk_bytes: int = LOGITS_CHUNK_BYTES,
        attn_implementation: str | None = None,
    ):
        self.trunk = Trunk(family, branches, attn_implementation=attn_implementation)
        self.identity = family.identity
        self.cache = cache if cache is not None else ScoreCache(CACHE_BYTES)
        self.chunk_bytes = chunk_bytes
        self.hits = 0  # rows answered from the cache
        self.misses = 0  # rows that needed a trunk pass
        self.passes = 0  # trunk passes run

    @property
    def names(self) -> tuple[str, ...]:
        return self.trunk.names

    def token_logprobs(
        self,
        branch: str | int | Branch,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Next-token log-probs (B, T-1) float32 on the CPU for one branch, as `score_branch` gives them."""
        name = self._name(branch)
        ids = input_ids.cpu()
        mask = _mask_for(ids, attention_mask).cpu()
        wanted = scored_positions(mask, positions)
        out = torch.zeros(wanted.shape, dtype=torch.float32)
        keys = [self._item_key(ids[r], mask[r], wanted[r]) for r in range(ids.shape[0])]
        missing = []
        for r, key in enumerate(keys):
            hit = self.cache.pop((name, key))
            if hit is None:
                missing.append(r)
            else:
                out[r, wanted[r]] = hit
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            sub = torch.tensor(missing)
            scores = self.trunk.score(ids[sub], mask[sub], positions=wanted[sub], chunk_bytes=self.chunk_bytes)
            self.passes += 1
            scores = {k: v.cpu() for k, v in scores.items()}
            out[sub] = scores[name]
            for j, r in enumerate(missing):
                for other in self.names:
                    if other != name:
                        self.cache.put((other, keys[r]), scores[other][j, wanted[r]].clone())
        return out

    def _name(self, branch: str | int | Branch) -> str:
        b = self.trunk.family.branch(branch)
        if b.name not in self.names:
            raise did_you_mean("branch of this shared scorer", b.name, list(self.names))
        return b.name

    def _item_key(self, ids: torch.Tensor, mask: torch.Tensor, wanted: torch.Tensor) -> str:
        """The row's real tokens and, for each scored position, its index among them: all an answer depends on."""
        tokens = ids[mask.bool()].long()
        scored = (mask.long().cumsum(0) - 1)[:-1][wanted]
        h = hashlib.sha256(self.identity.encode())
        for t in (tokens, scored):
            h.update(f"|{t.numel()}|".encode())
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()


class ScoreCache:
    """An LRU of CPU tensors bounded by their total bytes; `pop` hands an entry over and drops it.

    The same key put twice (an item asked for twice in one request) is kept once and handed over twice.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[tuple[str, str], tuple[torch.Tensor, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: tuple[str, str], value: torch.Tensor) -> None:
        size = _nbytes(value)
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.nbytes -= _nbytes(old[0])
        self._entries[key] = (value, 1 + (old[1] if old else 0))
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, (dropped, _) = self._entries.popitem(last=False)
            self.nbytes -= _nbytes(dropped)

    def pop(self, key: tuple[str, str]) -> torch.Tensor | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, count = entry
        if count > 1:
            self._entries[key] = (value, count - 1)  # keeps its place in the LRU order
        else:
            del self._entries[key]
            self.nbytes -= _nbytes(value)
        return value


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _mask_for(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    if attention_mask is None:
        return torch.ones_like(input_ids, dtype=torch.long)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}"
        )
    return attention_mask.long()


def _out_features(head: nn.Module) -> int:
    weight = getattr(head, "weight", None)
    if weight is None:
        raise TypeError(f"cannot tell the vocabulary size of head {type(head).__name__}")
    return int(weight.shape[0])


# --- benchmark -----------------------------------------------------------------------------------
