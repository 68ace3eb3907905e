"""The public API: every exported name resolves, lazily, and the CLI uses nothing else."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import evalkit

CLI = Path(evalkit.__file__).with_name("cli.py")


def test_every_exported_name_resolves() -> None:
    missing = [name for name in evalkit.__all__ if getattr(evalkit, name, None) is None]
    assert not missing, f"evalkit.__all__ lists names that do not resolve: {missing}"


def test_the_issue_s_public_names_are_exported() -> None:
    wanted = {
        "load_family",
        "Family",
        "Branch",
        "run",
        "report",
        "regress",
        "update_readme",
        "import_table",
        "bench",
        "ResultsRecord",
        "load_record",
        "save_record",
        "EvalkitError",
        "score_code",
    }
    assert wanted <= set(evalkit.__all__)


def test_the_cli_imports_only_public_names() -> None:
    private = []
    for node in ast.walk(ast.parse(CLI.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("evalkit"):
            module = importlib.import_module(node.module or "")
            exported = set(getattr(module, "__all__", ()))
            private += [f"{node.module}.{a.name}" for a in node.names if a.name not in exported]
        elif isinstance(node, ast.Import):
            private += [a.name for a in node.names if a.name.startswith("evalkit.")]
    assert not private, f"cli.py imports names that are not public: {private}"
