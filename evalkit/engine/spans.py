r"""Which tokens a scoring request scores: the continuation of a loglikelihood, the text of a perplexity.

A score is a sum (loglikelihood) or a mean (perplexity) of next-token log-probs over a `Span`: a token
sequence, truncated by the rule stated at `GenerationSettings.max_seq_len`, and the index of its first
scored token. `BranchLM` builds its spans here and `FamilyEngine.token_logprobs` scores them, on the
per-branch and the shared-trunk path alike.

Loglikelihood (context, continuation) follows lm-eval's `_encode_pair`. Trailing whitespace of the
context moves to the front of the continuation, whole = enc(context + continuation), and the span is
whole[len(enc(context)):] when enc(context) is a prefix of whole. So after "The answer is ", the
candidates "42" and "B" are scored from the same character: " 42" as " " "4" "2" and " B" as " B",
although Qwen's pre-tokenizer joins a space to a letter and not to a digit.

A token can straddle the boundary: Qwen's pre-tokenizer joins punctuation to the letters after it, so
"问题：" + "以下" encodes as 问题 ｜ ：以… ｜ …下 while "问题：" alone is 问题 ｜ ：. Then enc(context) is not a
prefix of whole, and the span starts where the two encodings first differ: the straddling token is
scored with the continuation. Every character of the continuation is inside the span, plus the context
characters that share its first token. (lm-eval takes whole[len(enc(context)):] in every case, which
here would drop the straddling token and score only part of the continuation.) Moving whitespace can
make such a token too: "Answer:\n" + "B" encodes as Answer ｜ :\n ｜ B, "Answer:" alone as Answer ｜ :, so
":\n" is scored, with every candidate alike.

Perplexity (text, mask_length) scores the text's tokens from index max(mask_length, 1) on: the first
token has nothing before it. mask_length counts the text's own tokens, as in OpenCompass's HF models.
OpenCompass computes it by encoding the context alone, so it carries no character boundary and the
whitespace rule above cannot be applied to it: a context that ends in whitespace, or whose last token
merges with what follows, puts the boundary elsewhere than a loglikelihood request would.

An input with nothing to score is an EvalkitError, never a number. An empty continuation would score 0,
the best log-likelihood there is, so an empty candidate would win every question; a mean over no
tokens is NaN, which OpenCompass's min() over a question's candidates may pick or skip by position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evalkit.engine.requests import first_read
from evalkit.errors import EvalkitError

Encode = Callable[[str], list[int]]


@dataclass(frozen=True)
class Span:
    """A token sequence as the model reads it, and its first scored token (>= 1: one comes before it)."""

    tokens: list[int]
    start: int


def _read(tokens: list[int], start: int, max_seq_len: int, what: str) -> Span:
    """The last max_seq_len tokens, all scored ones among them (the truncation rule, `first_read`)."""
    drop = first_read(len(tokens), start, max_seq_len, what)
    return Span(tokens[drop:], start - drop)


def continuation_span(encode: Encode, context: str, continuation: str, max_seq_len: int) -> Span:
    """The tokens of context + continuation, scored from the continuation's first token (see the module)."""
    if not continuation:
        raise EvalkitError(
            f"empty continuation after {_show(context)}: there is nothing to score; every candidate needs text"
        )
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = encode(context + continuation)
    start = common_prefix(whole, encode(context))
    if start == 0 and not context:
        raise EvalkitError(
            f"the context before {_show(continuation)} is empty or only whitespace, so the continuation's first "
            "token has nothing before it to be scored from; give a context with text"
        )
    if start == 0:
        raise EvalkitError(
            f"no token of the context {_show(context)} stands apart from the continuation {_show(continuation)} "
            "(their texts tokenize together from the first token on), so there is nothing to score the "
            "continuation from; give a longer context"
        )
    if start >= len(whole):
        raise EvalkitError(f"the continuation {_show(continuation)} adds no token to {_show(context)}")
    return _read(whole, start, max_seq_len, f"the loglikelihood of {_show(continuation)}")


def text_span(encode: Encode, text: str, mask_length: int | None, max_seq_len: int) -> Span:
    """The tokens of a text, scored from index max(mask_length, 1) (see the module)."""
    tokens = encode(text)
    start = max(mask_length or 0, 1)
    if start < len(tokens):
        return _read(tokens, start, max_seq_len, f"the perplexity of {_show(text)}")
    if not tokens:
        why = "it is empty"
    elif mask_length and mask_length >= len(tokens):
        why = f"mask_length {mask_length} covers all {len(tokens)} of its tokens"
    else:
        why = "it is one token, and a text's first token has nothing before it to be scored from"
    raise EvalkitError(
        f"nothing to score in {_show(text)}: {why}; a perplexity needs at least one token after the context"
    )


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):  # the shorter one bounds the common prefix
        if x != y:
            break
        n += 1
    return n


def _show(text: str, limit: int = 60) -> str:
    """A text for an error line: quoted, escapes visible, long ones shortened to their end."""
    return repr(text) if len(text) <= limit else "…" + repr(text[-limit:])
