"""A baseline's config.json is read strictly before anything loads: bytes that are not UTF-8, JSON nested
past the parser's limit, or a config that is not an object are one line and exit 2, never a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from evalkit.cli import main


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (b"\xff{}", "is not UTF-8 text (byte 0 is b'\\xff')"),
        (b"[" * 100_000, "is nested too deeply to read"),
        (b'{"a": 1, "a": 2}', "has the key 'a' twice in one object"),
        (b"[]", "does not hold a JSON object"),
        (b'{"quantization_config": ["awq"]}', "does not hold a quantization_config that is an object"),
    ],
)
def test_a_hostile_baseline_config_is_one_line(tmp_path, config, message):
    ckpt = tmp_path / "yi"
    ckpt.mkdir()
    (ckpt / "config.json").write_bytes(config)
    (ckpt / "tokenizer.json").write_text("{}", encoding="utf-8")
    args = ["run", "--suites", "stem", "--baselines", "yi-9b", "--baseline-path", f"yi-9b={ckpt}"]
    res = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "runs")])
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert str(ckpt / "config.json") in lines[0] and message in lines[0], lines[0]
