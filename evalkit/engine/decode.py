"""The branch model for generation: greedy decoding of one or several branches over explicit tensors, gpt-fast style.

A branch is `embed -> trunk layers 0..e-1 -> its own layer e -> norm -> head` (the last branch's own
layer is the last trunk layer). `Decoder` holds those tensors as views of the family's (no copy), a
static KV cache preallocated for prompt + generation, and two functions:

- `prefill(input_ids, attention_mask)`: the prompt through every branch; the trunk runs once on the
  prompt rows and its keys/values are written to every branch's rows. Returns each row's first token.
- `step(tokens, positions, slot)`: one token per row. Static shapes, no host sync, no allocation that
  depends on data, so it can be captured in a CUDA graph. Each layer is `project` (norm, q/k/v,
  rotary) -> cache write and SDPA -> `finish` (output projection, MLP); `Kernels` says whether those
  two run as plain PyTorch or compiled by inductor.

Several branches decode together: their rows are stacked along the batch dimension, shallowest
branch first, so trunk layer j runs on a contiguous tail of rows (the branches that exit after j) and
its weights are read once per step for all of them. Each branch keeps its own keys/values for every
layer it uses; a branch layer never shares the cache of the trunk layer at the same depth.

Batches are left-padded: the mask hides padding, and positions count real tokens only (as
transformers does), so greedy outputs equal stock `generate` on each branch model in fp32. In bf16 the
other kernels and batch shapes round differently, and about 1 output in 6 differs, as stock `generate`
itself differs across batch shapes.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evalkit.engine.shared_trunk import position_ids
from evalkit.engine.signals import step_stats
from evalkit.errors import EvalkitError
from evalkit.load.family import Branch, Family

# Checkpoint names inside one decoder layer -> short names used here.
LAYER_KEYS = {
    "self_attn.q_proj.weight": "wq",
    "self_attn.q_proj.bias": "bq",
    "self_attn.k_proj.weight": "wk",
    "self_attn.k_proj.bias": "bk",
    "self_attn.v_proj.weight": "wv",
    "self_attn.v_proj.bias": "bv",
    "self_attn.o_proj.weight": "wo",
    "self_attn.o_proj.bias": "bo",
    "self_attn.q_norm.weight": "q_norm",
    "self_attn.k_norm.weight": "k_norm",
    "input_layernorm.weight": "attn_norm",
    "post_attention_layernorm.weight": "mlp_norm",
    "mlp.gate_proj.weight": "w_gate",
    "mlp.up_proj.weight": "w_up",
    "mlp.down_proj.weight": "w_down",
}
REQUIRED = ("wq", "wk", "wv", "wo", "attn_norm", "mlp_norm", "w_gate", "w_up", "w_down")


@dataclass(frozen=True)
class Dims:
    num_kv_heads: int
    head_dim: int
    eps: float


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """RMSNorm computed in float32, as transformers does."""
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def project(
    x: Tensor,
    cos: Tensor,
    sin: Tensor,
    attn_norm: Tensor,
    wq: Tensor,
    bq: Tensor | None,
    wk: Tensor,
    bk: Tensor | None,
    wv: Tensor,
    bv: Tensor | None,
    q_norm: Tensor | None,
    k_norm: Tensor | None,
    head_dim: int,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """A layer up to attention: norm, q/k/v projections, q/k norms (Qwen3), rotary. (B, heads, S, D) each."""
    b, s, _ = x.shape
    h = rms_norm(x, attn_norm, eps)
    q = F.linear(h, wq, bq).view(b, s, -1, head_dim)
    k = F.linear(h, wk, bk).view(b, s, -1, head_dim)
    v = F.linear(h, wv, bv).view(b, s, -1, head_dim)
    if q_norm is not None and k_norm is not None:
        q, k = rms_norm(q, q_norm, eps), rms_norm(k, k_norm, eps)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    return _rotate(q, cos[:, None], sin[:, None]), _rotate(k, cos[:, None], sin[:, None]), v


def finish(
    x: Tensor,
    attn: Tensor,
    wo: Tensor,
    bo: Tensor | None,
    mlp_norm: Tensor,
    w_gate: Tensor,
    w_up: Tensor,
    w_down: Tensor,
    eps: float,
) -> Tensor:
    """A layer after attention: output projection and residual, then norm, SwiGLU MLP and residual."""
    x = x + F.linear(attn, wo, bo)
    h = rms_norm(x, mlp_norm, eps)
    return x + F.linear(F.silu(F.linear(h, w_gate)) * F.linear(h, w_up), w_down)


@dataclass(frozen=True)
class Kernels:
    """The functions a layer runs around attention: plain PyTorch, or compiled (`compiled_kernels`)."""

    project: Callable[..., tuple[Tensor, Tensor, Tensor]] = project
    finish: Callable[..., Tensor] = finish


EAGER = Kernels()


@functools.cache
def compiled_kernels() -> Kernels:
    """`project` and `finish` through torch.compile (inductor), one graph per input shape.

    Their inputs are explicit tensors, so every layer of every branch with the same shapes shares one
    compiled graph: a decoder compiles once per distinct row count, not once per layer or branch.
    The KV-cache write and attention stay outside, so the cache is never copied by functionalization.
    """
    cfg = torch._dynamo.config
    # One graph per row count (several per decoder when branches step together); past the default
    # limit dynamo would quietly fall back to eager and a benchmark would time the wrong thing.
    limit = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"  # torch < 2.6
    setattr(cfg, limit, max(getattr(cfg, limit), 64))
    return Kernels(
        project=torch.compile(project, fullgraph=True, dynamic=False),
        finish=torch.compile(finish, fullgraph=True, dynamic=False),
    )


def additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean attention mask (True: may attend) as the additive bias SDPA would make of it, once per
    forward rather than once per layer."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))


def _attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """SDPA with grouped-query heads folded into the query length: no copy of the keys and values.

    q (B, H, S, D); k, v (B, KVH, T, D); mask (B, 1, S, T), the additive bias (`additive`).
    """
    b, h, s, d = q.shape
    group = h // k.shape[1]
    q = q.reshape(b, k.shape[1], group * s, d)
    if group > 1 and s > 1:  # one query per row (decoding): the mask broadcasts over the group
        mask = mask.repeat(1, 1, group, 1)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.reshape(b, h, s, d).transpose(1, 2).reshape(b, s, h * d)


class Layer(nn.Module):
    """One decoder layer (Qwen2: q/k/v bias; Qwen3: q/k norms; Llama: neither) over given tensors."""

    wq: Tensor
    wk: Tensor
    wv: Tensor
    wo: Tensor
    bq: Tensor | None
    bk: Tensor | None
    bv: Tensor | None
    bo: Tensor | None
    q_norm: Tensor | None
    k_norm: Tensor | None
    attn_norm: Tensor
    mlp_norm: Tensor
    w_gate: Tensor
    w_up: Tensor
    w_down: Tensor

    def __init__(self, tensors: dict[str, Tensor], dims: Dims) -> None:
        super().__init__()
        unknown = sorted(set(tensors) - set(LAYER_KEYS))
        if unknown:
            raise EvalkitError(f"decoder layer tensor {unknown[0]} is not supported by the fast path; use --backend hf")
        missing = sorted(k for k, short in LAYER_KEYS.items() if short in REQUIRED and k not in tensors)
        if missing:
            raise EvalkitError(f"decoder layer tensor {missing[0]} is missing; the checkpoint is incomplete")
        for name, short in LAYER_KEYS.items():
            # A Parameter over the same storage: the family's tensor, not a copy. Absent ones are None.
            t = tensors.get(name)
            self.register_parameter(short, None if t is None else nn.Parameter(t, requires_grad=False))
        self.dims = dims

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        cache: KVCache,
        mask: Tensor,
        slot: Tensor | None,
        kernels: Kernels = EAGER,
    ) -> Tensor:
        """`slot=None`: prefill (attend within the prompt, fill the cache); else one decode step at `slot`."""
        eps = self.dims.eps
        q, k, v = kernels.project(
            x,
            cos,
            sin,
            self.attn_norm,
            self.wq,
            self.bq,
            self.wk,
            self.bk,
            self.wv,
            self.bv,
            self.q_norm,
            self.k_norm,
            self.dims.head_dim,
            eps,
        )
        if slot is None:
            cache.fill(k, v)
        else:
            k, v = cache.update(slot, k, v)
        attn = _attend(q, k, v, mask)
        return kernels.finish(x, attn, self.wo, self.bo, self.mlp_norm, self.w_gate, self.w_up, self.w_down, eps)


class KVCache(nn.Module):
    """Static keys and values of one layer for `rows` sequences of up to `max_len` tokens."""

    k: Tensor
    v: Tensor

    def __init__(self, rows: int, num_kv_heads: int, max_len: int, head_dim: int, like: Tensor) -> None:
        super().__init__()
        shape = (rows, num_kv_heads, max_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=like.dtype, device=like.device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=like.dtype, device=like.device), persistent=False)

    def fill(self, k: Tensor, v: Tensor) -> None:
        """Write a prompt's keys/values; rows repeat when several branches share this layer."""
        n, s = self.k.shape[0] // k.shape[0], k.shape[2]
        self.k[:, :, :s] = k.repeat(n, 1, 1, 1)
        self.v[:, :, :s] = v.repeat(n, 1, 1, 1)

    def update(self, slot: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        self.k.index_copy_(2, slot, k)
        self.v.index_copy_(2, slot, v)
        return self.k, self.v


class BranchHead(nn.Module):
    """What a branch adds to the trunk: its own layer, final norm and head, and that layer's cache."""

    def __init__(self, branch: Branch, layer: Layer, norm: Tensor, head: Tensor) -> None:
        super().__init__()
        self.name, self.exit_layer = branch.name, branch.exit_layer
        self.layer: Layer = layer
        self.norm = nn.Parameter(norm, requires_grad=False)
        self.head = nn.Parameter(head, requires_grad=False)


class Decoder(nn.Module):
    """Greedy decoding state for `branches` of one family at a fixed batch size and maximum length."""

    cos: Tensor
    sin: Tensor
    slots: Tensor
    valid: Tensor  # (rows, max_len): False at prompt padding

    confidence: Tensor  # (rows, 2) float32: the last chosen token's log-prob and its distribution's entropy

    def __init__(
        self, family: Family, branches: Sequence[Branch], batch_size: int, max_len: int, *, confidence: bool = False
    ) -> None:
        super().__init__()
        self.track = confidence  # also write `confidence` at every step, from the logits the step computed
        self.branch_list = tuple(sorted({b.exit_layer: b for b in branches}.values(), key=lambda b: b.exit_layer))
        if not self.branch_list:
            raise EvalkitError("no branches to decode; pass at least one branch")
        config = family.branch_config(self.branch_list[-1])
        self.dims = _dims(config)
        self.batch_size, self.max_len = batch_size, max_len
        states = [family.branch_state_dict(b) for b in self.branch_list]
        deepest = self.branch_list[-1].exit_layer
        self.trunk = nn.ModuleList(_layer(states[-1], j, self.dims) for j in range(deepest))
        _check_shared_trunk(states, self.branch_list)
        self.heads = nn.ModuleList(
            BranchHead(b, _layer(s, b.exit_layer, self.dims), s["model.norm.weight"], _head(s))
            for b, s in zip(self.branch_list, states, strict=True)
        )
        self.embed = nn.Parameter(states[-1]["model.embed_tokens.weight"], requires_grad=False)
        like = self.embed
        n = len(self.branch_list)
        # Trunk layer j serves the branches that exit after j: a tail of the rows.
        self.trunk_rows = [batch_size * sum(b.exit_layer > j for b in self.branch_list) for j in range(deepest)]
        d = self.dims
        kv = (d.num_kv_heads, max_len, d.head_dim, like)
        self.trunk_cache = nn.ModuleList(KVCache(r, *kv) for r in self.trunk_rows)
        self.head_cache = nn.ModuleList(KVCache(batch_size, *kv) for _ in range(n))
        cos, sin = _rotary_tables(family.flavour, config, max_len, like)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.register_buffer("slots", torch.arange(max_len, device=like.device), persistent=False)
        self.register_buffer(
            "valid", torch.ones(n * batch_size, max_len, dtype=torch.bool, device=like.device), persistent=False
        )
        self.register_buffer(
            "confidence", torch.zeros(n * batch_size, 2, dtype=torch.float32, device=like.device), persistent=False
        )
        self._stats: list[Tensor] = []

    @property
    def rows(self) -> int:
        return len(self.branch_list) * self.batch_size

    @torch.no_grad()
    def prefill(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Run the prompt; returns the first generated token of every row, (rows,), branch-major."""
        b, s = input_ids.shape
        if b != self.batch_size or s >= self.max_len:
            raise EvalkitError(
                f"prompt batch {tuple(input_ids.shape)} does not fit this decoder "
                f"(batch {self.batch_size}, {self.max_len} tokens)"
            )
        real = attention_mask.bool()
        self.valid[:, :s] = real.repeat(len(self.branch_list), 1)
        self.valid[:, s:] = True
        positions = position_ids(real)
        cos, sin = self.cos[positions], self.sin[positions]
        causal = torch.ones(s, s, dtype=torch.bool, device=real.device).tril()
        # Padding queries attend to themselves only, so no row of the softmax is empty.
        mask = (causal & real[:, None, :]) | torch.eye(s, dtype=torch.bool, device=real.device)
        mask = additive(mask[:, None], self.embed.dtype)
        x = F.embedding(input_ids, self.embed)
        firsts, j = [], 0
        for head, cache in self._exits():
            while j < head.exit_layer:
                layer, trunk_cache = self._trunk_layer(j)
                x = layer(x, cos, sin, trunk_cache, mask, None)
                j += 1
            out = head.layer(x, cos, sin, cache, mask, None)
            firsts.append(self._next(head, out))
        self._keep_stats()
        return torch.cat(firsts)

    def step(self, tokens: Tensor, positions: Tensor, slot: Tensor, kernels: Kernels = EAGER) -> Tensor:
        """One decode step. tokens, positions (rows, 1) long; slot (1,) long: the cache index written."""
        x = F.embedding(tokens, self.embed)
        cos, sin = self.cos[positions], self.sin[positions]
        mask = additive((self.valid & (self.slots <= slot))[:, None, None, :], self.embed.dtype)
        nexts, lo, j, b = [], 0, 0, self.batch_size
        for head, cache in self._exits():
            while j < head.exit_layer:
                layer, trunk_cache = self._trunk_layer(j)
                x = layer(x, cos[lo:], sin[lo:], trunk_cache, mask[lo:], slot, kernels)
                j += 1
            # This branch leaves the trunk: its rows are the first `b` of those still on it.
            mine, x = x[:b], x[b:]
            out = head.layer(mine, cos[lo : lo + b], sin[lo : lo + b], cache, mask[lo : lo + b], slot, kernels)
            nexts.append(self._next(head, out))
            lo += b
        self._keep_stats()
        return torch.cat(nexts)

    def _exits(self) -> list[tuple[BranchHead, KVCache]]:
        return [(cast(BranchHead, h), cast(KVCache, c)) for h, c in zip(self.heads, self.head_cache, strict=True)]

    def _trunk_layer(self, j: int) -> tuple[Layer, KVCache]:
        return cast(Layer, self.trunk[j]), cast(KVCache, self.trunk_cache[j])

    def _next(self, head: BranchHead, hidden: Tensor) -> Tensor:
        last = rms_norm(hidden[:, -1], head.norm, self.dims.eps)
        logits = F.linear(last, head.head)
        token = logits.argmax(-1)  # from the logits themselves, so tracking never changes a token
        if self.track:
            self._stats.append(step_stats(logits, token))
        return token

    def _keep_stats(self) -> None:
        """Write this pass's per-row (log-prob, entropy) into the static `confidence` buffer (graph-safe)."""
        if self.track:
            self.confidence.copy_(torch.cat(self._stats))
            self._stats = []


def _dims(config: object) -> Dims:
    heads = config.num_attention_heads  # type: ignore[attr-defined]
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads  # type: ignore[attr-defined]
    kv = getattr(config, "num_key_value_heads", None) or heads
    return Dims(num_kv_heads=kv, head_dim=head_dim, eps=config.rms_norm_eps)  # type: ignore[attr-defined]


def _layer(state: dict[str, Tensor], index: int, dims: Dims) -> Layer:
    prefix = f"model.layers.{index}."
    return Layer({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, dims)


def _head(state: dict[str, Tensor]) -> Tensor:
    """The output head; a plain checkpoint with tied embeddings has none of its own."""
    return state.get("lm_head.weight", state["model.embed_tokens.weight"])


def _check_shared_trunk(states: list[dict[str, Tensor]], branches: Sequence[Branch]) -> None:
    """Branches step together only if their trunk layers are the very same tensors."""
    deepest = states[-1]
    for state, b in zip(states, branches, strict=True):
        for j in range(b.exit_layer):
            name = f"model.layers.{j}.mlp.down_proj.weight"
            if state[name].data_ptr() != deepest[name].data_ptr():
                raise EvalkitError(
                    f"branch {b.name} does not share trunk layer {j} with {branches[-1].name}; "
                    "decode these branches one at a time"
                )


def _rotary_tables(flavour: str, config: object, max_len: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """cos/sin for positions 0..max_len-1 from transformers' own rotary module (rope scaling included)."""
    module = importlib.import_module(f"transformers.models.{flavour}.modeling_{flavour}")
    cls = getattr(module, {"qwen2": "Qwen2", "qwen3": "Qwen3", "llama": "Llama"}[flavour] + "RotaryEmbedding")
    rotary = cls(config=config).to(like.device)
    cos, sin = rotary(like[:1], torch.arange(max_len, device=like.device)[None])
    return cos[0], sin[0]
