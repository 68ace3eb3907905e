"""The config files for the stock `opencompass` CLI load and name what `run` would evaluate."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[2] / "opencompass_configs"


@pytest.mark.parametrize("name", ["eval_ruyi", "eval_exported"])
def test_stock_cli_configs_load(name, tiny_path, monkeypatch):
    from mmengine.config import Config

    monkeypatch.setenv("RUYI_7B_PATH", str(tiny_path))
    monkeypatch.setenv("EXPORTED_BRANCH_PATH", str(tiny_path))
    monkeypatch.setenv("EVALKIT_SUITES", "code")
    monkeypatch.setenv("EVALKIT_LIMIT", "3")
    config = Config.fromfile(str(CONFIGS / f"{name}.py"))
    assert [d["abbr"] for d in config.datasets] == ["openai_humaneval", "sanitized_mbpp", "lcb_code_generation"]
    assert all(d["reader_cfg"]["test_range"] == "[0:3]" for d in config.datasets)
    assert all("evalkit.oc.evaluators.Sandboxed" in d["eval_cfg"]["evaluator"]["type"] for d in config.datasets)
    abbrs = [m["abbr"] for m in config.models]
    assert len(abbrs) == len(set(abbrs)) >= 1
