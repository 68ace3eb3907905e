"""Launching one program confined, given the isolation in force: its working directory, the sandbox's
first process (`init`, under `unshare` for namespaces), cgroups, limits, and the outcome read back.

`runner` decides the isolation (`sandbox_capabilities`) and is the public entry point; this module
runs a program once that is settled.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Literal

from evalkit.errors import EvalkitError
from evalkit.sandbox.cgroups import SandboxCgroups

Status = Literal["passed", "failed", "timeout", "error"]
Level = Literal["namespaces", "rlimits"]
_INIT = str(Path(__file__).with_name("init.py"))
_UNSHARE = ("--user", "--map-root-user", "--net", "--mount", "--pid", "--fork", "--kill-child")
_GRACE_S = 5.0  # how long past its own timeout the sandbox's init may take before the host kills it


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed program."""

    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 2048
    max_procs: int = 32
    max_output_bytes: int = 64 * 1024
    scratch_mb: int = 64

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise EvalkitError(f"sandbox limit {name} must be positive, got {value!r}")


@dataclass(frozen=True)
class Outcome:
    """What one program did: `status` is passed (exit 0), failed, timeout or error (not run)."""

    status: Status
    exit_code: int | None
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float | None = None
    truncated: bool = False
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class SandboxCapabilities:
    """The isolation in force; `as_dict()` goes into a results record's provenance."""

    level: Level
    network_isolated: bool
    filesystem_readonly: bool
    pid_namespace: bool
    process_limit: bool
    unprivileged_uid: int | None = None
    pids_cgroup: str | None = None
    memory_cgroup: str | None = None
    missing: tuple[str, ...] = ()
    reason: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def sandbox_memory_limit(self) -> bool:
        """Whether memory_mb bounds the whole sandbox (a memory cgroup), not only each process."""
        return self.memory_cgroup is not None

    def describe(self) -> str:
        kinds = (("pids", self.pids_cgroup), ("memory", self.memory_cgroup))
        cgroups = "".join(f", {name} cgroup" for name, path in kinds if path)
        if self.level == "namespaces":
            lacks = f"; missing: {', '.join(self.missing)}" if self.missing else ""
            return (
                "namespaces (user, mount, pid, net): no network, minimal read-only root, rlimits, "
                f"timeout{cgroups}{lacks}"
            )
        return f"rlimits{cgroups} ({self.reason}); missing: {', '.join(self.missing)}"

    def as_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "missing": list(self.missing),
            "notes": list(self.notes),
            "sandbox_memory_limit": self.sandbox_memory_limit,
        }


def run_confined(source: str, limits: Limits, stdin: str, caps: SandboxCapabilities) -> Outcome:
    workdir = tempfile.mkdtemp(prefix="evalkit-sandbox-")
    try:
        Path(workdir, "prog.py").write_text(source)
        Path(workdir, "stdin.txt").write_text(stdin)
        return _launch(workdir, limits, caps)
    finally:
        _remove_tree(workdir)


def _launch(workdir: str, limits: Limits, caps: SandboxCapabilities) -> Outcome:
    # The pids limit counts the sandbox's first process too; the memory limit covers it and its tmpfs.
    with SandboxCgroups(caps.pids_cgroup, caps.memory_cgroup, limits.max_procs + 1, limits.memory_mb) as cgroups:
        outcome = _launch_in(workdir, limits, caps, cgroups)
        cgroups.kill()  # whatever outlived the sandbox's first process (one that killed its supervisor, say)
        if cgroups.oom_killed():
            note = f"the sandbox-wide memory limit ({limits.memory_mb} MB) killed a process"
            outcome = replace(outcome, detail="; ".join(filter(None, (outcome.detail, note))))
    return outcome


def _interpreter_paths() -> list[str]:
    """What the sandbox's root must show of the interpreter beside the system directories: its
    prefixes and its executable, wherever they live (a venv under /tmp or /root included)."""
    paths = {
        os.path.abspath(p)
        for p in (
            sys.prefix,
            sys.base_prefix,
            sys.exec_prefix,
            sys.base_exec_prefix,
            sys.executable,
            os.path.realpath(sys.executable),
        )
        if p
    }
    if any(os.path.realpath(p) == "/" for p in paths):
        raise EvalkitError(
            f"the interpreter {sys.executable} has / as its prefix, so the sandbox would show the "
            "program the whole host; use an interpreter installed in its own directory (a venv)"
        )
    return sorted(paths)


def _launch_in(workdir: str, limits: Limits, caps: SandboxCapabilities, cgroups: SandboxCgroups) -> Outcome:
    status_r, status_w = os.pipe()
    cfg = {
        "mode": caps.level,
        "workdir": workdir,
        "python": sys.executable,
        "limits": asdict(limits),
        "uid": caps.unprivileged_uid,
        "status_fd": status_w,
        "tmpfs_mb": limits.scratch_mb,
        "cgroups": cgroups.paths,
        "reveal": _interpreter_paths(),
    }
    cmd = [sys.executable, "-I", "-S", _INIT, json.dumps(cfg)]
    if caps.level == "namespaces":
        cmd = [shutil.which("unshare") or "unshare", *_UNSHARE, *cmd]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(status_w,),
            start_new_session=True,
        )
    finally:
        os.close(status_w)
    with proc, os.fdopen(status_r, "rb") as status_pipe:
        streams = _collect(proc, status_pipe, limits, start + limits.timeout_s + _GRACE_S, cgroups)
    return _outcome(streams, limits, time.monotonic() - start)


def _collect(
    proc: subprocess.Popen, status_pipe: BinaryIO, limits: Limits, deadline: float, cgroups: SandboxCgroups
) -> dict[str, bytes]:
    """Read stdout, stderr and the init's status until all close; kill the tree past the deadline."""
    keep = {"stdout": limits.max_output_bytes, "stderr": limits.max_output_bytes, "status": 1 << 20}
    data = {name: bytearray() for name in keep}
    seen = dict.fromkeys(keep, 0)
    sel = selectors.DefaultSelector()
    for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr), ("status", status_pipe)):
        assert pipe is not None
        sel.register(pipe, selectors.EVENT_READ, name)
    killed = False
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0 and not killed:
            _kill_group(proc)
            cgroups.kill()
            killed, deadline = True, time.monotonic() + 5.0
            continue
        if left <= 0:
            break  # a pipe still held open by something we could not kill; stop reading
        for key, _ in sel.select(timeout=left):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            name = key.data
            data[name] += chunk[: max(0, keep[name] - len(data[name]))]
            seen[name] += len(chunk)
    sel.close()
    if killed or proc.poll() is None:
        _kill_group(proc)
    out = {name: bytes(buf) for name, buf in data.items()}
    out["truncated"] = b"1" if any(seen[n] > keep[n] for n in ("stdout", "stderr")) else b""
    out["host_killed"] = b"1" if killed else b""
    return out


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _outcome(streams: dict[str, bytes], limits: Limits, wall_s: float) -> Outcome:
    base = Outcome(
        "error",
        None,
        streams["stdout"].decode("utf-8", errors="replace"),
        streams["stderr"].decode("utf-8", errors="replace"),
        wall_s,
        truncated=bool(streams["truncated"]),
    )
    try:
        st = json.loads(streams["status"] or b"{}")
    except json.JSONDecodeError:
        st = {}
    if streams["host_killed"]:
        return replace(base, status="timeout", detail="killed by the host after the timeout")
    if "error" in st or ("exit_code" not in st and not st.get("timed_out")):
        why = st.get("error") or "the sandbox exited without a status"
        return replace(base, detail=f"sandbox setup failed: {why}")
    if st.get("timed_out"):
        return replace(base, status="timeout", wall_s=st["wall_s"], detail=f"wall time over {limits.timeout_s} s")
    code, cpu = st["exit_code"], st.get("cpu_s")
    done = replace(base, exit_code=code, wall_s=st["wall_s"], cpu_s=cpu, detail="; ".join(st.get("notes", [])))
    if code == -signal.SIGXCPU or (code == -signal.SIGKILL and cpu is not None and cpu >= limits.cpu_s):
        return replace(done, status="timeout", detail=f"CPU time over {limits.cpu_s} s")
    return replace(done, status="passed" if code == 0 else "failed")


def _remove_tree(path: str) -> None:
    def unlock(func, p, exc):  # a program may have left read-only directories behind
        os.chmod(os.path.dirname(p), 0o700)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, 0o700)
        func(p)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=unlock)
    else:
        shutil.rmtree(path, onerror=unlock)
