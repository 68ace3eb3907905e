"""The baselines evalkit compares a family against: names, display names, where their checkpoints are
found (an environment variable each), and how each one generates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from evalkit.errors import EvalkitError, did_you_mean


@dataclass(frozen=True)
class Generation:
    """Per-model generation settings (greedy always)."""

    max_out_len: int = 2048
    stop_words: tuple[str, ...] = ()
    chat_template: bool = True
    thinking: bool | None = None  # Qwen3 enable_thinking
    max_seq_len: int = 8192
    strip_reasoning: bool = False  # drop <think>...</think> before scoring


@dataclass(frozen=True)
class Baseline:
    name: str  # the --baselines key, e.g. "qwen2.5-7b-instruct"
    display: str  # e.g. "Qwen2.5-7B-Instruct"
    env: str  # environment variable holding the local checkpoint directory
    generation: Generation = field(default_factory=Generation)
    quantized: str | None = None  # "awq" | "gptq"

    @property
    def abbr(self) -> str:
        return self.name


_QWEN_STOP = ("<|im_end|>", "<|endoftext|>")
BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline(
            "qwen2.5-7b-instruct", "Qwen2.5-7B-Instruct", "QWEN2_5_7B_INSTRUCT_PATH", Generation(stop_words=_QWEN_STOP)
        ),
        Baseline(
            "llama-3.1-8b-instruct",
            "Llama-3.1-8B-Instruct",
            "LLAMA_3_1_8B_INSTRUCT_PATH",
            Generation(stop_words=("<|eot_id|>", "<|end_of_text|>")),
        ),
        Baseline(
            "qwen3-8b-think",
            "Qwen3-8B(think)",
            "QWEN3_8B_PATH",
            Generation(
                max_out_len=32768, stop_words=_QWEN_STOP, thinking=True, max_seq_len=40960, strip_reasoning=True
            ),
        ),
        Baseline("yi-6b-chat", "Yi-6B-Chat", "YI_6B_CHAT_PATH", Generation(stop_words=_QWEN_STOP, max_seq_len=4096)),
        Baseline("yi-9b", "Yi-9B", "YI_9B_PATH", Generation(chat_template=False, max_seq_len=4096)),
        Baseline("yi-34b-chat", "Yi-34B-Chat", "YI_34B_CHAT_PATH", Generation(stop_words=_QWEN_STOP, max_seq_len=4096)),
        Baseline(
            "yi-34b-chat-4bits",
            "Yi-34B-Chat-4bits",
            "YI_34B_CHAT_4BITS_PATH",
            Generation(stop_words=_QWEN_STOP, max_seq_len=4096),
            quantized="awq",
        ),
        Baseline(
            "yi-34b-chat-8bits",
            "Yi-34B-Chat-8bits",
            "YI_34B_CHAT_8BITS_PATH",
            Generation(stop_words=_QWEN_STOP, max_seq_len=4096),
            quantized="gptq",
        ),
    )
}
RUYI_GENERATION = Generation(stop_words=_QWEN_STOP)


def parse_baselines(spec: str | Sequence[str] | None) -> tuple[Baseline, ...]:
    """ "qwen2.5-7b-instruct,yi-9b" (any case; display names work too), "all", or none."""
    items = spec.split(",") if isinstance(spec, str) else list(spec or [])
    names = [n.strip() for n in items if n.strip()]
    if [n.lower() for n in names] == ["all"]:
        return tuple(BASELINES.values())
    by_display = {b.display.lower(): b for b in BASELINES.values()}
    out = []
    for n in names:
        b = BASELINES.get(n.lower()) or by_display.get(n.lower())
        if b is None:
            raise did_you_mean("baseline", n, list(BASELINES))
        out.append(b)
    return tuple(dict.fromkeys(out))


def parse_baseline_paths(pairs: Sequence[str]) -> dict[str, str]:
    """["yi-9b=/models/Yi-9B", ...] -> {"yi-9b": "/models/Yi-9B"}."""
    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not path:
            raise EvalkitError(f"--baseline-path {pair!r} must look like NAME=DIR, e.g. yi-9b=/models/Yi-9B")
        out[parse_baselines(name)[0].name] = path
    return out
