"""The familial loader: every branch is a real, independent transformers model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM

import evalkit
from evalkit import EvalkitError, load_family

PROMPT = torch.tensor([[5, 17, 300, 42, 9, 77, 120, 3]])


def reference_branch(path: Path, index: int, exit_layer: int) -> torch.nn.Module:
    """Stock transformers model for one branch, built by hand from copies of the checkpoint tensors."""
    config = json.loads((path / "config.json").read_text())
    flavour = config["model_type"].removeprefix("ruyi_")
    weights = load_file(str(path / "model.safetensors"))
    last = config["early_exit_points"][-1]
    plain = {
        k: v for k, v in config.items() if k not in ("early_exit_points", "shared_heads", "default_early_exit_point")
    }
    plain.pop("model_type"), plain.pop("architectures")
    plain["num_hidden_layers"] = exit_layer + 1
    plain["max_window_layers"] = exit_layer + 1
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(flavour, **plain), dtype=torch.float32)
    state = {"model.embed_tokens.weight": weights["model.embed_tokens.weight"].clone()}
    n_trunk = exit_layer if exit_layer < last else last + 1
    for k, v in weights.items():
        if k.startswith("model.layers.") and int(k.split(".")[2]) < n_trunk:
            state[k] = v.clone()
        if exit_layer < last and k.startswith(f"model.eelayers.{index}."):
            state[f"model.layers.{exit_layer}." + k.split(".", 3)[3]] = v.clone()
    state["model.norm.weight"] = weights[f"model.norms.{index}.weight"].clone()
    head = "lm_head.weight" if config["shared_heads"] else f"lm_head.{index}.weight"
    state["lm_head.weight"] = weights[head].clone()
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.mark.parametrize("flavour", ["qwen2", "qwen3"])
@pytest.mark.parametrize("shared_heads", [False, True])
def test_every_branch_matches_an_independent_reference(make_checkpoint, flavour, shared_heads):
    path = make_checkpoint(flavour, shared_heads)
    family = load_family(path)
    assert [b.exit_layer for b in family.branches] == [2, 4, 6, 7]
    logits = []
    for b in family.branches:
        ours = family.branch_model(b)(input_ids=PROMPT).logits
        ref = reference_branch(path, b.index, b.exit_layer)(input_ids=PROMPT).logits
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
        logits.append(ours)
    # The branches really are different models.
    assert not torch.allclose(logits[0], logits[-1], atol=1e-3)


def test_branch_tensors_are_views_of_the_family(tiny_path):
    family = load_family(tiny_path)
    family_ptrs = {t.data_ptr() for t in family.tensors.values()}
    for b in family.branches:
        model = family.branch_model(b)
        for name, p in model.named_parameters():
            assert p.data_ptr() in family_ptrs, name


def test_branch_metadata(tiny_path):
    family = load_family(tiny_path)
    sizes = [b.num_params for b in family.branches]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    for b in family.branches:
        model = family.branch_model(b)
        assert b.num_params == sum(p.numel() for p in model.parameters())
        assert b.num_layers == b.exit_layer + 1 == model.config.num_hidden_layers
    assert [b.name for b in family.branches] == ["E111K", "E186K", "E260K", "E297K"]


def _familial_from_plain(plain_dir: Path, out: Path, exits: list[int]) -> None:
    """Ruyi format from a plain Qwen2: eelayers copied from the layer after each exit, norms = final norm."""
    config = json.loads((plain_dir / "config.json").read_text())
    weights = load_file(str(plain_dir / "model.safetensors"))
    state = {k: v for k, v in weights.items() if not k.startswith(("model.norm.", "lm_head."))}
    for i, e in enumerate(exits):
        state[f"model.norms.{i}.weight"] = weights["model.norm.weight"].clone()
        state[f"lm_head.{i}.weight"] = weights["lm_head.weight"].clone()
        if e < exits[-1]:
            for k, v in weights.items():
                if k.startswith(f"model.layers.{e + 1}."):
                    state[f"model.eelayers.{i}." + k.split(".", 3)[3]] = v.clone()
    config.update(model_type="ruyi_qwen2", early_exit_points=exits, shared_heads=False)
    out.mkdir()
    save_file(state, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config))


def test_familial_made_from_plain_qwen2_has_last_branch_equal_to_it(tiny_path, tmp_path):
    plain_dir = tmp_path / "plain"
    load_family(tiny_path).export_branch("E297K", plain_dir)
    plain = AutoModelForCausalLM.from_pretrained(plain_dir).eval()
    _familial_from_plain(plain_dir, tmp_path / "familial", [2, 4, 6, 7])
    familial = load_family(tmp_path / "familial")
    last = familial.branch_model(7)
    torch.testing.assert_close(last(input_ids=PROMPT).logits, plain(input_ids=PROMPT).logits, rtol=0, atol=1e-6)
    # A plain checkpoint is itself a family with one branch.
    single = load_family(plain_dir)
    assert [b.exit_layer for b in single.branches] == [7]
    torch.testing.assert_close(single.branch_model(7)(input_ids=PROMPT).logits, plain(input_ids=PROMPT).logits)


@pytest.mark.parametrize("flavour", ["qwen2", "qwen3"])
def test_exported_branch_loads_in_stock_transformers(make_checkpoint, flavour, tmp_path):
    family = load_family(make_checkpoint(flavour, False))
    branch = family.branches[1]
    out = family.export_branch(branch.name, tmp_path / "export")
    stock = AutoModelForCausalLM.from_pretrained(out).eval()
    assert stock.config.model_type == flavour and stock.config.num_hidden_layers == branch.num_layers
    ours = family.branch_model(branch)
    torch.testing.assert_close(stock(input_ids=PROMPT).logits, ours(input_ids=PROMPT).logits, rtol=0, atol=0)
    kwargs = dict(max_new_tokens=12, do_sample=False, min_new_tokens=12)
    assert torch.equal(stock.generate(PROMPT, **kwargs), ours.generate(PROMPT, **kwargs))
    from transformers import AutoTokenizer

    # The exported tokenizer (rebuilt by transformers as Qwen2's) gives the family's exact tokens.
    tok = AutoTokenizer.from_pretrained(out)
    text = "Solve $x^2 + 3x = 10$: 12345 apples, 中文 ＡＢＣ.\ndef f(x):\n    return x**2"
    assert tok(text)["input_ids"] == family.tokenizer(text)["input_ids"]
    chat = [{"role": "user", "content": text}]
    assert tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == (
        family.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    )


def test_branch_models_used_alternately_match_alone(tiny_path):
    kwargs = dict(max_new_tokens=10, min_new_tokens=10, do_sample=False)
    alone = {}
    for b in ("E111K", "E297K"):
        m = load_family(tiny_path).branch_model(b)
        alone[b] = (m(input_ids=PROMPT).logits, m.generate(PROMPT, **kwargs))
    family = load_family(tiny_path)
    small, large = family.branch_model("E111K"), family.branch_model("E297K")
    for _ in range(2):
        for name, m in (("E111K", small), ("E297K", large)):
            torch.testing.assert_close(m(input_ids=PROMPT).logits, alone[name][0], rtol=0, atol=0)
            assert torch.equal(m.generate(PROMPT, **kwargs), alone[name][1])


def test_sharded_and_half_precision_checkpoints(tiny_path, tmp_path):
    weights = load_file(str(tiny_path / "model.safetensors"))
    sharded = tmp_path / "sharded"
    shutil.copytree(tiny_path, sharded)
    (sharded / "model.safetensors").unlink()
    names = sorted(weights)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for fname, keys in halves.items():
        save_file({k: weights[k].to(torch.bfloat16) for k in keys}, str(sharded / fname))
    index = {"metadata": {}, "weight_map": {k: f for f, ks in halves.items() for k in ks}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    family = load_family(sharded, dtype="bf16")
    assert family.dtype == torch.bfloat16 and len(family.tensors) == len(weights)
    ref = load_family(tiny_path).branch_model("E297K")(input_ids=PROMPT).logits
    got = family.branch_model("E297K")(input_ids=PROMPT).logits.float()
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() > 0.8
    fp16 = load_family(sharded, dtype="fp16")
    assert fp16.branch_model(2).dtype == torch.float16


def test_parse_branches(tiny_path):
    family = load_family(tiny_path)
    assert [b.exit_layer for b in evalkit.parse_branches("all", family.branches)] == [2, 4, 6, 7]
    assert [b.name for b in evalkit.parse_branches("e297k, 2", family.branches)] == ["E111K", "E297K"]
    with pytest.raises(EvalkitError, match=r"unknown branch 'E9B'.*E111K \(layer 2\)"):
        evalkit.parse_branches("E9B", family.branches)


def _write_config(path: Path, **overrides) -> Path:
    config = json.loads((Path(overrides.pop("source")) / "config.json").read_text())
    for k, v in overrides.items():
        if v is None:
            config.pop(k, None)
        else:
            config[k] = v
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing_dir", "does not exist"),
        ("no_config", "has no config.json"),
        ("no_weights", "has no \\*.safetensors weights"),
        ("no_exits", "needs early_exit_points"),
        ("exit_too_deep", "exit point 9 is >= num_hidden_layers \\(8\\)"),
        ("missing_tensor", "tensor model.norms.1.weight is missing"),
        ("unknown_branch", "unknown branch 'E9B'; valid branches are: all, E111K \\(layer 2\\)"),
        ("truncated", "cannot read .*model.safetensors \\(.*\\); the file is truncated or not safetensors"),
        ("garbage", "cannot read .*model.safetensors \\(.*\\); the file is truncated or not safetensors"),
        (
            "vocab_mismatch",
            "tensor model.embed_tokens.weight has shape \\[1024, 64\\], but config.json "
            "\\(hidden_size 64, vocab_size 1000, .*\\) implies \\[1000, 64\\]",
        ),
        ("hidden_mismatch", "tensor model.embed_tokens.weight has shape \\[1024, 64\\], .* implies \\[1024, 32\\]"),
        (
            "branch_layer_mismatch",
            "tensor model.eelayers.0.mlp.up_proj.weight has shape \\[96, 64\\], .* implies \\[128, 64\\]",
        ),
    ],
)
def test_bad_input_is_one_clear_line(case, expected, tiny_path, tmp_path):
    bad = tmp_path / "ckpt"
    if case != "missing_dir":
        shutil.copytree(tiny_path, bad)
    args = ["branches", "--model", str(bad)]
    if case == "no_config":
        (bad / "config.json").unlink()
    elif case == "no_weights":
        (bad / "model.safetensors").unlink()
    elif case == "no_exits":
        _write_config(bad, source=tiny_path, early_exit_points=None)
    elif case == "exit_too_deep":
        _write_config(bad, source=tiny_path, early_exit_points=[2, 4, 9])
    elif case == "missing_tensor":
        weights = load_file(str(bad / "model.safetensors"))
        del weights["model.norms.1.weight"]
        save_file(weights, str(bad / "model.safetensors"))
    elif case == "unknown_branch":
        args += ["--branches", "E9B"]
    elif case == "truncated":
        size = (bad / "model.safetensors").stat().st_size
        with open(bad / "model.safetensors", "r+b") as f:
            f.truncate(size // 2)
    elif case == "garbage":
        (bad / "model.safetensors").write_bytes(b"\x89not safetensors at all" * 100)
    elif case == "vocab_mismatch":
        _write_config(bad, source=tiny_path, vocab_size=1000)
    elif case == "hidden_mismatch":
        _write_config(bad, source=tiny_path, hidden_size=32)
    elif case == "branch_layer_mismatch":
        weights = load_file(str(bad / "model.safetensors"))
        weights["model.eelayers.0.mlp.up_proj.weight"] = weights["model.eelayers.0.mlp.up_proj.weight"][:96]
        save_file(weights, str(bad / "model.safetensors"))
    proc = subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert pytest.importorskip("re").search(expected, lines[0]), lines[0]


def test_cli_branches_and_export(tiny_path, tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "evalkit", *a], capture_output=True, text=True)  # noqa: E731
    listing = run("branches")
    assert listing.returncode == 0, listing.stderr
    for name in ("E111K", "E186K", "E260K", "E297K"):
        assert name in listing.stdout
    exported = run("export-branch", "--branch", "4", "--out", str(tmp_path / "e4"))
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == f"wrote {tmp_path / 'e4'}\n" and "Writing model shards" not in exported.stderr
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "e4").config.num_hidden_layers == 5
    again = run("export-branch", "--branch", "4", "--out", str(tmp_path / "e4"))
    assert again.returncode == 2 and "not empty" in again.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["export-branch", "--branch", "2", "--out", "{blocker}/e2"],
        ["make-tiny", "{blocker}/tiny"],
    ],
)
def test_outputs_under_a_file_are_one_line_errors(tmp_path, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    args = [a.format(blocker=blocker) for a in command]
    proc = subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: cannot write {args[-1]} ({blocker} is not a directory); pass a writable "
        f"{'--out' if command[0] == 'export-branch' else 'OUT_DIR'}"
    ]


@pytest.mark.parametrize(
    "device, message",
    [
        ("foo", "unknown device 'foo'; pass cpu, cuda or cuda:N"),
        ("tpu", "device type 'tpu' is not supported|unknown device 'tpu'"),
        ("cuda:7", "no usable CUDA GPU|this machine has \\d+ GPU"),
    ],
)
def test_unusable_devices_are_one_clear_error(tiny_path, device, message):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(EvalkitError, match=message):
        load_family(tiny_path, device=device)


def test_cuda_on_a_machine_without_a_gpu_is_one_line(tiny_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(EvalkitError, match="device cuda asked for, but this machine has no usable CUDA GPU"):
        load_family(tiny_path, device="cuda")


def test_checkpoint_without_tokenizer_files_is_one_line(tiny_path, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(tiny_path, bare)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (bare / name).unlink(missing_ok=True)
    with pytest.raises(EvalkitError) as e:
        load_family(bare).tokenizer  # noqa: B018
    assert "\n" not in str(e.value) and "has no tokenizer files" in str(e.value)


def test_a_plain_checkpoint_with_tied_embeddings_loads(tiny_path, tmp_path):
    """Small models (Qwen2.5-0.5B, ...) save no lm_head.weight: the embedding is the head."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from evalkit.engine.generate import generate_fast
    from evalkit.load.checkpoint import TOKENIZER_FILES

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=1024,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    Qwen2ForCausalLM(config).save_pretrained(tmp_path / "tied")
    for name in TOKENIZER_FILES:
        if (tiny_path / name).is_file():
            shutil.copy(tiny_path / name, tmp_path / "tied" / name)
    assert "lm_head.weight" not in load_file(str(tmp_path / "tied" / "model.safetensors"))
    family = load_family(tmp_path / "tied")
    (branch,) = family.branches
    embed = family.tensors["model.embed_tokens.weight"]
    assert branch.num_params == sum(t.numel() for t in family.tensors.values())  # the head is not counted twice
    model = family.branch_model(branch)
    assert model.lm_head.weight.data_ptr() == embed.data_ptr()
    model.generation_config.eos_token_id = None
    stock = model.generate(PROMPT, max_new_tokens=5, do_sample=False, pad_token_id=0)[:, PROMPT.shape[1] :]
    assert torch.equal(generate_fast(family, branch, PROMPT, max_new_tokens=5, ignore_eos=True), stock)


def test_make_tiny_with_a_real_family_structure(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "evalkit", *a], capture_output=True, text=True)  # noqa: E731
    made = run("make-tiny", str(tmp_path / "like"), "--like", "ruyi-7b")
    assert made.returncode == 0, made.stderr
    family = load_family(tmp_path / "like")
    assert family.files.config["num_hidden_layers"] == 28 and family.files.config["hidden_size"] == 64
    assert [b.exit_layer for b in family.branches] == [11, 15, 19, 23, 27]
    assert [b.num_layers for b in family.branches] == [12, 16, 20, 24, 28]
    own = evalkit.make_tiny(tmp_path / "own", exits=(1, 3))  # layers follow from the last exit
    assert json.loads((own / "config.json").read_text())["num_hidden_layers"] == 4
    for args, message in [
        (["--layers", "10"], "--layers 10 needs --exits too"),
        (["--exits", "3,2"], "exits must be distinct, ascending, >= 0 and end at the last layer (2)"),
        (["--layers", "10", "--exits", "3,5"], "end at the last layer (9)"),
        (["--exits", "a,b"], "expected comma-separated integers"),
    ]:
        bad = run("make-tiny", str(tmp_path / "bad"), *args)
        assert bad.returncode == 2 and message in bad.stderr and not (tmp_path / "bad").exists(), bad.stderr
