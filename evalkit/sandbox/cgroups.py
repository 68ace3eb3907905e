"""Per-sandbox cgroups: a process-count limit, a sandbox-wide memory limit, and a kill that reaches
every process of the sandbox, wherever it re-parented and whatever it did to its supervisor.

`find_root(controller)` finds (once) a writable directory under which each sandbox gets a leaf
cgroup of its own, in cgroup v2 or in the v1 hierarchy of that controller. `SandboxCgroups` creates
the leaves of one sandbox with their limits, kills what is left in them and removes them. The
sandbox's first process joins the leaves (`cgroup.procs`) before it starts anything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT_NAME = "evalkit-sandbox"  # the directory, under the host process's own cgroup, that holds the leaves
LEAF_PREFIX = "evalkit-"
_TRIAL = {"pids": ("pids.max", "8"), "memory": ("memory.max", "max")}
_TRIAL_V1 = {"pids": ("pids.max", "8"), "memory": ("memory.limit_in_bytes", "-1")}


@dataclass(frozen=True)
class _Mount:
    version: int  # 1 or 2
    controllers: frozenset[str]  # v1: the controllers of this hierarchy; v2: empty
    root: str  # the cgroup mounted at `point` (not "/" inside a cgroup namespace's view of a bind)
    point: str


def _mounts() -> list[_Mount]:
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        pre, _, post = line.partition(" - ")
        fields, extra = pre.split(), post.split()
        if len(fields) < 5 or len(extra) < 3 or extra[0] not in ("cgroup", "cgroup2"):
            continue
        root, point = (f.replace("\\040", " ") for f in fields[3:5])
        if extra[0] == "cgroup2":
            found.append(_Mount(2, frozenset(), root, point))
        else:
            found.append(_Mount(1, frozenset(extra[2].split(",")), root, point))
    return found


def _own_cgroups() -> dict[str, str]:
    """{v1 controller or '' for v2: this process's cgroup path} from /proc/self/cgroup."""
    own = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    return own


def _candidates(controller: str) -> list[tuple[int, Path]]:
    """(version, the host process's own cgroup directory) of every hierarchy holding `controller`."""
    own, out = _own_cgroups(), []
    for m in _mounts():
        key = "" if m.version == 2 else controller
        if key not in own or (m.version == 1 and controller not in m.controllers):
            continue
        rel = os.path.relpath(own[key], m.root)
        if rel.startswith(".."):
            continue
        base = Path(m.point, rel)
        if m.version == 2:
            try:
                if controller not in (base / "cgroup.controllers").read_text().split():
                    continue
            except OSError:
                continue
        out.append((m.version, base))
    return out


def find_root(controller: str) -> str | None:
    """A directory under which each sandbox gets its own `controller` cgroup ("pids" or "memory"), or None.

    It is `evalkit-sandbox` under the host process's own cgroup; a trial leaf proves that leaves
    can be made and limited there."""
    for version, base in _candidates(controller):
        root = base / ROOT_NAME
        limit_file, value = (_TRIAL if version == 2 else _TRIAL_V1)[controller]
        try:
            root.mkdir(exist_ok=True)
            if version == 2:  # hand the controller down to the leaves
                (root / "cgroup.subtree_control").write_text(f"+{controller}")
            trial = tempfile.mkdtemp(prefix=LEAF_PREFIX, dir=root)
            try:
                Path(trial, limit_file).write_text(value)
            finally:
                os.rmdir(trial)
            return str(root)
        except OSError:
            continue
    return None


class SandboxCgroups:
    """The leaf cgroups of one sandbox: `paths` for the sandbox to join; `kill()` ends everything in
    them; `close()` kills and removes them. Use as a context manager."""

    def __init__(self, pids_root: str | None, memory_root: str | None, max_procs: int, memory_mb: int) -> None:
        self.paths: list[str] = []
        try:
            if pids_root:
                leaf = self._leaf(pids_root)
                Path(leaf, "pids.max").write_text(str(max_procs))
            if memory_root:
                leaf = self._leaf(memory_root) if memory_root != pids_root else self.paths[-1]
                _limit_memory(leaf, memory_mb * 2**20)
        except BaseException:
            self.close()
            raise

    def _leaf(self, root: str) -> str:
        leaf = tempfile.mkdtemp(prefix=LEAF_PREFIX, dir=root)
        self.paths.append(leaf)
        return leaf

    def __enter__(self) -> SandboxCgroups:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def kill(self) -> None:
        """SIGKILL every process in the sandbox's cgroups, until none is left (at most about 2 s)."""
        for leaf in self.paths:
            _kill_leaf(leaf)

    def oom_killed(self) -> bool:
        """Whether the sandbox-wide memory limit killed a process."""
        for leaf in self.paths:
            for name in ("memory.events", "memory.oom_control"):  # v2, v1
                with contextlib.suppress(OSError, ValueError):
                    for line in Path(leaf, name).read_text().splitlines():
                        key, _, count = line.partition(" ")
                        if key == "oom_kill" and int(count) > 0:
                            return True
        return False

    def close(self) -> None:
        self.kill()
        for leaf in self.paths:
            _remove(leaf)
        self.paths = []


def _limit_memory(leaf: str, limit: int) -> None:
    """memory.max (v2) or memory.limit_in_bytes (v1), and no swap where the kernel accounts it."""
    if Path(leaf, "memory.max").exists():
        Path(leaf, "memory.max").write_text(str(limit))
        if Path(leaf, "memory.swap.max").exists():
            Path(leaf, "memory.swap.max").write_text("0")
        return
    Path(leaf, "memory.limit_in_bytes").write_text(str(limit))
    if Path(leaf, "memory.memsw.limit_in_bytes").exists():  # memory + swap, so: no swap
        Path(leaf, "memory.memsw.limit_in_bytes").write_text(str(limit))


def _kill_leaf(leaf: str) -> None:
    path = Path(leaf)
    if path.parent.name != ROOT_NAME or not path.name.startswith(LEAF_PREFIX):
        raise ValueError(f"refusing to kill the processes of {leaf}: not a sandbox's cgroup")
    if not path.is_dir():
        return
    with contextlib.suppress(OSError):
        Path(leaf, "cgroup.kill").write_text("1")  # cgroup v2, Linux >= 5.14: atomic
    with contextlib.suppress(OSError):
        Path(leaf, "pids.max").write_text("0")  # nothing in it can fork any more while we kill
    for _ in range(200):
        try:
            pids = [int(p) for p in Path(leaf, "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            return
        for pid in pids:
            if pid != os.getpid():
                _kill_if_in(pid, path.name)
        time.sleep(0.01)


def _kill_if_in(pid: int, leaf_name: str) -> None:
    """SIGKILL `pid` only if it still is in the leaf (a pidfd pins it, so a reused pid is never hit)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfds (Linux < 5.3): check, then kill by pid
        if _in_leaf(pid, leaf_name):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return
    try:
        if _in_leaf(pid, leaf_name):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(fd)


def _in_leaf(pid: int, leaf_name: str) -> bool:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return False
    return any(line.endswith(f"/{ROOT_NAME}/{leaf_name}") for line in lines)


def _remove(leaf: str) -> None:
    for _ in range(200):  # busy until the kernel has reaped the last process of the sandbox
        try:
            os.rmdir(leaf)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)
