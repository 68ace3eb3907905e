"""Shared-trunk scoring equals per-branch scoring, and its cache never mixes families or branches."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from evalkit import load_family
from evalkit.engine.shared_trunk import (
    ScoreCache,
    SharedScorer,
    Trunk,
    head_logprobs,
    score_branch,
)

ATOL = 1e-5
LENGTHS = (11, 4, 8, 1)  # mixed prompt lengths in one batch, one of them a single token


def padded_batch(lengths: tuple[int, ...], side: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token rows of the given lengths, padded on `side` with a token that is not pad-like."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.full((len(lengths), width), 3, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, n in enumerate(lengths):
        cols = slice(width - n, width) if side == "left" else slice(0, n)
        ids[r, cols] = torch.randint(10, 700, (n,), generator=gen)
        mask[r, cols] = 1
    return ids, mask


def stock_logits(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Full (B, T, V) logits through the stock forward, positions counted over real tokens."""
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, position_ids=pos).logits.float()


def stock_logprobs(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Independent reference: log_softmax of the stock model's full logits, gathered at the next tokens."""
    lp = stock_logits(model, ids, mask)[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    valid = mask[:, :-1].bool() & mask[:, 1:].bool()
    return lp.masked_fill(~valid, 0.0)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("flavour", ["qwen2", "qwen3"])
@pytest.mark.parametrize("shared_heads", [False, True])
def test_shared_scores_equal_each_branch_alone(make_checkpoint, flavour, shared_heads, side):
    family = load_family(make_checkpoint(flavour, shared_heads))
    ids, mask = padded_batch(LENGTHS, side)
    trunk = Trunk(family)
    shared = trunk.score(ids, mask)
    assert list(shared) == [b.name for b in family.branches]
    with torch.no_grad():
        hidden = {b.name: h for b, h in trunk.hidden_states(ids, mask)}
    for b in family.branches:
        model = family.branch_model(b)
        ours = shared[b.name]
        assert ours.shape == (len(LENGTHS), max(LENGTHS) - 1) and ours.dtype == torch.float32
        torch.testing.assert_close(ours, score_branch(model, ids, mask), rtol=0, atol=ATOL)
        torch.testing.assert_close(ours, stock_logprobs(model, ids, mask), rtol=0, atol=ATOL)
        # The same greedy choice at every real position.
        real = mask.bool()
        with torch.no_grad():
            shared_argmax = model.lm_head(hidden[b.name]).argmax(-1)
        assert torch.equal(shared_argmax[real], stock_logits(model, ids, mask).argmax(-1)[real])
    # The branches are different models, so equal scores above mean something.
    assert (shared[family.branches[0].name] - shared[family.branches[-1].name]).abs().max() > 1e-2


@pytest.mark.parametrize("side", ["left", "right"])
def test_a_padded_row_scores_as_it_does_alone(tiny_path, side):
    family = load_family(tiny_path)
    ids, mask = padded_batch(LENGTHS, side)
    batch = Trunk(family, None).score(ids, mask)
    for r, n in enumerate(LENGTHS):
        cols = slice(ids.shape[1] - n, None) if side == "left" else slice(0, n)
        alone = Trunk(family, None).score(ids[r : r + 1, cols], None)
        for name, scores in alone.items():
            torch.testing.assert_close(batch[name][r, cols][: n - 1], scores[0], rtol=0, atol=ATOL)
            assert torch.all(batch[name][r][~(mask[r, :-1].bool() & mask[r, 1:].bool())] == 0)


def test_perplexity_and_loglikelihood_reductions_agree(tiny_path):
    """What get_ppl and get_loglikelihood reduce: mean over real tokens, sum over a continuation."""
    family = load_family(tiny_path)
    ids, mask = padded_batch(LENGTHS, "right", seed=3)
    cont = torch.zeros(len(LENGTHS), ids.shape[1] - 1, dtype=torch.bool)
    for r, n in enumerate(LENGTHS):
        cont[r, max(0, n - 4) : n - 1] = True  # the last three tokens of each row are the continuation
    shared_all = Trunk(family, None).score(ids, mask)
    shared_cont = Trunk(family, None).score(ids, mask, positions=cont)
    counts = (mask[:, :-1] * mask[:, 1:]).sum(-1).clamp(min=1)
    for b in family.branches:
        ref = score_branch(family.branch_model(b), ids, mask)
        ppl_shared = -shared_all[b.name].sum(-1) / counts
        torch.testing.assert_close(ppl_shared, -ref.sum(-1) / counts, rtol=0, atol=ATOL)
        # Scoring only the continuation gives its exact scores, and zeros elsewhere.
        torch.testing.assert_close(shared_cont[b.name].sum(-1), (ref * cont).sum(-1), rtol=0, atol=ATOL)
        assert torch.all(shared_cont[b.name][~cont] == 0)


def test_a_subset_runs_the_trunk_only_as_deep_as_its_deepest_branch(tiny_path):
    family = load_family(tiny_path)
    chosen = [family.branches[0].name, family.branches[2].name]  # exits 2 and 6 of 2/4/6/7
    trunk = Trunk(family, chosen)
    calls: list[int] = []
    layers = list(trunk.deepest.model.layers)
    for i, layer in enumerate(layers):
        layer.register_forward_hook(lambda *_, i=i: calls.append(i))
    ids, mask = padded_batch(LENGTHS, "left")
    scores = trunk.score(ids, mask)
    assert list(scores) == chosen
    assert calls == list(range(7))  # trunk 0..5 and branch layer 6 of the deepest; never layer 7
    for name in chosen:
        torch.testing.assert_close(scores[name], score_branch(family.branch_model(name), ids, mask), rtol=0, atol=ATOL)


def test_the_head_is_chunked_without_changing_the_scores(tiny_path):
    family = load_family(tiny_path)
    model = family.branch_model(family.branches[-1])
    ids, mask = padded_batch(LENGTHS, "left")
    wanted = mask[:, :-1].bool() & mask[:, 1:].bool()
    with torch.no_grad():
        hidden = model.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))[0]
        vocab = model.lm_head.weight.shape[0]
        one_token = head_logprobs(hidden, model.lm_head, ids, wanted, chunk_bytes=4 * vocab)
        whole = head_logprobs(hidden, model.lm_head, ids, wanted, chunk_bytes=2**30)
    torch.testing.assert_close(one_token, whole, rtol=0, atol=ATOL)


def test_siblings_get_their_scores_from_the_first_branch_pass(tiny_path):
    family = load_family(tiny_path)
    names = [b.name for b in family.branches]
    scorer = SharedScorer(family)
    ids, mask = padded_batch(LENGTHS, "left")
    first = scorer.token_logprobs(names[0], ids, mask)
    assert (scorer.misses, scorer.hits) == (len(LENGTHS), 0)
    assert len(scorer.cache) == len(LENGTHS) * (len(names) - 1)  # every sibling's rows, not the asker's
    for name in names:
        got = first if name == names[0] else scorer.token_logprobs(name, ids, mask)
        torch.testing.assert_close(got, score_branch(family.branch_model(name), ids, mask), rtol=0, atol=ATOL)
    assert (scorer.misses, scorer.hits) == (len(LENGTHS), len(LENGTHS) * (len(names) - 1))
    assert len(scorer.cache) == 0 and scorer.cache.nbytes == 0  # consumed answers are dropped


def test_a_sibling_finds_its_items_in_a_batch_padded_and_ordered_differently(tiny_path):
    family = load_family(tiny_path)
    a, b = family.branches[0].name, family.branches[-1].name
    scorer = SharedScorer(family, [a, b])
    scorer.token_logprobs(a, *padded_batch(LENGTHS, "left"))
    ids, mask = padded_batch(LENGTHS, "right")
    order = torch.tensor([2, 0, 3, 1])
    got = scorer.token_logprobs(b, ids[order], mask[order])
    assert (scorer.hits, scorer.passes) == (len(LENGTHS), 1)
    torch.testing.assert_close(got, score_branch(family.branch_model(b), ids[order], mask[order]), rtol=0, atol=ATOL)


def test_a_branch_never_reads_a_sibling_answer(tiny_path):
    family = load_family(tiny_path)
    a, b = family.branches[0].name, family.branches[1].name
    scorer = SharedScorer(family, [a, b])
    ids, mask = padded_batch(LENGTHS, "right")
    scorer.token_logprobs(a, ids, mask)
    again = scorer.token_logprobs(a, ids, mask)  # the cache holds b's rows only: a must recompute
    assert scorer.hits == 0 and scorer.misses == 2 * len(LENGTHS)
    torch.testing.assert_close(again, score_branch(family.branch_model(a), ids, mask), rtol=0, atol=ATOL)
    # Different rows (or a different mask over the same tokens) are different items.
    other_mask = mask.clone()
    other_mask[0, -1] = 1 - other_mask[0, -1]
    scorer.token_logprobs(b, ids, other_mask)
    assert scorer.hits == len(LENGTHS) - 1


def _reseeded_copy(src: Path, out: Path, seed: int) -> Path:
    """The same checkpoint layout with different weights: another family with the same branch names."""
    shutil.copytree(src, out)
    gen = torch.Generator().manual_seed(seed)
    weights = load_file(str(out / "model.safetensors"))
    weights = {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in weights.items()}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def test_two_checkpoints_never_share_answers(tiny_path, tmp_path):
    one = load_family(tiny_path)
    two = load_family(_reseeded_copy(tiny_path, tmp_path / "reseeded", seed=2))
    assert one.identity != two.identity
    assert [b.name for b in one.branches] == [b.name for b in two.branches]
    cache = ScoreCache(2**20)  # one cache for both, as a process-wide one would be
    first, second = SharedScorer(one, cache=cache), SharedScorer(two, cache=cache)
    ids, mask = padded_batch(LENGTHS, "left")
    name = one.branches[-1].name
    first.token_logprobs(one.branches[0].name, ids, mask)  # fills the cache with one's answers for `name`
    theirs = second.token_logprobs(name, ids, mask)
    assert second.hits == 0
    torch.testing.assert_close(theirs, score_branch(two.branch_model(name), ids, mask), rtol=0, atol=ATOL)
    assert (theirs - score_branch(one.branch_model(name), ids, mask)).abs().max() > 1e-3


def test_the_cache_is_bounded_by_bytes():
    row = torch.zeros(16)  # 64 bytes
    cache = ScoreCache(max_bytes=200)
    for i in range(5):
        cache.put(("E3B", str(i)), row.clone())
    assert len(cache) == 3 and cache.nbytes == 192
    assert cache.pop(("E3B", "0")) is None and cache.pop(("E3B", "1")) is None  # oldest went first
    assert cache.pop(("E3B", "4")) is not None and cache.nbytes == 128
    cache.put(("E3B", "big"), torch.zeros(100))  # larger than the whole cache: not kept
    assert cache.pop(("E3B", "big")) is None
    cache.put(("E3B", "twice"), row.clone())
    cache.put(("E3B", "twice"), row.clone())  # an item asked for twice: kept once, handed over twice
    assert cache.nbytes == 192 and cache.pop(("E3B", "twice")) is not None and cache.nbytes == 192
    assert cache.pop(("E3B", "twice")) is not None and cache.pop(("E3B", "twice")) is None
    assert cache.nbytes == 128


def test_an_unknown_branch_is_a_user_error(tiny_path):
    from evalkit import EvalkitError

    family = load_family(tiny_path)
    scorer = SharedScorer(family, [family.branches[0].name])
    with pytest.raises(EvalkitError, match="valid"):
        scorer.token_logprobs(family.branches[1].name, *padded_batch((3,), "left"))


def test_the_engine_gives_the_same_ppl_and_loglikelihood_shared_or_not(tiny_path):
    from evalkit.engine.family_engine import FamilyEngine
    from evalkit.engine.requests import EngineConfig, LoglikelihoodRequest, PerplexityRequest

    family = load_family(tiny_path)
    names = tuple(b.name for b in family.branches)
    alone = FamilyEngine(family, EngineConfig(batch_size=3, shared_trunk=False))
    shared = FamilyEngine(family, EngineConfig(batch_size=3, shared_trunk=True, branches=names))
    texts = ["A kettle of water boils on the stove.", "def add(a, b):", "one, two, three,", "Hi"]
    ppl = [PerplexityRequest(t) for t in texts] + [PerplexityRequest(texts[0], mask_length=4)]
    ll = [LoglikelihoodRequest(t, " ok") for t in texts]
    for name in names:
        want_ppl, want_ll = alone.lm(name).perplexity(ppl), alone.lm(name).loglikelihood(ll)
        assert shared.lm(name).perplexity(ppl) == pytest.approx(want_ppl, abs=ATOL, rel=0)
        assert shared.lm(name).loglikelihood(ll) == pytest.approx(want_ll, abs=ATOL, rel=0)
    # The first branch's two requests ran the trunk (in batches of 3); every sibling read the cache,
    # the perplexity item asked for twice included.
    assert shared.shared_calls == 2 + 2 and shared.scorer is not None and shared.scorer.hits > 0
    assert alone.scorer is None and alone.shared_calls == 0


def test_opencompass_branch_models_of_a_run_share_one_trunk_pass(tiny_path):
    """What `run` builds: one OpenCompass model per branch; the first scores all, the others read the cache."""
    pytest.importorskip("opencompass")
    from evalkit.engine.family_engine import EngineRegistry
    from evalkit.oc.model import FamilialBranchModel
    from evalkit.oc.model_configs import familial_configs

    branches = load_family(tiny_path).branches
    texts = ["Question: 2+2?\nAnswer: 4", "The sky is blue because of scattering.", "Hi there"]
    conts = ["4", "scattering.", " there"]

    def scores(shared: bool) -> tuple[list, EngineRegistry]:
        registry = EngineRegistry()
        out = []
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("evalkit.engine.family_engine.REGISTRY", registry)
            for cfg in familial_configs(tiny_path, branches, shared_trunk=shared, batch_size=2):
                kwargs = {k: v for k, v in cfg.items() if k not in ("type", "abbr", "max_out_len", "run_cfg")}
                model = FamilialBranchModel(**kwargs)
                out.append((model.get_ppl(texts, mask_length=[3, 1, 0]), model.get_loglikelihood(texts, conts)))
        return out, registry

    separate, _ = scores(shared=False)
    shared, registry = scores(shared=True)
    for (ppl_a, ll_a), (ppl_b, ll_b) in zip(separate, shared, strict=True):
        np.testing.assert_allclose(ppl_b, ppl_a, rtol=0, atol=ATOL)
        np.testing.assert_allclose(ll_b, ll_a, rtol=0, atol=ATOL)
    (engine,) = registry.engines.values()
    # Only the first branch ran the trunk: 3 perplexity and 3 loglikelihood items in batches of 2.
    assert engine.shared_calls == 2 + 2


def test_run_branches_in_any_spelling_still_share_one_trunk_pass(tiny_path):
    """Hand-written model configs may name the run's branches by exit layer, in lower case or as "all": the
    engine settles them to the family's names, so the shared path stays on and every model meets one engine."""
    pytest.importorskip("opencompass")
    from evalkit.engine.family_engine import EngineRegistry
    from evalkit.oc.model import FamilialBranchModel

    spellings = [["2", "4", "6", "7"], ["e111k", "e186k", "e260k", "e297k"], ["all"], ["7", "E186k", "2", "e260K"]]
    texts = ["Question: 2+2?\nAnswer: 4", "The sky is blue because of scattering.", "Hi"]
    registry = EngineRegistry()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("evalkit.engine.family_engine.REGISTRY", registry)
        for branch, run_branches in zip(("2", "e186k", "6", "E297K"), spellings, strict=True):
            model = FamilialBranchModel(
                path=str(tiny_path), branch=branch, batch_size=2, shared_trunk=True, run_branches=run_branches
            )
            model.get_ppl(texts)
    (engine,) = registry.engines.values()
    assert engine.config.branches == ("E111K", "E186K", "E260K", "E297K")
    assert engine.scorer is not None and engine.scorer.hits > 0
    assert engine.shared_calls == 2  # the first branch's 3 items in batches of 2; the others read the cache


def test_an_unknown_run_branch_is_a_user_error_not_a_silent_opt_out(tiny_path):
    from evalkit import EvalkitError
    from evalkit.engine.family_engine import FamilyEngine
    from evalkit.engine.requests import EngineConfig

    family = load_family(tiny_path)
    with pytest.raises(EvalkitError, match=r"unknown branch 'E3B'; valid branches are: all, E111K \(layer 2\)"):
        FamilyEngine(family, EngineConfig(shared_trunk=True, branches=("E3B", "E7B")))


def test_in_memory_families_with_one_config_never_share_answers(tiny_path):
    """Families built from tensors have no files to fingerprint: equal configs must still not meet."""
    from evalkit import Family

    base = load_family(tiny_path)
    gen = torch.Generator().manual_seed(5)
    noisy = {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in base.tensors.items()}
    one = Family.from_tensors(base.files.config, dict(base.tensors), name="random")
    two = Family.from_tensors(base.files.config, noisy, name="random")
    assert one.identity != two.identity
    cache = ScoreCache(2**20)
    first, second = SharedScorer(one, cache=cache), SharedScorer(two, cache=cache)
    ids, mask = padded_batch(LENGTHS, "left")
    first.token_logprobs(one.branches[0].name, ids, mask)
    second.token_logprobs(two.branches[-1].name, ids, mask)
    assert second.hits == 0


def test_the_scoring_benchmark_protocol(tiny_path):
    """Warm-up rounds untimed, every configuration timed each round, ratios with intervals; fields of the record."""
    from dataclasses import fields

    from evalkit.benchmark.trunk import shared_scoring
    from evalkit.records.bench import TrunkScoring

    class Ticks:  # each timed region lasts one tick
        def __init__(self) -> None:
            self.t = 0.0

        def now(self) -> float:
            self.t += 0.5
            return self.t

        def seconds(self, start: float, end: float) -> float:
            return end - start

    family = load_family(tiny_path)
    chosen = [b.name for b in family.branches[1:]]
    clock = Ticks()
    got, comparison = shared_scoring(family, chosen, batch=2, seq_len=6, iterations=3, warmup=2, clock=clock)
    assert clock.t == 0.5 * 2 * (2 + 3) * (1 + len(chosen))  # two reads per region, every round, every config
    assert comparison.rounds == 3 and comparison.warmup == 2 and got["comparison"] == comparison.name
    assert all(sorted(o) == sorted(["shared", *chosen]) for o in comparison.orders)  # interleaved, all each round
    assert got["scoring_shared_over_last_ci"] == (1.0, 1.0)
    assert got["shared_s"].n == got["last_s"].n == 3
    assert got["separate_s"] == pytest.approx(0.5 * len(chosen))
    assert got["scoring_shared_over_last"] == pytest.approx(1.0)
    assert got["scoring_separate_over_last"] == pytest.approx(len(chosen))
    record = TrunkScoring(**got)
    assert record.branches == tuple(chosen) and {f.name for f in fields(TrunkScoring)} == set(got)


def test_mask_arguments_follow_the_installed_transformers_spelling():
    """5.0 takes input_embeds, cache_position and past_key_values; 5.17 inputs_embeds and past_key_values;
    5.24 on inputs_embeds and cache (past_key_values warns there, and is gone in 5.40)."""
    import inspect

    from evalkit.engine.shared_trunk import mask_spelling

    def v5_0(config, input_embeds, attention_mask, cache_position, past_key_values, position_ids=None): ...
    def v5_17(config, inputs_embeds, attention_mask, past_key_values, position_ids=None): ...
    def v5_24(config, inputs_embeds, attention_mask, cache, position_ids=None): ...

    assert mask_spelling(v5_0) == ("input_embeds", "past_key_values", True)
    assert mask_spelling(v5_17) == ("inputs_embeds", "past_key_values", False)
    assert mask_spelling(v5_24) == ("inputs_embeds", "cache", False)
    from transformers.masking_utils import create_causal_mask

    from evalkit.engine.shared_trunk import mask_arguments

    hidden, mask = torch.zeros(1, 3, 4), torch.ones(1, 3, dtype=torch.long)
    args = mask_arguments(object(), hidden, mask, mask.cumsum(-1) - 1)
    inspect.signature(create_causal_mask).bind(**args)  # every name is one the installed version takes
