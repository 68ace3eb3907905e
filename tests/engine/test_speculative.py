"""Self-speculative decoding: a shallow branch drafts, a deeper one verifies; the output is the deeper one's.

The embedded family's branches have random, unrelated heads, so they almost never agree and every
draft is rejected. `make_tiny(refine=0.1)` makes a family whose deeper layers only refine the shallow
ones (as in a trained family): drafts are accepted in part, by different amounts per row and round, so an
off-by-one in acceptance or in the cache rollback changes the tokens and these tests fail.
"""

from __future__ import annotations

import pytest
import torch
from test_decode import left_padded_batch, stock

from evalkit import EvalkitError, generate_fast, load_family, make_tiny
from evalkit.engine.speculative import SpecDecoder, accepted_lengths, generate_speculative
from evalkit.load.tiny import TinySpec, build_checkpoint

GEN = 24
LENGTHS = (9, 4, 7, 2)  # mixed prompt lengths: rows accept different amounts and sit at different slots


@pytest.fixture(scope="module")
def twin_path(tmp_path_factory):
    """The embedded family's shape and seed with deeper layers that refine the shallow ones (`refine=0.1`)."""
    return make_tiny(tmp_path_factory.mktemp("twin") / "ckpt", refine=0.1)


@pytest.fixture(scope="module")
def twin(twin_path):
    return load_family(twin_path)


@pytest.fixture(scope="module")
def deep_twin(tmp_path_factory):
    """A deeper family (12 layers, exits 3/6/9/11) in the same form."""
    spec = TinySpec(num_layers=12, exits=(3, 6, 9, 11), seed=4)
    return load_family(build_checkpoint(tmp_path_factory.mktemp("deep") / "ckpt", spec, refine=0.1))


def pairs(family):
    return [(d, t) for t in family.branches for d in family.branches if d.exit_layer < t.exit_layer]


def test_acceptance_is_the_longest_agreeing_prefix():
    drafted = torch.tensor([[7, 1, 2, 3], [7, 1, 2, 3], [7, 1, 2, 3], [7, 9, 2, 3], [7, 1, 9, 3]])
    predicted = torch.tensor([[1, 2, 3, 4], [1, 2, 8, 4], [5, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    # all three; the first two; none; none (a later agreement does not count); the first one
    assert accepted_lengths(drafted, predicted).tolist() == [3, 2, 0, 0, 1]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_every_draft_and_target_pair_equals_the_targets_greedy_decoding(twin, k):
    ids, mask = left_padded_batch(twin, lengths=LENGTHS, seed=2)
    partial = 0
    for draft, target in pairs(twin):
        ref = generate_fast(twin, target, ids, mask, max_new_tokens=GEN, ignore_eos=True)
        out = generate_speculative(twin, draft, target, ids, mask, k=k, max_new_tokens=GEN, ignore_eos=True)
        assert torch.equal(out.tokens, ref), (draft.name, target.name, k)
        # every output token after the first came from one round: its accepted drafts plus one of the target's
        produced = 1 + out.rounds + out.accepted
        assert bool((produced >= out.kept).all()) and bool((produced <= out.kept + k).all())
        assert bool((out.accepted <= out.drafted).all())
        partial += int(((out.accepted > 0) & (out.accepted < out.drafted)).sum())
    assert partial >= len(pairs(twin)) * len(LENGTHS) // 2  # the tests exercise accepting and rejecting


def test_equals_stock_generate_on_the_target_branch_model(twin):
    ids, mask = left_padded_batch(twin, lengths=LENGTHS, seed=6)
    for draft in twin.branches[:-1]:
        out = generate_speculative(twin, draft, twin.branches[-1], ids, mask, k=4, max_new_tokens=10, ignore_eos=True)
        assert torch.equal(out.tokens, stock(twin, twin.branches[-1], ids, mask)), draft.name


def test_a_deeper_family(deep_twin):
    ids, mask = left_padded_batch(deep_twin, lengths=(3, 11, 6), seed=9)
    for draft, target in pairs(deep_twin):
        ref = generate_fast(deep_twin, target, ids, mask, max_new_tokens=GEN, ignore_eos=True)
        for k in (2, 4):
            out = generate_speculative(deep_twin, draft, target, ids, mask, k=k, max_new_tokens=GEN, ignore_eos=True)
            assert torch.equal(out.tokens, ref), (draft.name, target.name, k)
            assert 0 < out.acceptance_rate() < 1


def test_a_draft_that_always_agrees_gives_k_plus_one_tokens_per_target_step(tmp_path):
    """refine=0: layers past the first exit add nothing, so every branch computes the first one's tokens."""
    family = load_family(make_tiny(tmp_path / "same", refine=0.0))
    ids, mask = left_padded_batch(family, lengths=LENGTHS, seed=5)
    ref = generate_fast(family, family.branches[-1], ids, mask, max_new_tokens=21, ignore_eos=True)
    out = generate_speculative(family, 2, 7, ids, mask, k=4, max_new_tokens=21, ignore_eos=True)
    assert torch.equal(out.tokens, ref)
    assert out.acceptance_rate() == 1.0 and out.rounds.tolist() == [4] * len(LENGTHS)  # 1 + 4 x 5 = 21
    assert out.tokens_per_step() == 5.0


def test_the_embedded_family_rejects_drafts_and_stays_exact(tiny_path):
    family = load_family(tiny_path)
    ids, mask = left_padded_batch(family, lengths=LENGTHS, seed=1)
    first, last = family.branches[0], family.branches[-1]
    out = generate_speculative(family, first, last, ids, mask, k=3, max_new_tokens=GEN, ignore_eos=True)
    assert torch.equal(out.tokens, generate_fast(family, last, ids, mask, max_new_tokens=GEN, ignore_eos=True))
    assert out.tokens_per_step() == pytest.approx(1 + out.accepted.sum().item() / out.rounds.sum().item(), rel=0.1)


def test_eos_stops_rows_like_the_targets_decoding(twin):
    ids, mask = left_padded_batch(twin, lengths=LENGTHS, seed=3)
    pad = twin.files.config["pad_token_id"]
    for draft, target in pairs(twin):
        free = generate_fast(twin, target, ids, mask, max_new_tokens=GEN, ignore_eos=True)
        eos = [int(free[0, 4]), int(free[2, 9])]  # rows end at different steps, some mid-round
        ref = generate_fast(twin, target, ids, mask, max_new_tokens=GEN, eos_token_ids=eos, pad_token_id=pad)
        for k in (2, 5):
            out = generate_speculative(
                twin, draft, target, ids, mask, k=k, max_new_tokens=GEN, eos_token_ids=eos, pad_token_id=pad
            )
            assert torch.equal(out.tokens, ref), (draft.name, target.name, k)
            assert out.tokens.shape[1] < GEN or not torch.isin(ref, torch.tensor(eos)).any(dim=1).all()


def test_stop_strings_end_rows_at_the_targets_text(twin):
    tok = twin.tokenizer
    ids, mask = left_padded_batch(twin, lengths=LENGTHS, seed=4)
    draft, target = twin.branches[0], twin.branches[-1]
    free = generate_fast(twin, target, ids, mask, max_new_tokens=GEN, ignore_eos=True)
    texts = tok.batch_decode(free, skip_special_tokens=True)
    stop = texts[1][len(texts[1]) // 3 :][:4]  # a piece of row 1's text, a third of the way in
    assert stop.strip()
    out = generate_speculative(twin, draft, target, ids, mask, k=3, max_new_tokens=GEN, ignore_eos=True, stop=[stop])
    for row, (ours, ref) in enumerate(zip(out.tokens, free, strict=True)):
        n = int(out.kept[row])
        assert torch.equal(ours[:n], ref[:n]), row  # the target's tokens, as far as the row went
        text, full = tok.decode(ours[:n], skip_special_tokens=True), texts[row]
        if stop in full:
            assert stop in text and text.split(stop)[0] == full.split(stop)[0], row
    assert int(out.kept[1]) < GEN  # the row that holds the stop string ended early


def test_round_traces_as_one_graph(twin):
    """No host sync inside a round, so on a GPU it is captured whole as one CUDA graph."""
    ids, mask = left_padded_batch(twin, lengths=LENGTHS)
    dec = SpecDecoder(twin, twin.branches[0], twin.branches[-1], batch_size=4, max_len=ids.shape[1] + 12, k=3)
    pending = dec.prefill(ids, mask)
    lengths = torch.tensor([ids.shape[1]] * 4)
    eager = dec.round(pending, lengths)
    dec.prefill(ids, mask)
    compiled = torch.compile(dec.round, backend="eager", fullgraph=True)
    traced = compiled(pending, lengths)
    assert all(torch.equal(a, b) for a, b in zip(traced, eager, strict=True))
    assert eager[0].shape == eager[1].shape == (4, 4)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["cudagraph", "compile"])
def test_graphed_rounds_on_a_gpu_equal_the_targets_decoding(twin_path, mode):
    family = load_family(twin_path, device="cuda")
    ids, mask = left_padded_batch(family, lengths=LENGTHS, seed=2)
    for draft in family.branches[:-1]:
        ref = generate_fast(family, family.branches[-1], ids, mask, max_new_tokens=GEN, ignore_eos=True, mode="eager")
        out = generate_speculative(
            family, draft, family.branches[-1], ids, mask, k=3, max_new_tokens=GEN, ignore_eos=True, mode=mode
        )
        assert torch.equal(out.tokens.cpu(), ref.cpu()), (draft.name, mode)


def test_bad_pairs_are_clear_errors(twin):
    ids, mask = left_padded_batch(twin, lengths=LENGTHS)
    last, first = twin.branches[-1], twin.branches[0]
    with pytest.raises(EvalkitError, match="must exit before the target"):
        generate_speculative(twin, last, first, ids, mask, k=2, max_new_tokens=4)
    with pytest.raises(EvalkitError, match="must exit before the target"):
        generate_speculative(twin, last, last, ids, mask, k=2, max_new_tokens=4)
    with pytest.raises(EvalkitError, match="k .* must be >= 1"):
        generate_speculative(twin, first, last, ids, mask, k=0, max_new_tokens=4)
    with pytest.raises(EvalkitError, match="max_new_tokens must be >= 1"):
        generate_speculative(twin, first, last, ids, mask, k=2, max_new_tokens=0)
