"""Launching programs confined, given the isolation in force: each one's working directory, its
sandbox's first process (`init`, under `unshare` for namespaces), cgroups, limits, and the outcome
read back. `run_linked` runs two programs, each in its own sandbox, joined by a pair of pipes.

`runner` decides the isolation (`sandbox_capabilities`) and is the public entry point; this module
runs programs once that is settled.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Literal

from evalkit.errors import EvalkitError
from evalkit.sandbox import rootfs
from evalkit.sandbox.cgroups import SandboxCgroups

Status = Literal["passed", "failed", "timeout", "error"]
Level = Literal["namespaces", "rlimits"]
_INIT = str(Path(__file__).with_name("init.py"))
# Runs `init` from its cached bytecode (a script given by path would be compiled at every start).
_INIT_BOOT = (
    "import sys, _frozen_importlib_external as b\n"
    "m = type(sys)('evalkit_sandbox_init')\n"
    f"m.__file__ = {_INIT!r}\n"
    "b.SourceFileLoader(m.__name__, m.__file__).exec_module(m)\n"
    "m.main()\n"
)
# A fresh IPC namespace too: SysV queues and shared memory would otherwise outlive a sandbox, and carry
# what one program learned to the next.
_UNSHARE = ("--user", "--map-root-user", "--net", "--mount", "--pid", "--ipc", "--fork", "--kill-child")
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
                "namespaces (user, mount, pid, net, ipc): no network, minimal read-only root, rlimits, "
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


@dataclass(frozen=True)
class Program:
    """One program to run confined: its source, limits and stdin; `site=False` runs the interpreter
    without its site-packages (`-S`: stdlib only, and quicker to start); `hide` names host paths that
    the sandbox shows as empty (namespaces only)."""

    source: str
    limits: Limits = Limits()
    stdin: str | bytes = ""
    site: bool = True
    hide: tuple[str, ...] = ()


def run_confined(source: str, limits: Limits, stdin: str, caps: SandboxCapabilities) -> Outcome:
    return _run([Program(source, limits, stdin)], caps, [()])[0]


def run_linked(
    judge: Program, contestant: Program, caps: SandboxCapabilities, grace_s: float = 0.25
) -> tuple[Outcome, Outcome]:
    """Run two programs, each in its own sandbox, joined by two pipes: in each program fd 3 reads what
    the other writes to its fd 4. Once the judge is done, the contestant has `grace_s` to exit."""
    to_judge, to_contestant = os.pipe(), os.pipe()
    channels: list[tuple[int, ...]] = [(to_judge[0], to_contestant[1]), (to_contestant[0], to_judge[1])]
    judged, ran = _run([judge, contestant], caps, channels, grace_s)
    return judged, ran


def _run(
    programs: list[Program], caps: SandboxCapabilities, channels: list[tuple[int, ...]], grace_s: float = 0.0
) -> list[Outcome]:
    """Start every program, each in its own working directory and cgroups; collect them all. The first
    is the leader: once it is done, the others have `grace_s` to end before they are killed."""
    with contextlib.ExitStack() as stack:
        runs: list[_Running] = []
        try:
            for program, fds in zip(programs, channels, strict=True):
                runs.append(_start(stack, program, caps, fds))
        except BaseException:
            for run in runs:  # started, but its partner never will be
                _kill_group(run.proc)
            raise
        finally:
            for fds in channels:
                for fd in fds:
                    os.close(fd)
        _collect(runs, grace_s)
        outcomes = []
        for run in runs:
            run.cgroups.kill()  # whatever outlived the sandbox's first process (one that killed its supervisor, say)
            outcome = _outcome(
                run.streams(), run.program.limits, time.monotonic() - run.start, run.killed and run.stopped
            )
            if run.cgroups.oom_killed():
                note = f"the sandbox-wide memory limit ({run.program.limits.memory_mb} MB) killed a process"
                outcome = replace(outcome, detail="; ".join(filter(None, (outcome.detail, note))))
            outcomes.append(outcome)
        return outcomes


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


_SECRETS: tuple[float, list[str]] = (float("-inf"), [])
_SECRETS_LOCK = threading.Lock()


def _etc_secrets(max_age_s: float = 60.0) -> list[str]:
    """What the sandbox covers under /etc, listed at most `max_age_s` ago (sandboxes start by the
    hundred; each walking /etc itself would cost as much as the rest of its root)."""
    global _SECRETS
    with _SECRETS_LOCK:
        if time.monotonic() - _SECRETS[0] > max_age_s:
            _SECRETS = (time.monotonic(), rootfs.etc_secrets())
        return _SECRETS[1]


_KEEP = ("stdout", "stderr", "status")


@dataclass
class _Running:
    """A started sandbox: its process, what it has written so far, and when it must be done."""

    program: Program
    proc: subprocess.Popen
    status: BinaryIO
    cgroups: SandboxCgroups
    start: float
    deadline: float
    data: dict[str, bytearray] = field(default_factory=lambda: {n: bytearray() for n in _KEEP})
    seen: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_KEEP, 0))
    open_streams: int = 3
    killed: bool = False  # by the host, at its deadline
    stopped: bool = False  # by the host, because the leader was done

    def streams(self) -> dict[str, bytes]:
        keep = self.program.limits.max_output_bytes
        out = {name: bytes(buf) for name, buf in self.data.items()}
        out["truncated"] = b"1" if any(self.seen[n] > keep for n in ("stdout", "stderr")) else b""
        out["host_killed"] = b"1" if self.killed and not self.stopped else b""
        return out


def _start(
    stack: contextlib.ExitStack, program: Program, caps: SandboxCapabilities, channel: tuple[int, ...]
) -> _Running:
    workdir = tempfile.mkdtemp(prefix="evalkit-sandbox-")
    stack.callback(_remove_tree, workdir)
    Path(workdir, "prog.py").write_text(program.source)
    stdin = program.stdin.encode() if isinstance(program.stdin, str) else program.stdin
    Path(workdir, "stdin.txt").write_bytes(stdin)
    limits = program.limits
    # The pids limit counts the sandbox's first process too; the memory limit covers it and its tmpfs.
    cgroups = stack.enter_context(
        SandboxCgroups(caps.pids_cgroup, caps.memory_cgroup, limits.max_procs + 1, limits.memory_mb)
    )
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
        "hide": list(program.hide),
        "secrets": _etc_secrets() if caps.level == "namespaces" else None,
        "channel": list(channel),
        "site": program.site,
    }
    cmd = [sys.executable, "-I", "-S", "-c", _INIT_BOOT, marshal.dumps(cfg).hex()]
    if caps.level == "namespaces":
        cmd = [shutil.which("unshare") or "unshare", *_UNSHARE, *cmd]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(status_w, *channel),
            start_new_session=True,
        )
    except BaseException:
        os.close(status_r)
        raise
    finally:
        os.close(status_w)
    status = os.fdopen(status_r, "rb")
    stack.callback(status.close)
    stack.callback(proc.__exit__, None, None, None)  # closes its pipes and reaps it
    return _Running(program, proc, status, cgroups, start, start + limits.timeout_s + _GRACE_S)


def _collect(runs: list[_Running], grace_s: float) -> None:
    """Read every sandbox's stdout, stderr and status until all close; kill a sandbox past its deadline,
    and the others `grace_s` after the first (the leader) is done."""
    sel = selectors.DefaultSelector()
    for run in runs:
        for name, pipe in (("stdout", run.proc.stdout), ("stderr", run.proc.stderr), ("status", run.status)):
            assert pipe is not None
            sel.register(pipe, selectors.EVENT_READ, (run, name))
    leader = runs[0]
    while sel.get_map():
        now = time.monotonic()
        for run in runs:
            if run.open_streams and now >= run.deadline:
                if run.killed:  # a pipe still held open by something we could not kill; stop reading it
                    for key in [k for k in sel.get_map().values() if k.data[0] is run]:
                        sel.unregister(key.fileobj)
                    run.open_streams = 0
                    continue
                _kill_group(run.proc)
                run.cgroups.kill()
                run.killed, run.deadline = True, time.monotonic() + 5.0
        if not sel.get_map():
            break
        left = min(run.deadline for run in runs if run.open_streams) - time.monotonic()
        for key, _ in sel.select(timeout=max(0.0, left)):
            run, name = key.data
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                run.open_streams -= 1
                if run is leader and not run.open_streams:
                    for other in runs[1:]:
                        if other.open_streams and other.deadline > time.monotonic() + grace_s:
                            other.deadline, other.stopped = time.monotonic() + grace_s, True
                continue
            keep = 1 << 20 if name == "status" else run.program.limits.max_output_bytes
            run.data[name] += chunk[: max(0, keep - len(run.data[name]))]
            run.seen[name] += len(chunk)
    sel.close()
    for run in runs:
        if run.killed or run.proc.poll() is None:
            _kill_group(run.proc)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _outcome(streams: dict[str, bytes], limits: Limits, wall_s: float, stopped: bool = False) -> Outcome:
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
    st = st if isinstance(st, dict) else {}
    if stopped:
        return replace(base, status="failed", detail="stopped by the host once the judge was done")
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
