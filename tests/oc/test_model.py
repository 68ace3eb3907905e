"""The OpenCompass adapter: what OpenCompass's inferencers call, checked against the branch model itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("opencompass")


@pytest.fixture(scope="module")
def tiny_path(make_checkpoint):
    """A random tiny family with the built-in tokenizer: it talks on where the trained one stops, and the
    spans checked below are its encodings."""
    return make_checkpoint()


@pytest.fixture(scope="module")
def model(tiny_path):
    from evalkit.oc.model import FamilialBranchModel

    return FamilialBranchModel(path=str(tiny_path), branch="4", batch_size=2, stop_words=[])


def _direct(model, text: str) -> tuple[list[int], torch.Tensor]:
    engine = model.lm.engine
    ids = engine.tokenizer(text)["input_ids"]
    with torch.no_grad():
        logits = engine.family.branch_model(model.lm.branch)(input_ids=torch.tensor([ids])).logits[0]
    lp = torch.log_softmax(logits.float(), -1)
    return ids, lp[:-1].gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)


def test_branch_and_family_are_the_ones_asked_for(model, tiny_path):
    assert model.lm.branch.exit_layer == 4
    assert model.lm.engine.family.path == tiny_path


def test_get_ppl_matches_the_branch_model(model):
    texts = ["Question: 2+2?\nAnswer: 4", "The sky is blue because of scattering."]
    got = model.get_ppl(texts, mask_length=[3, 1])
    assert isinstance(got, np.ndarray) and got.shape == (2,)
    _, lp0 = _direct(model, texts[0])
    _, lp1 = _direct(model, texts[1])
    assert got[0] == pytest.approx(float(-lp0[2:].mean()), abs=1e-4)
    assert got[1] == pytest.approx(float(-lp1.mean()), abs=1e-4)
    unmasked = model.get_ppl(texts)
    assert unmasked[0] == pytest.approx(float(-lp0.mean()), abs=1e-4)


def test_get_loglikelihood_sums_the_continuation(model):
    context, cont = "Question: Which is a planet?\nAnswer:", " Mars"
    got = model.get_loglikelihood([context + cont], [cont])
    ids, lp = _direct(model, context + cont)
    n_ctx = len(model.lm.engine.tokenizer(context)["input_ids"])
    assert isinstance(got, np.ndarray)
    assert got[0] == pytest.approx(float(lp[n_ctx - 1 :].sum()), abs=1e-4)


def test_generate_takes_prompt_lists_and_stops_at_stop_words(model):
    from opencompass.utils.prompt import PromptList

    prompt = PromptList(
        [
            {"section": "round", "pos": "begin"},
            {"role": "HUMAN", "prompt": "Name a colour."},
            {"section": "round", "pos": "end"},
        ]
    )
    parsed = model.parse_template([prompt], mode="gen")
    free = model.generate(parsed, max_out_len=16)[0]
    stop = free[3:5]
    assert stop
    cut = model.generate(parsed, max_out_len=16, stopping_criteria=[stop])[0]
    assert cut == free[: free.find(stop)]
    # The role turns arrive as chat messages, rendered by the chat template.
    from evalkit.oc.model import chat_messages

    assert chat_messages(parsed[0]) == ({"role": "user", "content": "Name a colour."},)
    assert model.lm.render(({"role": "user", "content": "Name a colour."},)).endswith("<|im_start|>assistant\n")


def test_token_len_counts_what_the_model_reads(model):
    assert model.get_token_len("hello world") == len(model.lm.engine.tokenizer("hello world")["input_ids"])


def test_unknown_config_keys_are_an_error(tiny_path):
    from evalkit import EvalkitError
    from evalkit.oc.model import FamilialBranchModel

    with pytest.raises(EvalkitError, match="unknown model config key"):
        FamilialBranchModel(path=str(tiny_path), temperture=0.7)


def test_candidates_are_scored_from_the_same_character(model):
    """After "The answer is ", a digit and a letter are both scored with the space before them."""
    texts = ["The answer is 42", "The answer is B"]
    got = model.get_loglikelihood(texts, ["42", "B"])
    tok = model.lm.engine.tokenizer
    for text, value, n in zip(texts, got, (3, 1), strict=True):  # " " "4" "2" | " B"
        ids, lp = _direct(model, text)
        assert tok.decode(ids[-n:]) == text[len("The answer is") :]
        assert value == pytest.approx(float(lp[-n:].sum()), abs=1e-4)


def test_inputs_with_nothing_to_score_are_user_errors(tiny_path, model):
    from evalkit import EvalkitError
    from evalkit.oc.model import FamilialBranchModel

    with pytest.raises(EvalkitError, match="nothing to score in ''"):
        model.get_ppl(["The sky is blue.", ""])
    with pytest.raises(EvalkitError, match="nothing to score in 'B'"):
        model.get_ppl(["B"])
    with pytest.raises(EvalkitError, match="empty continuation"):
        model.get_loglikelihood(["The sky is blue.", "The sky is"], [" blue.", ""])
    with pytest.raises(EvalkitError, match="is not at the end of its prompt"):
        model.get_loglikelihood(["The sky is blue.\n"], [" blue."])
    plain = FamilialBranchModel(path=str(tiny_path), branch="4", chat_template=False, max_seq_len=8)
    with pytest.raises(EvalkitError, match="empty prompt"):
        plain.generate(["Hi", ""], max_out_len=2)
    with pytest.raises(EvalkitError, match="max_seq_len 8"):  # the wrapper's max_seq_len bounds scoring too
        plain.get_ppl(["The quick brown fox jumps over the lazy dog."])
