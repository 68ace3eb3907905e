"""The fast decoder: same greedy tokens as stock `generate`, one branch or several stepped together."""

from __future__ import annotations

import functools

import pytest
import torch

from evalkit import EvalkitError, load_family
from evalkit.engine.decode import Decoder
from evalkit.engine.generate import Generator, decode_branches, generate_branches, generate_fast

GEN = 10


def left_padded_batch(family, lengths=(9, 5, 7), seed=0):
    """Prompts of mixed lengths, left-padded with the pad token, and their attention mask."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    pad = family.files.config["pad_token_id"]
    ids = torch.full((len(lengths), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, width - n :] = torch.randint(0, 700, (n,), generator=gen)
        mask[row, width - n :] = 1
    return ids, mask


def stock(family, branch, ids, mask, **kwargs):
    """New tokens from stock transformers `generate` on the branch model; no EOS unless one is given."""
    model = family.branch_model(branch)
    if not kwargs:
        # EOS neither stops nor is suppressed, as with ignore_eos (min_new_tokens would forbid it instead).
        model.generation_config.eos_token_id = None
        kwargs = dict(max_new_tokens=GEN, pad_token_id=family.files.config["pad_token_id"])
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, **kwargs)
    return out[:, ids.shape[1] :]


@pytest.mark.parametrize("flavour, shared_heads", [("qwen2", False), ("qwen3", False), ("qwen2", True)])
def test_fast_path_equals_stock_generate(make_checkpoint, flavour, shared_heads):
    family = load_family(make_checkpoint(flavour, shared_heads))
    ids, mask = left_padded_batch(family)
    for branch in family.branches:
        ours = generate_fast(family, branch, ids, mask, max_new_tokens=GEN, ignore_eos=True)
        assert torch.equal(ours, stock(family, branch, ids, mask)), branch.name


@pytest.mark.parametrize("flavour", ["qwen2", "qwen3"])
def test_branches_stepped_together_equal_each_branch_alone(make_checkpoint, flavour):
    family = load_family(make_checkpoint(flavour, False))
    ids, mask = left_padded_batch(family, lengths=(4, 9, 6, 8), seed=3)
    together = generate_branches(family, "all", ids, mask, max_new_tokens=GEN, ignore_eos=True)
    assert list(together) == [b.name for b in family.branches]
    outputs = []
    for branch in family.branches:
        assert torch.equal(together[branch.name], stock(family, branch, ids, mask)), branch.name
        outputs.append(together[branch.name])
    assert not torch.equal(outputs[0], outputs[-1])  # the branches really decode differently


def test_a_subset_of_branches_in_any_order(tiny_path):
    family = load_family(tiny_path)
    ids, mask = left_padded_batch(family, seed=5)
    out = generate_branches(family, ["E297K", 4], ids, mask, max_new_tokens=GEN, ignore_eos=True)
    assert list(out) == ["E297K", "E186K"]
    for name, tokens in out.items():
        assert torch.equal(tokens, stock(family, name, ids, mask)), name


def test_eos_stops_rows_and_branches_like_generate(tiny_path):
    family = load_family(tiny_path)
    ids, mask = left_padded_batch(family, seed=7)
    free = generate_branches(family, "all", ids, mask, max_new_tokens=GEN, ignore_eos=True)
    # Tokens the shallowest branch emits early in every row: it must stop within 3 steps, the others vary.
    eos = sorted(set(free["E111K"][:, :3].flatten().tolist()))
    pad = family.files.config["pad_token_id"]
    together = generate_branches(family, "all", ids, mask, max_new_tokens=GEN, eos_token_ids=eos, pad_token_id=pad)
    assert together["E111K"].shape[1] <= 3
    for branch in family.branches:
        ref = stock(family, branch, ids, mask, max_new_tokens=GEN, eos_token_id=eos, pad_token_id=pad)
        assert torch.equal(together[branch.name], ref), branch.name


def test_decoder_holds_views_and_separate_caches(tiny_path):
    family = load_family(tiny_path)
    dec = Decoder(family, family.branches, batch_size=3, max_len=16)
    family_ptrs = {t.data_ptr() for t in family.tensors.values()}
    assert all(p.data_ptr() in family_ptrs for p in dec.parameters())
    # Trunk layer j serves the rows of the branches exiting after j (exits 2, 4, 6, 7; batch 3).
    assert dec.trunk_rows == [12, 12, 9, 9, 6, 6, 3]
    # A branch layer never writes into the trunk layer's cache at the same depth.
    trunk_buffers = {c.k.data_ptr() for c in dec.trunk_cache}
    assert all(c.k.data_ptr() not in trunk_buffers for c in dec.head_cache)


def test_decode_step_traces_as_one_graph(tiny_path):
    """No graph break: the step can be compiled with mode="reduce-overhead" (CUDA graphs) on a GPU."""
    family = load_family(tiny_path)
    ids, mask = left_padded_batch(family)
    gen = Generator(family, family.branches, batch_size=3, max_len=ids.shape[1] + 4, mode="eager")
    first = gen.prefill(ids, mask)
    rows = gen.decoder.rows
    positions = mask.sum(-1).repeat(len(family.branches))[:, None]
    slot = torch.tensor([ids.shape[1]])
    eager = gen.decoder.step(first[:, None], positions, slot)
    compiled = torch.compile(gen.decoder.step, backend="eager", fullgraph=True)
    assert torch.equal(compiled(first[:, None], positions, slot), eager)
    assert eager.shape == (rows,)


def test_bad_requests_are_clear_errors(tiny_path):
    family = load_family(tiny_path)
    ids, mask = left_padded_batch(family)
    with pytest.raises(EvalkitError, match="unknown decode mode 'fastest'"):
        generate_fast(family, 2, ids, mask, max_new_tokens=3, mode="fastest")
    if not torch.cuda.is_available():
        with pytest.raises(EvalkitError, match="needs a CUDA device"):
            generate_fast(family, 2, ids, mask, max_new_tokens=3, mode="cudagraph")
    with pytest.raises(EvalkitError, match="max_new_tokens must be >= 1"):
        generate_fast(family, 2, ids, mask, max_new_tokens=0)
    with pytest.raises(EvalkitError, match="unknown branch 'E9B'"):
        generate_branches(family, "E9B", ids, mask, max_new_tokens=3)


@pytest.mark.slow
def test_compiled_decoding_equals_eager(tiny_path):
    """Inductor-compiled layers (mode "compile"), two branches stepped together; ~30 s on 2 cores."""
    from torch._dynamo.utils import counters

    family = load_family(tiny_path, dtype="fp32")
    ids, mask = left_padded_batch(family)
    pair = [family.branches[0].name, family.branches[-1].name]
    eager = generate_branches(family, pair, ids, mask, max_new_tokens=GEN, ignore_eos=True, mode="eager")
    torch._dynamo.reset()
    counters.clear()
    compiled = generate_branches(family, pair, ids, mask, max_new_tokens=GEN, ignore_eos=True, mode="compile")
    assert list(compiled) == pair
    for name in pair:
        assert torch.equal(compiled[name], eager[name]), name
    # Every layer shares its graphs: `project` and `finish` once per row count (6 trunk rows, then 3).
    assert counters["stats"]["unique_graphs"] == 4


@pytest.mark.gpu
def test_cuda_graph_and_compiled_steps_equal_eager(tiny_path):
    family = load_family(tiny_path, dtype="fp32", device="cuda")
    ids, mask = left_padded_batch(family)
    ids, mask = ids.cuda(), mask.cuda()
    eager = generate_branches(family, "all", ids, mask, max_new_tokens=GEN, ignore_eos=True, mode="eager")
    for mode in ("cudagraph", "compile"):
        fast = generate_branches(family, "all", ids, mask, max_new_tokens=GEN, ignore_eos=True, mode=mode)
        for name in eager:
            assert torch.equal(fast[name], eager[name]), (mode, name)


@pytest.mark.gpu
def test_graphed_and_compiled_confidence_equal_eager(tiny_path):
    """Each step's log-prob and entropy are copied out of the graph's static buffers, step by step."""
    family = load_family(tiny_path, dtype="fp32", device="cuda")
    ids, mask = left_padded_batch(family)
    ids, mask = ids.cuda(), mask.cuda()
    run = functools.partial(decode_branches, family, "all", ids, mask, max_new_tokens=GEN, ignore_eos=True)
    tokens, eager = run(mode="eager", confidence=True)
    for mode in ("cudagraph", "compile"):
        fast_tokens, fast = run(mode=mode, confidence=True)
        for name in eager:
            assert torch.equal(fast_tokens[name], tokens[name]), (mode, name)
            torch.testing.assert_close(fast[name], eager[name], rtol=1e-4, atol=1e-5, msg=f"{mode} {name}")
        assert len({round(float(v), 6) for v in eager[name][..., 0].flatten()}) > 1  # not one step repeated
