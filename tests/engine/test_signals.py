"""Confidence signals and agreement from generation: the decode's own logits, checked against a teacher-forced
pass through each stock branch model, on a tiny family in fp32."""

from __future__ import annotations

import math

import pytest
import torch

from evalkit import load_family
from evalkit.engine.family_engine import FamilyEngine
from evalkit.engine.requests import EngineConfig, GenerateRequest, GenerationSettings
from evalkit.engine.signals import answer_signals, kept_length, step_stats

PROMPTS = ["What is the capital of France?", "def add(a, b):", "Hi", "Question: 2 + 2 = ?\nAnswer:"]
MAX_OUT = 12


def _engine(family, shared):
    names = tuple(b.name for b in family.branches)
    return FamilyEngine(family, EngineConfig(batch_size=2, shared_trunk=shared, branches=names))


def _teacher_forced(engine, branch, prompt_ids, answer_ids):
    """(log-probs of the answer's tokens, entropy at the first answer position) from one stock forward pass."""
    model = engine.model(branch)
    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.inference_mode():
        logp = model(input_ids=ids).logits[0].float().log_softmax(-1)
    p = len(prompt_ids)
    at = logp[p - 1 : p - 1 + len(answer_ids)]
    chosen = at.gather(-1, torch.tensor(answer_ids)[:, None]).squeeze(-1)
    return chosen, float(-(at[0].exp() * at[0]).sum())


def _greedy(engine, branch, prompt_ids, n):
    model = engine.model(branch)
    out = model.generate(
        input_ids=torch.tensor([prompt_ids]), max_new_tokens=n, do_sample=False, eos_token_id=[], pad_token_id=0
    )
    return out[0, len(prompt_ids) :].tolist()


@pytest.mark.parametrize("shared", [False, True])
def test_signals_are_the_answer_tokens_log_probs_and_first_entropy(make_checkpoint, shared):
    family = load_family(make_checkpoint("qwen2", False))
    engine = _engine(family, shared)
    settings = GenerationSettings(chat_template=False)
    requests = [GenerateRequest(p, MAX_OUT) for p in PROMPTS]
    for b in family.branches:
        answers = engine.lm(b, settings).generate_scored(requests)
        for prompt, (text, sig) in zip(PROMPTS, answers, strict=True):
            ids = engine.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            answer = engine.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
            assert sig is not None and sig.prompt_tokens == len(ids)
            assert 1 <= sig.answer_tokens <= MAX_OUT
            # The answer's own tokens, re-read teacher-forced, give the same numbers.
            tokens = _greedy(engine, b, ids, sig.answer_tokens)
            chosen, entropy = _teacher_forced(engine, b, ids, tokens)
            assert sig.mean_logprob == pytest.approx(float(chosen.mean()), abs=1e-4)
            assert sig.min_logprob == pytest.approx(float(chosen.min()), abs=1e-4)
            assert sig.first_entropy == pytest.approx(entropy, abs=1e-4)
            assert sig.min_logprob <= sig.mean_logprob <= 0 and 0 <= sig.first_entropy <= math.log(
                len(engine.tokenizer)
            )
            assert answer == [] or sig.answer_tokens >= 1
            assert (sig.agreement is not None) == shared


def test_agreement_counts_the_positions_where_a_branch_predicts_the_last_branchs_token(make_checkpoint):
    family = load_family(make_checkpoint("qwen2", True))  # one shared head: random branches partly agree
    engine = _engine(family, True)
    settings = GenerationSettings(chat_template=False)
    requests = [GenerateRequest(p, MAX_OUT) for p in PROMPTS]
    last = family.branches[-1]
    last_answers = engine.lm(last, settings).generate_scored(requests)
    for _, sig in last_answers:
        assert sig is not None and sig.agreement == pytest.approx(1.0)  # the last branch agrees with itself
    seen = set()
    for b in family.branches[:-1]:
        for i, (_, sig) in enumerate(engine.lm(b, settings).generate_scored(requests)):
            ids = engine.tokenizer(PROMPTS[i], add_special_tokens=False)["input_ids"]
            target = _greedy(engine, last, ids, last_answers[i][1].answer_tokens)
            model = engine.model(b)
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([ids + target])).logits[0]
            guess = logits[len(ids) - 1 : len(ids) - 1 + len(target)].argmax(-1)
            want = float((guess == torch.tensor(target)).float().mean())
            assert sig.agreement == pytest.approx(want), (b.name, i)
            seen.add(round(want, 3))
    assert len(seen) > 1  # the check saw different fractions, not one constant


def test_kept_length_stops_at_the_token_that_completes_the_text_before_a_stop_string():
    pieces = {1: "ab", 2: "c", 3: "\n\n", 4: "de"}

    def decode(t):
        return "".join(pieces[x] for x in t)

    assert kept_length(decode, [1, 2, 3, 4], ()) == 4
    assert kept_length(decode, [1, 2, 3, 4], ("\n\n",)) == 2
    assert kept_length(decode, [1, 2, 3, 4], ("b",)) == 1  # at least one token, even when the cut is inside it
    assert kept_length(decode, [], ("x",)) == 0


def test_signals_never_hold_nan_and_tokens_masked_to_minus_infinity_add_no_entropy():
    logits = torch.tensor([[0.0, 0.0, float("-inf"), float("-inf")], [float("nan")] * 4])
    stats = step_stats(logits, torch.tensor([0, 0]))
    assert stats[0, 0] == pytest.approx(math.log(0.5)) and stats[0, 1] == pytest.approx(math.log(2))
    sig = answer_signals(stats[1:], prompt_tokens=3)
    assert sig.mean_logprob is None and sig.first_entropy is None and sig.answer_tokens == 1
    ok = answer_signals(stats[:1], prompt_tokens=3)
    assert ok.mean_logprob == pytest.approx(math.log(0.5)) and ok.first_entropy == pytest.approx(math.log(2))
