"""The model protocol and the per-family engine, on the tiny family in fp32 on the CPU."""

from __future__ import annotations

import pytest
import torch

from evalkit.engine.batching import StopStrings, cut_at_stop
from evalkit.engine.family_engine import EngineRegistry, FamilyEngine
from evalkit.engine.requests import EngineConfig, GenerateRequest, LoglikelihoodRequest, PerplexityRequest

PROMPTS = ["What is the capital of France?", "def add(a, b):", "Count: one, two, three,", "Hi"]


@pytest.fixture(scope="module")
def engine(tiny_path) -> FamilyEngine:
    return EngineRegistry().engine(tiny_path, config=EngineConfig(batch_size=3))


def _direct_logprobs(engine: FamilyEngine, branch, text: str) -> tuple[list[int], torch.Tensor]:
    ids = engine.tokenizer(text)["input_ids"]
    with torch.no_grad():
        logits = engine.family.branch_model(branch)(input_ids=torch.tensor([ids])).logits[0]
    lp = torch.log_softmax(logits.float(), -1)
    return ids, lp[:-1].gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)


def test_loglikelihood_scores_only_the_continuation(engine):
    branch = engine.family.branches[1]
    context, cont = "The answer is", " Paris, France"
    whole, lp = _direct_logprobs(engine, branch, context + cont)
    n_ctx = len(engine.tokenizer(context)["input_ids"])
    assert whole[:n_ctx] == engine.tokenizer(context)["input_ids"]
    expected = float(lp[n_ctx - 1 :].sum())
    got = engine.lm(branch).loglikelihood([LoglikelihoodRequest(context, cont), LoglikelihoodRequest("x", " y")])
    assert got[0] == pytest.approx(expected, abs=1e-4)
    assert len(got) == 2


def test_perplexity_is_mean_nll_after_the_mask(engine):
    branch = engine.family.branches[0]
    text = "A kettle of water boils on the stove."
    _, lp = _direct_logprobs(engine, branch, text)
    got = engine.lm(branch).perplexity([PerplexityRequest(text), PerplexityRequest(text, mask_length=4)])
    assert got[0] == pytest.approx(float(-lp.mean()), abs=1e-4)
    assert got[1] == pytest.approx(float(-lp[3:].mean()), abs=1e-4)


def test_results_do_not_change_with_batch_size(engine, tiny_path):
    one = FamilyEngine(engine.family, EngineConfig(batch_size=1))
    branch = engine.family.branches[2]
    gen = [GenerateRequest(p, max_out_len=12) for p in PROMPTS]
    assert engine.lm(branch).generate(gen) == one.lm(branch).generate(gen)
    ll = [LoglikelihoodRequest(p, " yes") for p in PROMPTS]
    assert engine.lm(branch).loglikelihood(ll) == pytest.approx(one.lm(branch).loglikelihood(ll), abs=1e-5)


def test_generate_stops_at_stop_strings(make_checkpoint):
    # random weights: they talk on for 16 tokens, where the trained family answers and stops
    engine = EngineRegistry().engine(make_checkpoint(), config=EngineConfig(batch_size=3))
    lm = engine.lm(engine.family.branches[-1])
    free = lm.generate([GenerateRequest(PROMPTS[0], max_out_len=16)])[0]
    stop = free[4:6]
    assert stop and stop in free
    cut = lm.generate([GenerateRequest(PROMPTS[0], max_out_len=16, stop=(stop,))])[0]
    assert cut == free[: free.find(stop)]
    assert cut_at_stop("abcXdefYg", ["Y", "X"]) == "abc"


def test_stop_criterion_ends_only_the_rows_that_hit_a_stop(engine):
    tok = engine.tokenizer
    criterion = StopStrings(tok, ["world"], prompt_len=1)
    rows = [tok("x hello world")["input_ids"], tok("x hello there")["input_ids"]]
    width = max(map(len, rows))
    ids = torch.tensor([r + [r[-1]] * (width - len(r)) for r in rows])
    assert criterion(ids, None).tolist() == [True, False]


def test_results_come_back_in_input_order(engine):
    lm = engine.lm(engine.family.branches[0])
    texts = ["a b", "a much longer piece of text here", "mid length text"]
    together = lm.perplexity([PerplexityRequest(t) for t in texts])
    alone = [lm.perplexity([PerplexityRequest(t)])[0] for t in texts]
    assert together == pytest.approx(alone, abs=1e-5)


def test_chat_template_and_thinking_reach_the_prompt(engine):
    from evalkit.engine.requests import GenerationSettings

    lm = engine.lm(engine.family.branches[0], GenerationSettings(chat_template=True))
    rendered = lm.render((({"role": "user", "content": "hello"}),))
    assert "<|im_start|>user\nhello<|im_end|>" in rendered and rendered.endswith("<|im_start|>assistant\n")
    plain = engine.lm(engine.family.branches[0], GenerationSettings(chat_template=False))
    assert plain.render("hello") == "hello"


def test_registry_loads_a_checkpoint_once(tiny_path):
    registry = EngineRegistry()
    a = registry.engine(tiny_path)
    b = registry.engine(tiny_path, config=EngineConfig(batch_size=2))
    assert a.family is b.family
    assert registry.loads == [a.family.identity]
    assert registry.engine(tiny_path) is a


def test_shared_trunk_switch_gives_the_same_scores_and_feeds_siblings(engine):
    shared = FamilyEngine(engine.family, EngineConfig(batch_size=3, shared_trunk=True))
    requests = [LoglikelihoodRequest(p, " ok") for p in PROMPTS]
    for branch in engine.family.branches:
        want = engine.lm(branch).loglikelihood(requests)
        assert shared.lm(branch).loglikelihood(requests) == pytest.approx(want, abs=1e-4)
    assert shared.shared_calls == 2  # 4 rows in batches of 3; every sibling read the cache
