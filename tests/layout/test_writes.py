"""Every file evalkit writes goes through `evalkit.records.io`, the atomic writer; nothing writes in place.

A call that writes a file directly (`open(..., "w")`, `Path.write_text`, `savefig(path)`, `save_file`,
`json.dump`, a copy or a rename) anywhere else in the package fails this test, unless it is listed
below with the reason it is not a file evalkit publishes.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "evalkit"
WRITER = PACKAGE / "records" / "io.py"

# Calls that write, rename or copy a file whatever their arguments.
WRITES = {
    "write_text",
    "write_bytes",
    "savefig",
    "save_file",
    "save_pretrained",
    "dump",
    "touch",
    "replace",
    "rename",
    "copy",
    "copy2",
    "copyfile",
    "copyfileobj",
    "copytree",
    "move",
    "mkstemp",
    "mkdtemp",
}
# Calls that write when given a writing mode or flags.
OPENS = {"open", "fdopen"}
WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC"}

ALLOWED: dict[str, dict[str, str]] = {
    "reporting/plots.py": {"savefig": "renders into memory; write_bytes_atomic writes the file"},
    "load/family.py": {"save_pretrained": "fills an atomic_directory that is renamed into place whole"},
    "load/tokenizer.py": {"save_pretrained": "fills build_checkpoint's atomic_directory"},
    "evaluation/lock.py": {"open": "the lock file: a lock belongs to an inode, so it cannot be renamed over"},
    "sandbox/cgroups.py": {
        "write_text": "cgroup control files (kernel interfaces)",
        "mkdtemp": "a cgroup leaf",
    },
    "sandbox/rootfs.py": {"open": "/proc files and mount points in the sandbox's private root"},
    "sandbox/init.py": {"open": "/proc, cgroup.procs and the program inside the sandbox's private scratch"},
    "sandbox/launch.py": {
        "mkdtemp": "the sandbox's private scratch, removed after",
        "write_text": "the program and its stdin in that scratch",
        "write_bytes": "the program's stdin in that scratch",
    },
    "sandbox/judge.py": {"open": "/dev/null as the judge's stdout while the tests run, inside its sandbox"},
}


def _name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _writes(call: ast.Call) -> bool:
    name = _name(call)
    if name in WRITES:
        return not (name in ("replace", "move", "copy") and not _path_like_call(call))
    if name not in OPENS:
        return False
    f = call.func
    on_module = isinstance(f, ast.Name) or (
        isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in ("os", "gzip", "io")
    )
    args = call.args[1:] if on_module else call.args  # open(path, mode), but Path.open(mode)
    text = " ".join(ast.unparse(a) for a in [*args, *(k.value for k in call.keywords if k.arg != "encoding")])
    return any(c in text for c in ("'w", '"w', "'a", '"a', "'x", '"x', "+")) or any(f in text for f in WRITE_FLAGS)


def _path_like_call(call: ast.Call) -> bool:
    """os.replace / shutil.move / shutil.copy, not str.replace, dataclasses.replace or dict.copy."""
    f = call.func
    return isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in ("os", "shutil")


def test_every_write_goes_through_the_atomic_writer() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if path == WRITER or rel.startswith("fixtures/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _writes(node) and _name(node) not in ALLOWED.get(rel, {}):
                found.append(f"evalkit/{rel}:{node.lineno}: {ast.unparse(node)[:100]}")
    assert not found, "write these through evalkit.records.io (write_*_atomic, atomic_directory):\n" + "\n".join(found)


def test_the_allowances_are_still_needed() -> None:
    """An allowance whose call is gone is removed, so the list never hides a new direct write."""
    stale = []
    for rel, calls in ALLOWED.items():
        tree = ast.parse((PACKAGE / rel).read_text(encoding="utf-8"))
        used = {_name(n) for n in ast.walk(tree) if isinstance(n, ast.Call) and _writes(n)}
        stale += [f"{rel}: {c}" for c in calls if c not in used]
    assert not stale, f"allowed writes that no longer occur: {stale}"
