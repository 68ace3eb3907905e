"""The whole tree is lint-clean and formatted, and the package type-checks, with the rules in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_check_passes() -> None:
    result = _ruff("check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_every_file_as_it_is() -> None:
    result = _ruff("format", "--no-cache", "--check", ".")
    assert result.returncode == 0, f"run `ruff format .`:\n{result.stdout}{result.stderr}"


def test_mypy_finds_no_type_errors_in_the_package() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "evalkit"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_formatter_opt_outs() -> None:
    markers = ("fmt: " + "skip", "fmt: " + "off")  # spelled apart, so this file does not match itself
    marked = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in [*ROOT.glob("evalkit/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("scripts/*.py")]
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(marker in line for marker in markers)
    ]
    assert not marked, f"lines the formatter may not touch: {marked}"
