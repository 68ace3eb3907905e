"""Shared-trunk generation: the first branch to ask decodes every branch of the run; siblings read the cache.

Each branch of a run is its own OpenCompass model and asks for its generations on its own, batch by
batch. `SharedGenerator` answers the first ask for a prompt by decoding all the run's branches
together (`generate.generate_branches`: trunk weights read once per step for all of them) and keeps
the other branches' new tokens in a byte-bounded LRU (`trunk.ScoreCache`), handed over and dropped
when that branch asks for the same prompt.

An answer's key is the branch name and a digest of everything the tokens depend on: the family's
identity (`Family.identity`: weights fingerprint, dtype, device), the prompt's exact
token ids (after chat template and truncation), max_out_len, the stop strings, and the EOS and pad
ids. Two checkpoints, two branches or two settings never read each other's answers.

Each answer also gets its confidence signals (`evalkit.engine.signals`: from the decode's own logits) and,
from one teacher-forced trunk pass over the prompt and the last branch's answer, every branch's agreement
with that answer; they travel with the tokens and are handed over with them.

Stop strings end rows during decoding: every `check_every` tokens the tail of each row is decoded and
rows that hold a stop string finish. Texts are then cut at the first stop string, as on the
per-branch path, so the texts equal those of stock greedy `generate` on each branch model (in fp32;
in bf16 about 1 in 6 differs, see `evalkit.engine.decode`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from evalkit.engine.batching import batches, left_pad, stop_string_check
from evalkit.engine.generate import decode_branches
from evalkit.engine.shared_trunk import CACHE_BYTES, ScoreCache, Trunk
from evalkit.engine.signals import agreements, answer_signals, kept_length
from evalkit.load.family import Branch, Family
from evalkit.records.results import Signals

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedTokenizerBase

_MAX_KEPT_SIGNALS = 1_000_000
CHECK_EVERY = 8  # tokens between stop-string checks (each one decodes a few tokens per row on the host)
# Generation-config fields whose non-default values change greedy output in stock `generate`; the fast
# decoder applies none of them, so a family that sets any decodes branch by branch instead.
_PROCESSORS = (
    "repetition_penalty",
    "encoder_repetition_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "sequence_bias",
    "suppress_tokens",
    "begin_suppress_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "min_length",
    "min_new_tokens",
    "exponential_decay_length_penalty",
    "renormalize_logits",
    "guidance_scale",
    "low_memory",
    "num_beams",
    "penalty_alpha",
    "prompt_lookup_num_tokens",
)


class SharedGenerator:
    """Greedy generation for several branches of one family, decoded together, answers kept for siblings."""

    def __init__(
        self,
        family: Family,
        branches: Sequence[Branch],
        *,
        tokenizer: PreTrainedTokenizerBase,
        eos_token_ids: Sequence[int],
        pad_token_id: int,
        cache: ScoreCache | None = None,
        check_every: int = CHECK_EVERY,
        mode: str = "auto",
    ) -> None:
        self.family = family
        self.branches = tuple(sorted(branches, key=lambda b: b.exit_layer))
        self.tokenizer = tokenizer
        self.eos_token_ids = tuple(sorted(set(eos_token_ids)))
        self.pad_token_id = pad_token_id
        self.cache = cache if cache is not None else ScoreCache(CACHE_BYTES)
        self.check_every, self.mode = check_every, mode
        self.identity = family.identity
        self.decodes = 0  # calls to the shared decoder; a sibling served from the cache adds none
        self._signals: dict[tuple[str, str], Signals] = {}  # beside the cached rows, handed over with them
        self._trunk: Trunk | None = None
        self.hits = 0  # rows handed over from the cache
        self.misses = 0  # rows that needed decoding

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.branches)

    def generate(
        self, branch: Branch, encoded: Sequence[Sequence[int]], max_out_len: int, stop: Sequence[str], batch_size: int
    ) -> list[torch.Tensor]:
        """The new tokens of each prompt for `branch` (EOS kept, nothing after it; may run past a stop string)."""
        return [row for row, _ in self.generate_scored(branch, encoded, max_out_len, stop, batch_size)]

    def generate_scored(
        self, branch: Branch, encoded: Sequence[Sequence[int]], max_out_len: int, stop: Sequence[str], batch_size: int
    ) -> list[tuple[torch.Tensor, Signals | None]]:
        """`generate`, each row with its answer's signals and agreement (None if its cache entry outlived them)."""
        keys = [self._key(ids, max_out_len, stop) for ids in encoded]
        out: list[tuple[torch.Tensor, Signals | None] | None] = []
        for k in keys:
            row = self.cache.pop((branch.name, k))
            kept = self._signals.pop((branch.name, k), None)
            out.append(None if row is None else (row, kept))
        missing = [i for i, t in enumerate(out) if t is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        for chunk in batches(missing, [len(encoded[i]) for i in missing], batch_size):
            rows, signals = self._decode([encoded[i] for i in chunk], max_out_len, stop)
            for j, i in enumerate(chunk):
                out[i] = (rows[branch.name][j], signals[branch.name][j])
                for other in self.names:
                    if other != branch.name:
                        self.cache.put((other, keys[i]), rows[other][j])
                        self._keep((other, keys[i]), signals[other][j])
        return [t for t in out if t is not None]

    def _keep(self, key: tuple[str, str], signals: Signals) -> None:
        """Signals wait beside their row; bounded, oldest first, like the rows (an evicted row's are dropped)."""
        self._signals[key] = signals
        while len(self._signals) > _MAX_KEPT_SIGNALS:
            del self._signals[next(iter(self._signals))]

    def _decode(
        self, encoded: list[Sequence[int]], max_out_len: int, stop: Sequence[str]
    ) -> tuple[dict[str, list[torch.Tensor]], dict[str, list[Signals]]]:
        ids, mask = left_pad(encoded, self.pad_token_id, self.family.device)
        check = stop_string_check(self.tokenizer, stop, self.check_every) if any(stop) else None
        tokens, stats = decode_branches(
            self.family,
            self.branches,
            ids,
            mask,
            max_new_tokens=max_out_len,
            eos_token_ids=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            mode=self.mode,
            stop_check=check,
            check_every=self.check_every,
            confidence=True,
        )
        self.decodes += 1
        assert stats is not None
        rows = {name: [self._trim(row) for row in r.cpu()] for name, r in tokens.items()}
        return rows, self._signals_of(encoded, rows, {k: v.cpu() for k, v in stats.items()}, stop)

    def _signals_of(
        self,
        encoded: list[Sequence[int]],
        rows: dict[str, list[torch.Tensor]],
        stats: dict[str, torch.Tensor],
        stop: Sequence[str],
    ) -> dict[str, list[Signals]]:
        """Each answer's signals over the tokens its text keeps, with its agreement with the last branch."""

        def decode(t: list[int]) -> str:
            return str(self.tokenizer.decode(t, skip_special_tokens=True))

        kept = {name: [kept_length(decode, r.tolist(), stop) for r in rs] for name, rs in rows.items()}
        last = self.branches[-1].name
        answers = [r[:n].tolist() for r, n in zip(rows[last], kept[last], strict=True)]
        if self._trunk is None:
            self._trunk = Trunk(self.family, self.branches)
        agree = agreements(self._trunk, encoded, answers, self.pad_token_id)
        out: dict[str, list[Signals]] = {}
        for name in rows:
            out[name] = [
                replace(answer_signals(stats[name][j, :n], len(encoded[j])), agreement=agree[name][j])
                for j, n in enumerate(kept[name])
            ]
        return out

    def _trim(self, row: torch.Tensor) -> torch.Tensor:
        """A row up to and including its first EOS: what follows is the pad that fills finished rows."""
        hits = torch.nonzero(torch.isin(row, torch.tensor(self.eos_token_ids, dtype=row.dtype)))
        return row[: int(hits[0]) + 1].clone() if len(hits) else row.clone()

    def _key(self, ids: Sequence[int], max_out_len: int, stop: Sequence[str]) -> str:
        """Everything a generation depends on besides the branch (which is the other half of the cache key)."""
        settings = json.dumps([max_out_len, sorted(set(stop)), self.eos_token_ids, self.pad_token_id])
        h = hashlib.sha256(self.identity.encode())
        h.update(f"|{settings}|{len(ids)}|".encode())
        h.update(torch.tensor(list(ids), dtype=torch.long).numpy().tobytes())
        return h.hexdigest()


def greedy_blockers(config: GenerationConfig) -> list[str]:
    """The generation-config fields set away from their defaults that the fast decoder does not apply."""
    from transformers import GenerationConfig

    default = GenerationConfig()
    return [f for f in _PROCESSORS if getattr(config, f, None) != getattr(default, f, None)]
