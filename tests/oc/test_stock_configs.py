"""The config files for the stock `opencompass` CLI load and name what `run` would evaluate; bad settings
stop the load with one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opencompass")

CONFIGS = Path(__file__).resolve().parents[2] / "opencompass_configs"
TINY = ["E111K", "E186K", "E260K", "E297K"]  # at exits 2, 4, 6, 7
ENV = (
    "RUYI_7B_PATH",
    "EXPORTED_BRANCH_PATH",
    "EVALKIT_BRANCHES",
    "EVALKIT_BACKEND",
    "EVALKIT_DTYPE",
    "EVALKIT_DEVICE",
    "EVALKIT_BATCH_SIZE",
    "EVALKIT_SUITES",
    "EVALKIT_LIMIT",
)


@pytest.fixture(scope="module")
def exported(tiny_path, tmp_path_factory) -> Path:
    from evalkit import load_family

    return load_family(tiny_path).export_branch("E186K", tmp_path_factory.mktemp("exported") / "Tiny-E186K")


@pytest.fixture
def env(monkeypatch, tiny_path, exported):
    """A clean environment for the configs: the tiny family and its exported branch, the code suite."""
    from evalkit.catalog.baselines import BASELINES

    for var in (*ENV, *(b.env for b in BASELINES.values())):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RUYI_7B_PATH", str(tiny_path))
    monkeypatch.setenv("EXPORTED_BRANCH_PATH", str(exported))
    monkeypatch.setenv("EVALKIT_SUITES", "code")
    return monkeypatch


def load(name: str):
    from mmengine.config import Config

    return Config.fromfile(str(CONFIGS / name))


@pytest.mark.parametrize("name", ["eval_ruyi.py", "eval_exported.py"])
def test_stock_cli_configs_load(name, env):
    env.setenv("EVALKIT_LIMIT", "3")
    config = load(name)
    assert [d["abbr"] for d in config.datasets] == ["openai_humaneval", "sanitized_mbpp", "lcb_code_generation"]
    assert all(d["reader_cfg"]["test_range"] == "[0:3]" for d in config.datasets)
    assert all("evalkit.oc.evaluators.Sandboxed" in d["eval_cfg"]["evaluator"]["type"] for d in config.datasets)
    abbrs = [m["abbr"] for m in config.models]
    assert len(abbrs) == len(set(abbrs)) >= 1


@pytest.mark.parametrize(
    "spec, chosen",
    [
        (None, TINY),
        ("all", TINY),
        ("ALL", TINY),
        ("e111k,e297k", ["E111K", "E297K"]),
        ("2,6", ["E111K", "E260K"]),
        (" 7, e186K ,2,E111K", ["E111K", "E186K", "E297K"]),
    ],
)
@pytest.mark.parametrize("name", ["eval_ruyi.py", "models/ruyi_7b.py"])
def test_branch_lists_mean_what_run_branches_means(name, spec, chosen, env):
    """all, names in any case and exit layers select the family's branches, named as the family names them."""
    if spec is not None:
        env.setenv("EVALKIT_BRANCHES", spec)
    models = load(name).models
    assert [m["abbr"] for m in models] == [f"tiny-ruyi-{b.lower()}" for b in chosen]
    assert [m["branch"] for m in models] == chosen
    assert all(m["run_branches"] == chosen for m in models)


def test_any_familial_checkpoint_and_a_plain_one(env, make_checkpoint, exported):
    """Branches come from the checkpoint's own files, not from a list of Ruyi-7B's names."""
    from evalkit import load_family

    other = make_checkpoint("qwen3", True)
    env.setenv("RUYI_7B_PATH", str(other))
    env.setenv("EVALKIT_BRANCHES", "4,7")
    names = [b.name for b in load_family(other).branches]
    assert [m["branch"] for m in load("models/ruyi_7b.py").models] == [names[1], names[3]]
    env.setenv("RUYI_7B_PATH", str(exported))  # a plain checkpoint is a family of one
    env.delenv("EVALKIT_BRANCHES")
    (model,) = load("models/ruyi_7b.py").models
    assert model["abbr"] == "tiny-e186k" and model["branch"] == "Tiny-E186K"


def test_exported_configs_and_settings(env, exported):
    env.setenv("EVALKIT_DTYPE", "fp16")
    env.setenv("EVALKIT_DEVICE", "cpu")
    env.setenv("EVALKIT_BATCH_SIZE", "3")
    (hf,) = load("models/exported_branch.py").models
    assert hf["path"] == str(exported) and hf["branch"] is None and hf["abbr"] == "tiny-e186k"
    assert (hf["dtype"], hf["device"], hf["batch_size"]) == ("fp16", "cpu", 3)
    (vllm,) = load("models/exported_branch_vllm.py").models
    assert vllm["type"] == "opencompass.models.VLLMwithChatTemplate" and vllm["model_kwargs"]["dtype"] == "float16"
    env.setenv("EVALKIT_BACKEND", "vllm")
    assert load("eval_exported.py").models == [vllm]


def _damaged(tmp_path: Path, tiny_path: Path, what: str) -> Path:
    bad = tmp_path / "ckpt"
    shutil.copytree(tiny_path, bad)
    if what == "config":
        (bad / "config.json").unlink()
    elif what == "tokenizer":
        (bad / "tokenizer.json").unlink()
    elif what == "weights":
        data = (bad / "model.safetensors").read_bytes()
        (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    return bad


@pytest.mark.parametrize(
    "name, settings, message",
    [
        (
            "eval_ruyi.py",
            {"EVALKIT_BRANCHES": "E3B"},
            "EVALKIT_BRANCHES: unknown branch 'E3B'; valid branches are: "
            "all, E111K (layer 2), E186K (layer 4), E260K (layer 6), E297K (layer 7)",
        ),
        ("models/ruyi_7b.py", {"EVALKIT_BRANCHES": "2,5"}, "EVALKIT_BRANCHES: unknown branch '5'"),
        ("models/ruyi_7b.py", {"RUYI_7B_PATH": None}, "set RUYI_7B_PATH to the local checkpoint directory"),
        ("models/ruyi_7b.py", {"RUYI_7B_PATH": "{missing}"}, "is not a checkpoint directory (no config.json there)"),
        ("models/ruyi_7b.py", {"RUYI_7B_PATH": "{config}"}, "is not a checkpoint directory (no config.json there)"),
        ("models/ruyi_7b.py", {"RUYI_7B_PATH": "{file}"}, "is not a checkpoint directory (no config.json there)"),
        ("models/ruyi_7b.py", {"RUYI_7B_PATH": "{tokenizer}"}, "has no tokenizer files"),
        ("models/ruyi_7b.py", {"RUYI_7B_PATH": "{weights}"}, "the file is truncated or not safetensors"),
        ("models/ruyi_7b.py", {"EVALKIT_BATCH_SIZE": "sixteen"}, "EVALKIT_BATCH_SIZE=sixteen is not a positive"),
        ("models/ruyi_7b.py", {"EVALKIT_BATCH_SIZE": "0"}, "EVALKIT_BATCH_SIZE=0 is not a positive whole number"),
        ("models/ruyi_7b.py", {"EVALKIT_DTYPE": "int8"}, "EVALKIT_DTYPE: unknown dtype 'int8'"),
        ("models/ruyi_7b.py", {"EVALKIT_DEVICE": "gpu"}, "EVALKIT_DEVICE: unknown device 'gpu'"),
        ("models/ruyi_7b.py", {"EVALKIT_DEVICE": "auto"}, "EVALKIT_DEVICE=auto cannot be settled in a config file"),
        ("eval_ruyi.py", {"EVALKIT_LIMIT": "-1"}, "EVALKIT_LIMIT=-1 is not a positive whole number"),
        ("eval_ruyi.py", {"EVALKIT_SUITES": "genral"}, "EVALKIT_SUITES: unknown suite 'genral'"),
        ("eval_exported.py", {"EVALKIT_BACKEND": "trt"}, "EVALKIT_BACKEND: unknown backend 'trt'"),
        ("eval_exported.py", {"EXPORTED_BRANCH_PATH": "{family}"}, "is a whole family (branches E111K, E186K"),
        ("models/baselines.py", {"YI_9B_PATH": "{missing}"}, "baseline yi-9b: "),
    ],
)
def test_bad_settings_stop_the_load_with_one_line(name, settings, message, env, tiny_path, tmp_path, capsys):
    paths = {"missing": tmp_path / "nowhere", "file": tiny_path / "config.json", "family": tiny_path}
    for var, value in settings.items():
        if value is None:
            env.delenv(var)
            continue
        key = value.strip("{}")
        if value.startswith("{"):
            value = str(paths[key] if key in paths else _damaged(tmp_path, tiny_path, key))
        env.setenv(var, value)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        load(name)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_the_stock_cli_stops_with_one_line(env, tmp_path):
    """What a user sees from `opencompass` itself: one line and exit 2, before any task starts."""
    env.setenv("EVALKIT_BRANCHES", "e3b")
    cli = Path(sys.executable).with_name("opencompass")
    if not cli.is_file():
        pytest.skip("the opencompass command is not installed next to this Python")
    proc = subprocess.run(
        [str(cli), str(CONFIGS / "eval_ruyi.py"), "-w", str(tmp_path / "out"), "--dry-run"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: EVALKIT_BRANCHES: unknown branch 'e3b'; valid branches are: all, E111K (layer 2), E186K (layer 4), "
        "E260K (layer 6), E297K (layer 7)"
    ]
    assert not (tmp_path / "out").exists()
