"""Which tokens a request scores and reads, and which inputs it refuses, on the per-branch and the
shared-trunk path: every score is checked against log-probs computed directly from the branch model's
logits, over spans written out by hand from the tiny tokenizer's encodings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evalkit import EvalkitError
from evalkit.engine.family_engine import FamilyEngine
from evalkit.engine.requests import (
    EngineConfig,
    GenerateRequest,
    GenerationSettings,
    LoglikelihoodRequest,
    PerplexityRequest,
)
from evalkit.load.family import Family, load_family

PATHS = ["per-branch", "shared-trunk"]


@pytest.fixture(scope="module")
def family(make_checkpoint) -> Family:
    """A tiny family with the built-in tokenizer: the spans below are its encodings (the embedded family's
    tokenizer was trained on its templates too, and splits general English differently)."""
    return load_family(make_checkpoint())


def engine(family: Family, path: str) -> FamilyEngine:
    names = tuple(b.name for b in family.branches)
    return FamilyEngine(family, EngineConfig(batch_size=2, shared_trunk=path == "shared-trunk", branches=names))


def reference(family: Family, branch, tokens: list[int]) -> torch.Tensor:
    """log p(tokens[t+1] | tokens[..t]) straight from the branch model's logits."""
    with torch.no_grad():
        logits = family.branch_model(branch)(input_ids=torch.tensor([tokens])).logits[0].float()
    return logits[:-1].log_softmax(-1).gather(-1, torch.tensor(tokens[1:])[:, None]).squeeze(-1)


# (context, continuation, the text of the tokens scored, how many they are), from the encodings:
#   "The answer is 42"  The| answer| is| |4|2      "The answer is B"  The| answer| is| B
#   "问题：以下"          问题|：以…|…下 ("问题：" alone: 问题|：)
#   "Answer:\nB"        Answer|:\n|B ("Answer:" alone: Answer|:)
SPANS = [
    ("The answer is ", "42", " 42", 3),  # a digit: the moved space is its own token, scored
    ("The answer is ", "B", " B", 1),  # a letter: the moved space joins it
    ("The answer is", " Paris, France", " Paris, France", 5),  # several tokens, no whitespace to move
    ("问题：", "以下", "：以下", 2),  # "：" merges with the continuation: the straddling token is scored
    ("Answer:\n", "B", ":\nB", 2),  # the moved newline joins the ":" before it: that token is scored
]


@pytest.mark.parametrize("path", PATHS)
def test_loglikelihood_scores_lm_evals_span(family, path):
    eng = engine(family, path)
    tok = eng.tokenizer
    requests = [LoglikelihoodRequest(c, x) for c, x, _, _ in SPANS]
    for branch in family.branches:
        got = eng.lm(branch).loglikelihood(requests)
        for (context, cont, span_text, n), value in zip(SPANS, got, strict=True):
            whole = tok(context + cont)["input_ids"]
            assert tok.decode(whole[-n:]) == span_text
            assert value == pytest.approx(float(reference(family, branch, whole)[-n:].sum()), abs=1e-4)


@pytest.mark.parametrize("path", PATHS)
def test_trailing_context_whitespace_scores_as_part_of_the_continuation(family, path):
    lm = engine(family, path).lm(family.branches[1])
    moved = lm.loglikelihood([LoglikelihoodRequest("The answer is ", x) for x in ("42", "B", "\n7")])
    given = lm.loglikelihood([LoglikelihoodRequest("The answer is", x) for x in (" 42", " B", " \n7")])
    assert moved == given


@pytest.mark.parametrize("path", PATHS)
def test_perplexity_masks_the_texts_own_first_tokens(family, path):
    """mask_length counts the text's tokens: OpenCompass's count of a context ending in a space covers the
    space token before a digit, and the whole " B" after it (see evalkit.engine.spans)."""
    eng = engine(family, path)
    branch = family.branches[2]
    tok = eng.tokenizer
    text = "The answer is 42"  # The| answer| is| |4|2
    masked = len(tok("The answer is ")["input_ids"])
    assert masked == 4
    ref = reference(family, branch, tok(text)["input_ids"])
    got = eng.lm(branch).perplexity(
        [PerplexityRequest(text, masked), PerplexityRequest(text), PerplexityRequest(text, 1)]
    )
    assert got == pytest.approx([float(-ref[3:].mean()), float(-ref.mean()), float(-ref.mean())], abs=1e-4)
    with pytest.raises(EvalkitError, match="mask_length 4 covers all 4 of its tokens"):
        eng.lm(branch).perplexity([PerplexityRequest("The answer is B", masked)])


# --- inputs with nothing to score --------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (LoglikelihoodRequest("The answer is", ""), "empty continuation"),
        (LoglikelihoodRequest("", "B"), "context before 'B' is empty"),
        (LoglikelihoodRequest("  ", "B"), "context before '  B' is empty"),
        (LoglikelihoodRequest("答", "案"), "no token of the context '答' stands apart"),
        (PerplexityRequest(""), "it is empty"),
        (PerplexityRequest("B"), "it is one token"),
        (PerplexityRequest("The answer", mask_length=2), "mask_length 2 covers all 2"),
    ],
)
def test_nothing_to_score_is_an_error_alone_or_in_a_batch(family, path, request_, message):
    """Never a number: an empty candidate would score 0 (the best there is), an empty mean is NaN."""
    lm = engine(family, path).lm(family.branches[0])
    score = lm.loglikelihood if isinstance(request_, LoglikelihoodRequest) else lm.perplexity
    good = LoglikelihoodRequest("The answer is", " B") if score == lm.loglikelihood else PerplexityRequest("x y z")
    for batch in ([request_], [good, request_, good]):
        with pytest.raises(EvalkitError, match=message):
            score(batch)


def test_a_short_sequence_has_no_log_probs(family):
    eng = engine(family, "per-branch")
    branch = family.branches[0]
    out = eng.token_logprobs(branch, [[], [5], [5, 6, 7], []])
    assert [t.numel() for t in out] == [0, 0, 2, 0]
    assert torch.equal(out[2], eng.token_logprobs(branch, [[5, 6, 7]])[0])


@pytest.mark.parametrize("path", PATHS)
def test_generating_from_an_empty_prompt_is_an_error(family, path):
    lm = engine(family, path).lm(family.branches[0], GenerationSettings(chat_template=False))
    for batch in ([""], ["Hi", ""]):
        with pytest.raises(EvalkitError, match="empty prompt"):
            lm.generate([GenerateRequest(p, max_out_len=3) for p in batch])


def test_impossible_lengths_are_errors():
    with pytest.raises(EvalkitError, match="max_out_len must be a whole number of tokens, at least 1; got 0"):
        GenerateRequest("Hi", max_out_len=0)
    with pytest.raises(EvalkitError, match="max_out_len must be .* got None"):
        GenerateRequest("Hi", max_out_len=None)  # type: ignore[arg-type]
    with pytest.raises(EvalkitError, match="mask_length must be .* at least 0; got -1"):
        PerplexityRequest("Hi there", mask_length=-1)
    with pytest.raises(EvalkitError, match="max_seq_len must be .* at least 2; got 1"):
        GenerationSettings(max_seq_len=1)
    assert PerplexityRequest("Hi there", mask_length=np.int64(1)).mask_length == 1  # OpenCompass may pass numpy ints


# --- truncation: the last max_seq_len tokens, on every path ------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_scoring_reads_the_last_max_seq_len_tokens(family, path):
    eng = engine(family, path)
    branch = family.branches[1]
    tok = eng.tokenizer
    lm = eng.lm(branch, GenerationSettings(max_seq_len=6))
    context, cont = "Question: 2+2?\nAnswer:", " 4"  # 11 tokens then " " "4"
    whole = tok(context + cont)["input_ids"]
    assert len(whole) == 12
    kept = whole[-6:]
    assert lm.loglikelihood([LoglikelihoodRequest(context, cont)])[0] == pytest.approx(
        float(reference(family, branch, kept)[-2:].sum()), abs=1e-4
    )
    text = "The quick brown fox jumps over the lazy dog."
    ids = tok(text)["input_ids"]
    mask = len(ids) - 3
    assert lm.perplexity([PerplexityRequest(text, mask)])[0] == pytest.approx(
        float(-reference(family, branch, ids[-6:])[-3:].mean()), abs=1e-4
    )


@pytest.mark.parametrize("path", PATHS)
def test_scored_tokens_that_do_not_fit_are_an_error(family, path):
    lm = engine(family, path).lm(family.branches[1], GenerationSettings(max_seq_len=4))
    with pytest.raises(EvalkitError, match="raise max_seq_len to at least 9"):
        lm.perplexity([PerplexityRequest("The quick brown fox jumps over")])
    with pytest.raises(EvalkitError, match="loglikelihood of ' Paris, France'.*max_seq_len 4"):
        lm.loglikelihood([LoglikelihoodRequest("The answer is", " Paris, France")])


@pytest.mark.parametrize("path", PATHS)
def test_generation_reads_the_last_tokens_that_leave_room_for_the_output(family, path):
    eng = engine(family, path)
    branch = family.branches[-1]
    tok = eng.tokenizer
    prompt = "Count: one, two, three, four, five,"
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    settings = GenerationSettings(chat_template=False, max_seq_len=10)
    got = eng.lm(branch, settings).generate([GenerateRequest(prompt, max_out_len=4)])[0]
    model = family.branch_model(branch)
    with torch.no_grad():
        stock = model.generate(
            input_ids=torch.tensor([ids[-6:]]), max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id
        )
    assert len(ids) > 6
    assert got == tok.decode(stock[0, 6:], skip_special_tokens=True)
    with pytest.raises(EvalkitError, match="max_out_len 10 leaves no room for the prompt within max_seq_len 10"):
        eng.lm(branch, settings).generate([GenerateRequest(prompt, max_out_len=10)])
