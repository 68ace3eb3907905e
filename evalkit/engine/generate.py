"""Greedy generation over `evalkit.engine.decode.Decoder`: the step loop, CUDA graphs, stopping, and the
public `generate_branches` / `generate_fast`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from evalkit.engine.decode import EAGER, Decoder, compiled_kernels
from evalkit.errors import EvalkitError
from evalkit.load.family import Branch, Family, parse_branches

StepFn = Callable[[Tensor, Tensor, Tensor], Tensor]
MODES = ("auto", "eager", "cudagraph", "compile")


def resolve_mode(mode: str, device_type: str) -> str:
    """The decode mode that runs on `device_type` ("auto" resolved); a clear error if it cannot run there."""
    if mode not in MODES:
        raise EvalkitError(f"unknown decode mode {mode!r}; valid modes are: {', '.join(MODES)}")
    if mode == "auto":
        return "cudagraph" if device_type == "cuda" else "eager"
    if mode == "cudagraph" and device_type != "cuda":
        raise EvalkitError(f"decode mode 'cudagraph' needs a CUDA device; use 'eager' or 'compile' on {device_type}")
    return mode


class Generator:
    """A `Decoder` and its step function, reusable across prompts of the same batch size.

    mode: "eager"; "cudagraph" (the eager step captured once in a CUDA graph, then replayed);
    "compile" (each layer's `project` and `finish` compiled by inductor, which fuses the norms, rotary
    and activations into a few kernels; on a GPU the step is then captured in a CUDA graph as well);
    "auto" = cudagraph on CUDA, eager elsewhere.
    """

    def __init__(
        self,
        family: Family,
        branches: Sequence[Branch],
        batch_size: int,
        max_len: int,
        mode: str = "auto",
        *,
        confidence: bool = False,
    ) -> None:
        self.mode = resolve_mode(mode, family.device.type)
        self.decoder = Decoder(family, branches, batch_size, max_len, confidence=confidence)
        # With `confidence`, (rows, 2) per generated token: its log-prob and its distribution's entropy.
        self.trace: list[Tensor] = []
        kernels = compiled_kernels() if self.mode == "compile" else EAGER
        self._step: StepFn = functools.partial(self.decoder.step, kernels=kernels)
        self._graphed = family.device.type == "cuda" and self.mode != "eager"
        self._graph: _GraphedStep | None = None

    @property
    def branches(self) -> tuple[Branch, ...]:
        return self.decoder.branch_list

    def prefill(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        first = self.decoder.prefill(input_ids, attention_mask)
        self.trace = [self.decoder.confidence.clone()] if self.decoder.track else []
        return first

    @torch.no_grad()
    def decode(self, first: Tensor, attention_mask: Tensor, steps: int, stop: Stop | None = None) -> Tensor:
        """`steps` tokens after `first` (rows,); returns (rows, 1 + steps), or fewer if `stop` ends it."""
        d = self.decoder
        prompt_len = attention_mask.shape[1]
        if prompt_len + steps > d.max_len:
            raise EvalkitError(f"{prompt_len} prompt + {steps} new tokens exceed the decoder's {d.max_len}")
        positions = attention_mask.long().sum(-1).repeat(len(d.branch_list))[:, None]
        slots = torch.arange(prompt_len, prompt_len + steps, device=first.device)
        out, tokens = [first], first
        finished = stop.finished(first) if stop else None
        for t in range(steps):
            if finished is not None and bool(finished.all()):
                break
            tokens = self._call(tokens[:, None], positions + t, slots[t : t + 1])
            if d.track:
                self.trace.append(d.confidence.clone())
            if stop is not None and finished is not None:
                tokens = torch.where(finished, stop.pad_token_id, tokens)
                finished = finished | stop.finished(tokens)
            out.append(tokens)
            if stop is not None and finished is not None and stop.due(len(out)):
                finished = finished | stop.checked(torch.stack(out, dim=1))
        return torch.stack(out, dim=1)

    def _call(self, tokens: Tensor, positions: Tensor, slot: Tensor) -> Tensor:
        if not self._graphed:
            return self._step(tokens, positions, slot)
        if self._graph is None:
            self._graph = _GraphedStep(self._step, tokens, positions, slot)
        return self._graph(tokens, positions, slot)


# The tokens generated so far, (rows, n) -> (rows,) bool: the rows that are finished (e.g. a stop string).
StopCheck = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Stop:
    """End a row at any of `eos_token_ids`; finished rows are filled with `pad_token_id`, as `generate` does.

    `check`, if given, runs every `check_every` tokens and ends the rows it marks: a row that ends
    this way may run up to `check_every - 1` tokens past the point that ended it (the caller cuts them).
    """

    eos_token_ids: Tensor
    pad_token_id: int
    check: StopCheck | None = None
    check_every: int = 8

    def finished(self, tokens: Tensor) -> Tensor:
        return torch.isin(tokens, self.eos_token_ids)

    def due(self, n_tokens: int) -> bool:
        return self.check is not None and n_tokens % self.check_every == 0

    def checked(self, tokens: Tensor) -> Tensor:
        assert self.check is not None
        return self.check(tokens).to(device=tokens.device, dtype=torch.bool)


class _GraphedStep:
    """The decode step recorded once in a CUDA graph; each call copies inputs in and replays.

    The warm-up runs (which also compile, in mode "compile") happen before capture, on a side stream."""

    def __init__(self, step: StepFn, tokens: Tensor, positions: Tensor, slot: Tensor) -> None:
        self.inputs = (tokens.clone(), positions.clone(), slot.clone())
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(2):  # warm-up off the capture; it rewrites the same cache slot with the same values
                step(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.output = step(*self.inputs)

    def __call__(self, tokens: Tensor, positions: Tensor, slot: Tensor) -> Tensor:
        for static, new in zip(self.inputs, (tokens, positions, slot), strict=True):
            static.copy_(new)
        self.graph.replay()
        return self.output.clone()


def generate_branches(
    family: Family,
    branches: str | Sequence[str | int | Branch],
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int] = (),
    ignore_eos: bool = False,
    pad_token_id: int | None = None,
    mode: str = "auto",
    stop_check: StopCheck | None = None,
    check_every: int = 8,
) -> dict[str, Tensor]:
    """Greedy decoding of several branches stepped together; new tokens per row for each branch.

    Equal to stock `generate(do_sample=False)` on each branch model: rows stop at an EOS token and are
    then filled with the pad token, and a branch's output ends when all its rows have stopped.
    `stop_check` (see `Stop`) also ends rows, every `check_every` tokens, e.g. at stop strings; the
    tokens up to the point it ended a row are the stock ones, later ones are pad or past that point.
    """
    tokens, _ = decode_branches(
        family,
        branches,
        input_ids,
        attention_mask,
        max_new_tokens=max_new_tokens,
        eos_token_ids=eos_token_ids,
        ignore_eos=ignore_eos,
        pad_token_id=pad_token_id,
        mode=mode,
        stop_check=stop_check,
        check_every=check_every,
    )
    return tokens


def decode_branches(
    family: Family,
    branches: str | Sequence[str | int | Branch],
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int] = (),
    ignore_eos: bool = False,
    pad_token_id: int | None = None,
    mode: str = "auto",
    stop_check: StopCheck | None = None,
    check_every: int = 8,
    confidence: bool = False,
) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
    """`generate_branches`, and with `confidence` each branch's (rows, n, 2) per-token log-prob of the chosen
    token and entropy of its distribution (nats), from the logits the decode computed anyway."""
    chosen = (
        parse_branches(branches, family.branches)
        if isinstance(branches, str)
        else tuple(family.branch(b) for b in branches)
    )
    if max_new_tokens < 1:
        raise EvalkitError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    input_ids = input_ids.to(family.device)
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.to(family.device)
    gen = Generator(
        family, chosen, input_ids.shape[0], input_ids.shape[1] + max_new_tokens, mode, confidence=confidence
    )
    if check_every < 1:
        raise EvalkitError(f"check_every must be >= 1, got {check_every}")
    eos = () if ignore_eos else tuple(eos_token_ids)
    stop = None if not eos and stop_check is None else _stop(family, eos, pad_token_id, stop_check, check_every)
    tokens = gen.decode(gen.prefill(input_ids, mask), mask, max_new_tokens - 1, stop)
    trace = torch.stack(gen.trace, dim=1) if confidence else None  # (rows, n, 2)
    out, stats, b = {}, {}, input_ids.shape[0]
    for k, branch in enumerate(gen.branches):
        rows = tokens[k * b : (k + 1) * b]
        n = _length(rows, stop)
        out[branch.name] = rows[:, :n]
        if trace is not None:
            stats[branch.name] = trace[k * b : (k + 1) * b, :n]
    names = [family.branch(x).name for x in chosen]
    return {name: out[name] for name in names}, ({name: stats[name] for name in names} if confidence else None)


def generate_fast(
    family: Family,
    branch: str | int | Branch,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int] = (),
    ignore_eos: bool = False,
    pad_token_id: int | None = None,
    mode: str = "auto",
) -> Tensor:
    """Greedy decoding of one branch with the static-cache fast path; the new tokens, (batch, n)."""
    name = family.branch(branch).name
    return generate_branches(
        family,
        [branch],
        input_ids,
        attention_mask,
        max_new_tokens=max_new_tokens,
        eos_token_ids=eos_token_ids,
        ignore_eos=ignore_eos,
        pad_token_id=pad_token_id,
        mode=mode,
    )[name]


def _stop(
    family: Family,
    eos_token_ids: Sequence[int],
    pad_token_id: int | None,
    check: StopCheck | None = None,
    check_every: int = 8,
) -> Stop:
    if pad_token_id is None:
        pad_token_id = family.files.config.get("pad_token_id")
    if pad_token_id is None and eos_token_ids:
        pad_token_id = int(eos_token_ids[0])
    if pad_token_id is None:
        raise EvalkitError("a stop check needs a pad token to fill finished rows; pass pad_token_id")
    eos = torch.tensor(list(eos_token_ids), dtype=torch.long, device=family.device)
    return Stop(eos_token_ids=eos, pad_token_id=int(pad_token_id), check=check, check_every=check_every)


def _length(rows: Tensor, stop: Stop | None) -> int:
    """Tokens up to and including the step at which every row had stopped (all of them if never)."""
    if stop is None:
        return rows.shape[1]
    done = torch.cumsum(stop.finished(rows).long(), dim=1).clamp(max=1).bool().all(dim=0)
    hits = torch.nonzero(done)
    return int(hits[0]) + 1 if len(hits) else rows.shape[1]
