"""Shared-trunk generation: all branches decoded together give each branch's stock greedy texts.

Tiny families in fp32 on the CPU; the reference is the per-branch path (stock transformers `generate`).
"""

from __future__ import annotations

import pytest
import torch

from evalkit import load_family
from evalkit.engine.family_engine import FamilyEngine
from evalkit.engine.requests import EngineConfig, GenerateRequest, GenerationSettings
from evalkit.engine.shared_generate import SharedGenerator, greedy_blockers
from evalkit.engine.shared_trunk import ScoreCache

# Mixed lengths, so batches are left-padded; 5 prompts in batches of 2 makes a short last batch.
PROMPTS = [
    "What is the capital of France?",
    "def add(a, b):",
    "Count: one, two, three, four, five, six,",
    "Hi",
    "Question: 2 + 2 = ?\nAnswer:",
]
MAX_OUT = 24


def engines(family, batch_size=2):
    names = tuple(b.name for b in family.branches)
    alone = FamilyEngine(family, EngineConfig(batch_size=batch_size, shared_trunk=False, branches=names))
    shared = FamilyEngine(family, EngineConfig(batch_size=batch_size, shared_trunk=True, branches=names))
    return alone, shared


def stop_strings(engine, settings):
    """Stop strings that really occur: pieces of what two branches say freely, so rows stop at different points."""
    free = [
        engine.lm(b, settings).generate([GenerateRequest(p, MAX_OUT) for p in PROMPTS])
        for b in (engine.family.branches[0], engine.family.branches[-1])
    ]
    stops = (free[0][2][5:7], free[1][0][8:10])
    assert all(stops) and any(s in t for s in stops for t in free[0] + free[1])
    return stops


@pytest.mark.parametrize("shared_heads", [False, True])
@pytest.mark.parametrize("chat", [False, True])
def test_shared_generation_equals_each_branch_alone(make_checkpoint, shared_heads, chat):
    family = load_family(make_checkpoint("qwen2", shared_heads))
    alone, shared = engines(family)
    settings = GenerationSettings(chat_template=chat)
    stops = stop_strings(alone, settings)
    requests = [GenerateRequest(p, MAX_OUT, stop=stops if i % 2 == 0 else ()) for i, p in enumerate(PROMPTS)]
    cut_somewhere = False
    for b in family.branches:
        want = alone.lm(b, settings).generate(requests)
        got = shared.lm(b, settings).generate(requests)
        assert got == want, b.name
        free = alone.lm(b, settings).generate([GenerateRequest(r.prompt, MAX_OUT) for r in requests])
        cut_somewhere |= any(g != f for g, f in zip(got, free, strict=True))
    assert cut_somewhere  # the stop strings really cut some answers
    # Two groups (with and without stops) of 3 and 2 prompts in batches of 2: 3 decodes, by the first branch only.
    assert shared.shared_decodes == 3
    assert shared.generator is not None and shared.generator.hits == len(PROMPTS) * (len(family.branches) - 1)
    assert len(shared.generator.cache) == 0  # every sibling answer was handed over and dropped
    assert alone.shared_decodes == 0


def test_qwen3_family_and_a_subset_of_branches(make_checkpoint):
    family = load_family(make_checkpoint("qwen3", False))
    pair = (family.branches[0].name, family.branches[2].name)
    alone = FamilyEngine(family, EngineConfig(batch_size=3))
    shared = FamilyEngine(family, EngineConfig(batch_size=3, shared_trunk=True, branches=pair))
    requests = [GenerateRequest(p, 12) for p in PROMPTS]
    for name in pair:
        assert shared.lm(name).generate(requests) == alone.lm(name).generate(requests), name
    assert shared.generator is not None and shared.generator.names == pair
    # A branch outside the run decodes alone, through stock generate.
    other = family.branches[-1]
    assert shared.lm(other).generate(requests) == alone.lm(other).generate(requests)
    assert shared.shared_decodes == 2


def test_siblings_are_served_from_the_cache_in_any_order_and_batching(tiny_path):
    family = load_family(tiny_path)
    alone, shared = engines(family, batch_size=4)
    requests = [GenerateRequest(p, 10) for p in PROMPTS]
    last, first = family.branches[-1], family.branches[0]
    shared.lm(last).generate(requests)  # decodes everyone
    assert shared.shared_decodes == 2
    # A sibling asking in another order and in pieces still finds every answer.
    got = shared.lm(first).generate(requests[::-1][:2]) + shared.lm(first).generate(requests[::-1][2:])
    assert got == alone.lm(first).generate(requests[::-1])
    assert shared.shared_decodes == 2
    # The same prompt asked twice in one request is handed over twice.
    twice = [requests[0], requests[0]]
    mid = family.branches[1]
    shared.lm(last).generate(twice)
    assert shared.lm(mid).generate(twice) == alone.lm(mid).generate(twice)
    assert shared.shared_decodes == 3


def test_a_branch_never_reads_its_own_or_another_settings_answer(tiny_path):
    family = load_family(tiny_path)
    _, shared = engines(family, batch_size=8)
    b0 = family.branches[0]
    shared.lm(b0).generate([GenerateRequest(PROMPTS[0], 10)])
    assert shared.shared_decodes == 1
    shared.lm(b0).generate([GenerateRequest(PROMPTS[0], 10)])  # its own answer was never cached
    shared.lm(family.branches[1]).generate([GenerateRequest(PROMPTS[0], 11)])  # another max_out_len
    shared.lm(family.branches[1]).generate([GenerateRequest(PROMPTS[0], 10, stop=("zz",))])  # other stops
    assert shared.shared_decodes == 4


def test_two_checkpoints_never_share_answers(make_checkpoint, tmp_path):
    from evalkit.load.tiny import make_tiny

    # two checkpoints alike in everything (shape, names, tokenizer) but their weights
    one, two = load_family(make_checkpoint("qwen2", False)), load_family(make_tiny(tmp_path / "two", seed=2))
    assert one.identity != two.identity and [b.name for b in one.branches] == [b.name for b in two.branches]
    cache = ScoreCache(2**20)  # one cache for both, as a process-wide one would be

    def generator(family):
        tok = family.tokenizer
        return SharedGenerator(
            family,
            family.branches,
            tokenizer=tok,
            eos_token_ids=[tok.eos_token_id],
            pad_token_id=tok.pad_token_id,
            cache=cache,
        )

    first, second = generator(one), generator(two)
    prompt = [one.tokenizer(PROMPTS[0])["input_ids"]]
    assert prompt == [two.tokenizer(PROMPTS[0])["input_ids"]]
    name = one.branches[-1]
    first.generate(one.branches[0], prompt, 12, (), batch_size=1)  # caches one's answer for `name`
    theirs = second.generate(two.branch(name.name), prompt, 12, (), batch_size=1)
    assert second.hits == 0 and second.decodes == 1
    mine = first.generate(name, prompt, 12, (), batch_size=1)
    assert first.hits == 1 and not torch.equal(theirs[0], mine[0])


def test_a_generation_config_beyond_greedy_decodes_branch_by_branch(tiny_path):
    from transformers import GenerationConfig

    family = load_family(tiny_path)
    assert greedy_blockers(GenerationConfig(repetition_penalty=1.1, do_sample=False)) == ["repetition_penalty"]
    assert greedy_blockers(GenerationConfig(do_sample=False, eos_token_id=3)) == []
    _, shared = engines(family)
    for b in family.branches:
        shared.model(b).generation_config.repetition_penalty = 1.1
    assert shared.shared_generation_off == "generation config sets repetition_penalty"
    assert shared.generator is None
    shared.lm(family.branches[0]).generate([GenerateRequest(PROMPTS[1], 4)])
    assert shared.shared_decodes == 0


def test_a_stop_check_ends_rows_early_and_pads_them(tiny_path):
    from evalkit.engine.generate import generate_branches

    family = load_family(tiny_path)
    tok = family.tokenizer
    ids = torch.tensor([tok(PROMPTS[0])["input_ids"][:6], tok(PROMPTS[2])["input_ids"][:6]])
    pad = family.files.config["pad_token_id"]
    free = generate_branches(family, "all", ids, max_new_tokens=20, ignore_eos=True)
    calls = []

    def first_row_done(tokens: torch.Tensor) -> torch.Tensor:
        calls.append(tokens.shape[1])
        return torch.arange(tokens.shape[0]) % 2 == 0  # row 0 of every branch

    checked = generate_branches(
        family,
        "all",
        ids,
        max_new_tokens=20,
        ignore_eos=True,
        pad_token_id=pad,
        stop_check=first_row_done,
        check_every=4,
    )
    assert calls == [4, 8, 12, 16, 20]
    for name, rows in checked.items():
        assert torch.equal(rows[0, :4], free[name][0, :4]) and torch.all(rows[0, 4:] == pad), name
        assert torch.equal(rows[1], free[name][1]), name

    def all_done(tokens: torch.Tensor) -> torch.Tensor:
        return torch.ones(tokens.shape[0], dtype=torch.bool)

    every_row = generate_branches(
        family, "all", ids, max_new_tokens=20, ignore_eos=True, pad_token_id=pad, stop_check=all_done, check_every=4
    )
    # Every row finished at the first check: decoding ends there.
    assert all(rows.shape[1] == 4 and torch.equal(rows, free[n][:, :4]) for n, rows in every_row.items())


@pytest.mark.slow
def test_run_predictions_are_the_same_with_shared_trunk_on_and_off(tmp_path, monkeypatch):
    """What `run --branches all` writes: every branch's predictions, shared trunk on vs off."""
    import json

    from evalkit import run

    decodes = []
    real = SharedGenerator._decode
    monkeypatch.setattr(SharedGenerator, "_decode", lambda self, *a: decodes.append(1) or real(self, *a))
    preds, calls = {}, {}
    for shared in (True, False):
        result = run(suites="stem", limit=2, out=str(tmp_path / str(shared)), shared_trunk=shared, echo=lambda s: None)
        files = sorted((result.run_dir / "predictions").glob("*/*.json"))
        preds[shared] = {
            f"{f.parent.name}/{f.name}": {k: v["prediction"] for k, v in json.loads(f.read_text()).items()}
            for f in files
        }
        calls[shared] = len(decodes)
    # One decode per dataset (2 items, one batch) for all 4 branches; none with shared trunk off.
    assert calls == {True: 3, False: 3}
    assert len(preds[True]) == 4 * 3 and preds[True] == preds[False]
    assert len({json.dumps(v) for v in preds[True].values()}) > 3  # branches and datasets really answer differently
