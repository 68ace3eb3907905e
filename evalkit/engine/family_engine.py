"""The per-family engine that serves the model protocol (`evalkit.engine.requests.LM`).

`FamilyEngine` holds one loaded checkpoint (a `Family`) and answers requests for any of
its branches; `engine_for` returns the process's engine for a checkpoint, keyed by the family's full
identity (weights fingerprint + dtype + device), so a checkpoint is read once for all its branches and
datasets. `BranchLM` is one branch of an engine, as an `LM`.

Every score goes through `FamilyEngine.token_logprobs`, over the tokens `evalkit.engine.spans` names.
With `shared_trunk=False` it runs the one branch model (`evalkit.engine.shared_trunk.score_branch`); with
`shared_trunk=True` an `evalkit.engine.shared_trunk.SharedScorer` scores every branch of the run in one trunk
pass and keeps the other branches' answers, keyed by family identity + branch + exact token ids, in a
byte-bounded cache for the sibling branches to read. Generation works the same way on the shared path:
`evalkit.engine.shared_generate.SharedGenerator` decodes every branch of the run together and keeps the
siblings' tokens for them; off it, each branch runs stock transformers `generate`. In fp32 the texts are
the same either way; in bf16 about 1 in 6 differs, as stock `generate` differs across batch shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from evalkit.engine.batching import StopStrings, batches, cut_at_stop, left_pad, right_pad
from evalkit.engine.requests import (
    EngineConfig,
    GenerateRequest,
    GenerationSettings,
    LoglikelihoodRequest,
    Message,
    PerplexityRequest,
    prompt_budget,
)
from evalkit.engine.shared_generate import SharedGenerator, greedy_blockers
from evalkit.engine.shared_trunk import SharedScorer, score_branch
from evalkit.engine.signals import answer_signals, confidence_processor, kept_length
from evalkit.engine.spans import Span, continuation_span, text_span
from evalkit.errors import EvalkitError
from evalkit.load.branches import parse_branches
from evalkit.load.checkpoint import read_checkpoint
from evalkit.load.family import Branch, Family, checkpoint_identity, load_family, stored_dtype
from evalkit.records.results import Signals

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


# --- the engine --------------------------------------------------------------------------------


@dataclass
class FamilyEngine:
    family: Family
    config: EngineConfig = field(default_factory=EngineConfig)
    _models: dict[str, PreTrainedModel] = field(default_factory=dict, repr=False)
    _scorer: SharedScorer | None = field(default=None, repr=False)
    _generator: SharedGenerator | None = field(default=None, repr=False)
    _per_branch_reason: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # The run's branches as the family names them, however they were given (E3B, e3b, 11), so the
        # shared path compares names with names; an unknown one is an error here, not a silent opt-out.
        if self.config.branches:
            chosen = parse_branches(self.config.branches, self.family.branches)
            self.config = replace(self.config, branches=tuple(b.name for b in chosen))

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.family.tokenizer

    def model(self, branch: str | Branch) -> PreTrainedModel:
        """The branch as a stock transformers model, built on first use from the family's tensors."""
        b = self.family.branch(branch)
        if b.name not in self._models:
            self._models[b.name] = self.family.branch_model(b, attn_implementation=self.config.attn_implementation)
        return self._models[b.name]

    def lm(self, branch: str | int | Branch, settings: GenerationSettings = GenerationSettings()) -> BranchLM:
        return BranchLM(self, self.family.branch(branch), settings)

    # Scoring: every log-prob comes from here.

    def token_logprobs(
        self, branch: Branch, sequences: Sequence[Sequence[int]], starts: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        """For each token sequence, log p(seq[t+1] | seq[:t+1]) for t = 0..len-2, as a float32 CPU tensor.

        With `starts`, only t >= starts[i] is scored (the head skips the rest, which reads 0). A sequence
        of fewer than two tokens has no next token to score: its tensor is empty.
        """
        out: list[torch.Tensor | None] = [None if len(s) >= 2 else torch.zeros(0) for s in sequences]
        order = [i for i, t in enumerate(out) if t is None]
        for chunk in batches(order, [len(sequences[i]) for i in order], self.config.batch_size):
            ids, mask = right_pad([sequences[i] for i in chunk], self._pad_id, self.family.device)
            positions = None
            if starts is not None:
                first = torch.tensor([starts[i] for i in chunk])[:, None]
                positions = torch.arange(max(ids.shape[1] - 1, 0))[None, :] >= first
            scores = self._score(branch, ids, mask, positions)
            for row, i in enumerate(chunk):
                out[i] = scores[row, : len(sequences[i]) - 1].float().cpu()
        return [t for t in out if t is not None]

    def _score(
        self, branch: Branch, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        scorer = self.scorer
        if scorer is None or branch.name not in scorer.names:
            return score_branch(self.model(branch), ids, mask, positions=positions)
        return scorer.token_logprobs(branch, ids, mask, positions=positions)

    @property
    def scorer(self) -> SharedScorer | None:
        """The shared-trunk scorer of the run's branches; None when off or when only one branch is scored."""
        run = self._run_branches
        if not run:
            return None
        if self._scorer is None:
            self._scorer = SharedScorer(self.family, run, attn_implementation=self.config.attn_implementation)
        return self._scorer

    @property
    def generator(self) -> SharedGenerator | None:
        """The shared-trunk generator of the run's branches; None when off, for one branch, or when the
        family's generation config asks for something beyond plain greedy (see `shared_generation_off`)."""
        run = self._run_branches
        if not run or self.shared_generation_off:
            return None
        if self._generator is None:
            self._generator = SharedGenerator(
                self.family,
                run,
                tokenizer=self.tokenizer,
                eos_token_ids=self._eos_ids(self.model(run[-1])),
                pad_token_id=self._pad_id,
            )
        return self._generator

    @property
    def shared_generation_off(self) -> str | None:
        """Why the run's branches generate one by one even with shared_trunk on; None if they need not."""
        if self._per_branch_reason is None:
            run = self._run_branches
            blockers = sorted({f for b in run for f in greedy_blockers(self.model(b).generation_config)})
            if self.family.files.is_quantized:
                self._per_branch_reason = "quantised weights"
            elif blockers:
                self._per_branch_reason = f"generation config sets {', '.join(blockers)}"
            elif any("sliding" in t for b in run for t in _layer_types(self.family.branch_config(b))):
                self._per_branch_reason = "sliding-window attention"
            else:
                self._per_branch_reason = ""
        return self._per_branch_reason or None

    @property
    def _run_branches(self) -> list[Branch]:
        """The run's branches when shared-trunk is on and there are several; else none."""
        names = set(self.config.branches) or {b.name for b in self.family.branches}
        if not self.config.shared_trunk or len(names) < 2:
            return []
        return [b for b in self.family.branches if b.name in names]

    @property
    def shared_calls(self) -> int:
        """Trunk passes run; a sibling that finds its rows cached adds none."""
        return self._scorer.passes if self._scorer is not None else 0

    @property
    def shared_decodes(self) -> int:
        """Calls to the shared decoder; a sibling that finds its generations cached adds none."""
        return self._generator.decodes if self._generator is not None else 0

    @property
    def _pad_id(self) -> int:
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad is None:
            raise EvalkitError(f"the tokenizer of {self.family.path} has neither a pad nor an eos token; add one")
        return int(pad)

    # Generation.

    def generate(
        self, branch: Branch, prompts: Sequence[str], max_out_len: int, stop: Sequence[str], max_seq_len: int
    ) -> list[str]:
        """Greedy continuations of already-rendered prompts, cut at the first stop string."""
        return [text for text, _ in self.generate_scored(branch, prompts, max_out_len, stop, max_seq_len)]

    @torch.no_grad()
    def generate_scored(
        self, branch: Branch, prompts: Sequence[str], max_out_len: int, stop: Sequence[str], max_seq_len: int
    ) -> list[tuple[str, Signals | None]]:
        """`generate`, each text with its answer's confidence signals (`evalkit.engine.signals`).

        With shared_trunk on, a branch of the run gets its tokens from the shared generator (all the
        run's branches decoded together, siblings served from its cache) and its signals include its
        agreement with the last branch's answer; the texts are the same either way.
        """
        keep = prompt_budget(max_seq_len, max_out_len)  # the truncation rule: the prompt's last tokens
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"][-keep:] for p in prompts]
        if not all(encoded):
            raise EvalkitError("cannot generate from an empty prompt: the model needs at least one token to continue")
        shared = self.generator if self.config.shared_trunk else None
        if shared is not None and branch.name in shared.names:
            rows = shared.generate_scored(branch, encoded, max_out_len, stop, self.config.batch_size)
            texts = self.tokenizer.batch_decode([r.tolist() for r, _ in rows], skip_special_tokens=True)
            return [(cut_at_stop(t, stop), s) for t, (_, s) in zip(texts, rows, strict=True)]
        out: list[tuple[str, Signals | None]] = [("", None)] * len(prompts)
        order = list(range(len(prompts)))
        for chunk in batches(order, [len(e) for e in encoded], self.config.batch_size):
            answers = self._generate_batch(branch, [encoded[i] for i in chunk], max_out_len, stop)
            for i, answer in zip(chunk, answers, strict=True):
                out[i] = answer
        return out

    def _generate_batch(
        self, branch: Branch, encoded: list[list[int]], max_out_len: int, stop: Sequence[str]
    ) -> list[tuple[str, Signals]]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        model = self.model(branch)
        ids, mask = left_pad(encoded, self._pad_id, self.family.device)
        criteria = StoppingCriteriaList([StopStrings(self.tokenizer, stop, ids.shape[1])]) if stop else None
        eos = self._eos_ids(model)
        confidence = confidence_processor()
        gen = model.generate(  # type: ignore[operator]  # transformers types generate loosely
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_out_len,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=self._pad_id,
            eos_token_id=eos,
            stopping_criteria=criteria,
            logits_processor=LogitsProcessorList([confidence]),
        )
        new = gen[:, ids.shape[1] :]
        stats = torch.stack(confidence.steps, dim=1).cpu()  # (rows, new tokens, 2)
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        out = []
        for r, text in enumerate(texts):
            row = _until_eos(new[r].tolist(), eos)
            n = kept_length(self._decode_text, row, stop)
            out.append((cut_at_stop(text, stop), answer_signals(stats[r, :n], len(encoded[r]))))
        return out

    def _decode_text(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))

    def _eos_ids(self, model: PreTrainedModel) -> list[int]:
        ids = model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return sorted(set(ids))


# --- one branch as an LM -----------------------------------------------------------------------


@dataclass(frozen=True)
class BranchLM:
    """One branch of a family behind the `LM` protocol."""

    engine: FamilyEngine
    branch: Branch
    settings: GenerationSettings = GenerationSettings()

    def generate(self, requests: Sequence[GenerateRequest]) -> list[str]:
        return [text for text, _ in self.generate_scored(requests)]

    def generate_scored(self, requests: Sequence[GenerateRequest]) -> list[tuple[str, Signals | None]]:
        """`generate`, each text with its answer's confidence signals (and, on the shared path, agreement)."""
        out: list[tuple[str, Signals | None]] = [("", None)] * len(requests)
        groups: dict[tuple[int, tuple[str, ...]], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.max_out_len, tuple(dict.fromkeys(r.stop + self.settings.stop))), []).append(i)
        for (max_out_len, stop), idx in groups.items():
            prompts = [self.render(requests[i].prompt) for i in idx]
            answers = self.engine.generate_scored(self.branch, prompts, max_out_len, stop, self.settings.max_seq_len)
            for i, answer in zip(idx, answers, strict=True):
                out[i] = answer
        return out

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        """Sum of the log-probs of the continuation's span (`evalkit.engine.spans`: lm-eval's rule)."""
        limit = self.settings.max_seq_len
        spans = [continuation_span(self._encode, r.context, r.continuation, limit) for r in requests]
        return [float(lp.sum()) for lp in self._span_logprobs(spans)]

    def perplexity(self, requests: Sequence[PerplexityRequest]) -> list[float]:
        """Mean negative log-likelihood per token of the text's span (the tokens after `mask_length`)."""
        spans = [text_span(self._encode, r.text, r.mask_length, self.settings.max_seq_len) for r in requests]
        return [float(-lp.mean()) for lp in self._span_logprobs(spans)]

    def _span_logprobs(self, spans: Sequence[Span]) -> list[torch.Tensor]:
        """Each span's scored log-probs, one per token from its start on (never empty: spans have one)."""
        lps = self.engine.token_logprobs(self.branch, [s.tokens for s in spans], starts=[s.start - 1 for s in spans])
        return [lp[s.start - 1 :] for lp, s in zip(lps, spans, strict=True)]

    def token_len(self, texts: Sequence[str]) -> list[int]:
        return [len(self._encode(t)) for t in texts]

    def render(self, prompt: str | tuple[Message, ...]) -> str:
        """The exact text the model sees: chat messages through the chat template, or the plain text."""
        tok = self.engine.tokenizer
        if not self.settings.chat_template or not getattr(tok, "chat_template", None):
            return prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        extra: dict[str, Any] = {} if self.settings.thinking is None else {"enable_thinking": self.settings.thinking}
        return str(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **extra))

    def _encode(self, text: str) -> list[int]:
        return list(self.engine.tokenizer(text, add_special_tokens=True)["input_ids"])


# --- the process's engines ---------------------------------------------------------------------


@dataclass
class EngineRegistry:
    """Loaded families by identity, and their engines by (identity, engine config)."""

    families: dict[str, Family] = field(default_factory=dict)
    engines: dict[tuple[str, EngineConfig], FamilyEngine] = field(default_factory=dict)
    loads: list[str] = field(default_factory=list)  # identities, one entry per checkpoint read

    def engine(
        self, path: str | Path, *, dtype: str | None = None, device: str = "cpu", config: EngineConfig = EngineConfig()
    ) -> FamilyEngine:
        identity = family_identity(path, dtype=dtype, device=device)
        if identity not in self.families:
            family = load_family(path, dtype=dtype, device=device)
            self.families[family.identity] = family
            self.loads.append(family.identity)
            identity = family.identity
        engine = FamilyEngine(self.families[identity], config)  # keyed by its settled config: one per run
        return self.engines.setdefault((identity, engine.config), engine)

    def clear(self) -> None:
        self.families.clear()
        self.engines.clear()


REGISTRY = EngineRegistry()


def engine_for(
    path: str | Path, *, dtype: str | None = None, device: str = "cpu", config: EngineConfig = EngineConfig()
) -> FamilyEngine:
    """This process's engine for a checkpoint: loaded on first use, then shared by every caller."""
    return REGISTRY.engine(path, dtype=dtype, device=device, config=config)


def family_identity(path: str | Path, *, dtype: str | None = None, device: str = "cpu") -> str:
    """`Family.identity` of the checkpoint, without reading its weights."""
    files = read_checkpoint(path)
    return checkpoint_identity(files, stored_dtype(dtype, files), device)


# --- helpers -----------------------------------------------------------------------------------


def _until_eos(tokens: list[int], eos: Sequence[int]) -> list[int]:
    """The tokens up to and including the first EOS (stock `generate` pads finished rows after it)."""
    for i, t in enumerate(tokens):
        if t in eos:
            return tokens[: i + 1]
    return tokens


def _layer_types(config: object) -> list[str]:
    return list(getattr(config, "layer_types", None) or ())
