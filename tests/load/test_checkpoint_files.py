"""A checkpoint's config.json and safetensors index are read strictly: a value of the wrong kind (a bool
for a number, NaN, a list for an object) is one line naming the key and exit 2, never a traceback and
never a silent acceptance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from evalkit.cli import main
from evalkit.errors import EvalkitError
from evalkit.load.checkpoint import read_checkpoint

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def ckpt(tiny_path: Path, tmp_path: Path) -> Path:
    out = tmp_path / "ckpt"
    shutil.copytree(tiny_path, out)
    return out


def _edit_config(ckpt: Path, **changes: object) -> None:
    config = json.loads((ckpt / "config.json").read_text(encoding="utf-8"))
    config.update(changes)
    (ckpt / "config.json").write_text(json.dumps(config), encoding="utf-8")


def _one_line(ckpt: Path) -> str:
    res = CliRunner().invoke(main, ["branches", "--model", str(ckpt)])
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


CONFIG = [
    ("num_hidden_layers", True, "num_hidden_layers is True, expected a whole number"),
    ("num_hidden_layers", 8.0, "num_hidden_layers is 8.0, expected a whole number"),
    ("num_hidden_layers", "8", "num_hidden_layers is '8', expected a whole number"),
    ("num_hidden_layers", INF, "num_hidden_layers is Infinity, expected a finite number"),
    ("num_hidden_layers", 0, "num_hidden_layers is 0, expected a whole number >= 1"),
    (
        "early_exit_points",
        [True, 4, 6, 7],
        "needs early_exit_points, a list of layer indices such as [11, 15, 19, 23, 27]; got [true, 4, 6, 7]",
    ),
    ("early_exit_points", [2.0, 4, 6, 7], "got [2.0, 4, 6, 7]"),
    ("early_exit_points", "2,4,6,7", 'got "2,4,6,7"'),
    ("early_exit_points", [NAN, 4, 6, 7], "early_exit_points[0] is NaN, expected a finite number"),
    ("default_early_exit_point", True, "default_early_exit_point is True, expected a whole number"),
    ("hidden_size", True, "hidden_size is True, expected a whole number"),
    ("vocab_size", "1000", "vocab_size is '1000', expected a whole number"),
    ("vocab_size", 10**30, "vocab_size is 1000000000000000000000000000000, expected a whole number of at most 2**53"),
    ("head_dim", 0, "head_dim is 0, expected a whole number >= 1"),
    ("max_window_layers", -1, "max_window_layers is -1, expected a whole number >= 0"),
    ("rms_norm_eps", NAN, "rms_norm_eps is NaN, expected a finite number"),
    ("rms_norm_eps", True, "rms_norm_eps is True, expected a number"),
    ("rope_theta", -1.0, "rope_theta is -1.0, expected a number >= 0"),
    ("tie_word_embeddings", "false", "tie_word_embeddings is 'false', expected true or false"),
    ("shared_heads", 1, "shared_heads is 1, expected true or false"),
    ("torch_dtype", 16, "torch_dtype is 16, expected non-empty text or null"),
    ("eos_token_id", [1, True], "eos_token_id[1] is True, expected a whole number"),
    ("eos_token_id", -1, "eos_token_id is -1, expected a whole number >= 0"),
    ("pad_token_id", False, "pad_token_id is False, expected a whole number or null"),
    ("quantization_config", [], "quantization_config is a list, expected an object"),
    ("rope_scaling", "linear", "rope_scaling is 'linear', expected an object"),
    ("rope_scaling", {"factor": INF}, "rope_scaling['factor'] is Infinity, expected a finite number"),
]


@pytest.mark.parametrize(("key", "value", "message"), CONFIG, ids=[f"{k}={v!r}" for k, v, _ in CONFIG])
def test_a_hostile_config_value_is_one_line(ckpt, key, value, message):
    _edit_config(ckpt, **{key: value})
    line = _one_line(ckpt)
    assert line.startswith(f"error: {ckpt / 'config.json'}: ") and message in line, line


def test_configs_that_real_checkpoints_have_still_read(ckpt):
    # Llama 3.1: several end-of-sequence tokens and a rope_scaling object; Qwen3: null sliding window.
    _edit_config(ckpt, eos_token_id=[1, 2], rope_scaling={"rope_type": "llama3", "factor": 8.0}, sliding_window=None)
    assert read_checkpoint(ckpt).config["eos_token_id"] == [1, 2]
    _edit_config(ckpt, quantization_config=None, head_dim=None, torch_dtype=None)
    assert not read_checkpoint(ckpt).is_quantized


INDEX = [
    ({"weight_map": ["model.safetensors"]}, "weight_map is a list, expected an object"),
    ({"metadata": {}}, "the index lacks 'weight_map'"),
    (["model.safetensors"], "the index is a list, expected an object"),
    ({"weight_map": {}}, "weight_map lists no tensors"),
    ({"weight_map": {"lm_head.weight": 3}}, "weight_map['lm_head.weight'] is 3, expected non-empty text"),
    ({"weight_map": {"lm_head.weight": None}}, "weight_map['lm_head.weight'] is null"),
    ({"weight_map": {"a": "../x.safetensors"}}, "is '../x.safetensors', expected a shard file inside the checkpoint"),
    ({"weight_map": {"a": "/etc/passwd"}}, "is '/etc/passwd', expected a shard file inside the checkpoint"),
    ({"weight_map": {"a": "model\u0000.safetensors"}}, "expected a shard file inside the checkpoint"),
    ({"weight_map": {"a": "model.safetensors"}, "metadata": "x"}, "metadata is 'x', expected an object"),
    ({"weight_map": {"a": "model.safetensors"}, "metadata": {"total_size": NAN}}, "metadata['total_size'] is NaN"),
]


@pytest.mark.parametrize(("index", "message"), INDEX, ids=[json.dumps(i)[:40] for i, _ in INDEX])
def test_a_hostile_index_is_one_line(ckpt, index, message):
    path = ckpt / "model.safetensors.index.json"
    path.write_text(json.dumps(index), encoding="utf-8")
    line = _one_line(ckpt)
    assert line.startswith(f"error: {path} is not a valid safetensors index (") and message in line, line
    assert line.endswith("; restore it from the checkpoint")


@pytest.mark.parametrize("name", ["config.json", "model.safetensors.index.json"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 100_000, "is nested too deeply to read"),
        (b'{"model_type": "ruyi_\xff"}', "is not UTF-8 text (byte 21 is b'\\xff')"),
        (b'{"model_type": ', "is not valid JSON (Expecting value"),
    ],
)
def test_an_unreadable_json_file_is_one_line(ckpt, name, content, message):
    (ckpt / name).write_bytes(content)
    line = _one_line(ckpt)
    assert str(ckpt / name) in line and message in line, line


def test_a_valid_index_still_reads(ckpt):
    (ckpt / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 1}, "weight_map": {"lm_head.0.weight": "model.safetensors"}})
    )
    files = read_checkpoint(ckpt)
    assert files.weight_map == {"lm_head.0.weight": ckpt / "model.safetensors"}
    with pytest.raises(EvalkitError, match="shard other.safetensors listed in model.safetensors.index.json"):
        (ckpt / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "other.safetensors"}}))
        read_checkpoint(ckpt)
