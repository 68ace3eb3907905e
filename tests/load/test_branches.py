"""A family's branches read from config.json and the safetensors headers agree with the loaded family's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from evalkit import EvalkitError, load_family, read_branches


@pytest.mark.parametrize("flavour", ["qwen2", "qwen3"])
@pytest.mark.parametrize("shared_heads", [False, True])
def test_read_branches_names_and_sizes_them_as_the_load_does(make_checkpoint, flavour, shared_heads):
    path = make_checkpoint(flavour, shared_heads)
    assert read_branches(path) == load_family(path).branches


def test_read_branches_of_sharded_plain_and_exported_checkpoints(tiny_path, tmp_path):
    assert [b.name for b in read_branches(tiny_path)] == ["E111K", "E186K", "E260K", "E297K"]
    weights = load_file(str(tiny_path / "model.safetensors"))
    sharded = tmp_path / "sharded"
    shutil.copytree(tiny_path, sharded)
    (sharded / "model.safetensors").unlink()
    names = sorted(weights)
    halves = {"a.safetensors": names[::2], "b.safetensors": names[1::2]}
    for fname, keys in halves.items():
        save_file({k: weights[k].to(torch.bfloat16) for k in keys}, str(sharded / fname))
    index = {"metadata": {}, "weight_map": {k: f for f, ks in halves.items() for k in ks}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    assert read_branches(sharded) == load_family(sharded).branches
    plain = load_family(tiny_path).export_branch("E186K", tmp_path / "Ruyi-E186K")
    (branch,) = read_branches(plain)
    assert branch == load_family(plain).branches[0] and branch.name == "Ruyi-E186K" and branch.exit_layer == 4


def test_read_branches_needs_neither_torch_nor_the_weights(tiny_path):
    code = (
        "import sys; from evalkit.load.branches import read_branches; "
        f"b = read_branches({str(tiny_path)!r}); "
        "print(len(b), 'torch' in sys.modules, 'safetensors' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["4", "False", "False"]


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda data: data[: len(data) // 2], "ends past the end of the file"),
        (lambda data: b"\xff" * 8 + data[8:], "header length is out of range"),
        (lambda data: data[:8] + b"x" + data[9:], "header is not JSON"),
        (lambda data: b"", "header length is out of range"),
    ],
)
def test_a_damaged_safetensors_header_is_one_clear_line(tiny_path, tmp_path, damage, reason):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_path, bad)
    weights = bad / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    with pytest.raises(EvalkitError) as e:
        read_branches(bad)
    message = str(e.value)
    assert "\n" not in message and reason in message and "the file is truncated or not safetensors" in message
