"""The package's shape: stages import downward only, with no circles, counting function-local imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "evalkit"
# Lowest first: a module may import its own stage and the stages before it, never one after it.
STAGES = (
    "errors",
    "catalog",
    "records",
    "analysis",
    "reporting",
    "load",
    "engine",
    "sandbox",
    "oc",
    "evaluation",
    "benchmark",
    "cli",
    "__main__",
    "__init__",
)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        if "fixtures" in path.relative_to(PACKAGE).parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """Every evalkit module `module` imports, wherever the import sits, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _stage(module: str) -> int:
    name = module.split(".")[1] if "." in module else "__init__"
    return STAGES.index(name)


def test_every_module_belongs_to_a_stage() -> None:
    unknown = [m for m in MODULES if m != "evalkit" and m.split(".")[1] not in STAGES]
    assert not unknown, f"modules outside the known stages: {unknown}; add the stage to STAGES in its place"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "evalkit"))
def test_imports_point_down(module: str) -> None:
    upward = sorted(t for t in GRAPH[module] if t != "evalkit" and _stage(t) > _stage(module))
    assert not upward, f"{module} imports a later stage: {upward}"


def test_no_import_circles() -> None:
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for t in GRAPH.get(todo.pop(), ()):
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return seen

    # A package re-exporting its own children is not a circle.
    circles = sorted(m for m in MODULES if m in reach(m) and not m.endswith("__init__"))
    circles = [m for m in circles if not any(t.startswith(m + ".") for t in GRAPH[m])]
    assert not circles, f"modules that import themselves through others: {circles}"


def test_benchmark_uses_run_and_reporting_through_their_public_names() -> None:
    private = sorted(
        (m, t)
        for m in MODULES
        if m.startswith("evalkit.benchmark.")
        for t in GRAPH[m]
        if t.startswith(("evalkit.evaluation.", "evalkit.reporting."))
    )
    assert not private, f"benchmark reaches into the run or reporting stage's modules: {private}"


def _loaded_after(code: str) -> list[str]:
    """The torch and OpenCompass modules a fresh interpreter has loaded after running `code`."""
    probe = code + "\nimport sys\nprint(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'opencompass'}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def test_a_bad_run_flag_fails_before_torch_or_opencompass_load() -> None:
    code = (
        "from click.testing import CliRunner\nfrom evalkit.cli import main\n"
        "r = CliRunner().invoke(main, ['run', '--suites', 'genral'])\n"
        "assert r.exit_code == 2 and \"unknown suite 'genral'\" in r.output, r.output"
    )
    assert _loaded_after(code) == []


def test_the_engine_and_benchmark_import_without_opencompass() -> None:
    # The GPU machines that run `bench` have no OpenCompass.
    assert "opencompass" not in _loaded_after(
        "import evalkit.benchmark.main, evalkit.engine.family_engine, evalkit.engine.generate"
    )
