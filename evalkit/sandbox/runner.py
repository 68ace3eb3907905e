"""Run untrusted (model-generated) Python programs in a sandbox, one process tree per program.

Each program runs in its own process with a fresh temporary working directory, CPU-time, memory
and process-count limits, and a wall-clock timeout that kills its whole process tree. Where the
kernel allows it (the default), the program also runs in fresh user, mount, PID, network and IPC
namespaces: no network at all, a minimal read-only root (the system directories, /etc without its
secrets, and the interpreter; nothing else of the host) with private tmpfs scratch space, no
capabilities, and nothing of it survives its first process. Where cgroups are writable, a pids and
a memory cgroup bound the whole sandbox and the host kills whatever is left in them. Where
namespaces are not available, the sandbox falls back to rlimits, a timeout, a subreaper that kills
every descendant, an unprivileged uid when run as root (it refuses to run as root without one), and
a Python audit hook refusing sockets, and warns loudly.

    >>> run_program("print(2 + 2)").stdout
    '4\\n'

`run_linked_pairs` runs pairs of programs, each in a sandbox of its own, joined by a channel (a judge
and a contestant: see `judged`). The isolation level in force is `sandbox_capabilities()`;
`EVALKIT_SANDBOX=namespaces|rlimits|auto` (or the `isolation` argument) requires namespaces, forces
the fallback, or picks the strongest.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from evalkit.errors import EvalkitError, did_you_mean
from evalkit.sandbox.cgroups import find_root
from evalkit.sandbox.launch import (
    Level,
    Limits,
    Outcome,
    Program,
    SandboxCapabilities,
    Status,
    run_confined,
    run_linked,
)

__all__ = [
    "ENV_VAR",
    "ISOLATION_CHOICES",
    "Level",
    "Limits",
    "Outcome",
    "Program",
    "SandboxCapabilities",
    "SandboxWarning",
    "Status",
    "run_linked_pairs",
    "run_program",
    "run_programs",
    "sandbox_capabilities",
]

ISOLATION_CHOICES = ("auto", "namespaces", "rlimits")
ENV_VAR = "EVALKIT_SANDBOX"
NOBODY = 65534


class SandboxWarning(RuntimeWarning):
    """The sandbox runs with weaker isolation than the default."""


def sandbox_capabilities(isolation: str | None = None) -> SandboxCapabilities:
    """The strongest isolation available for `isolation` (auto, namespaces, rlimits; default from
    $EVALKIT_SANDBOX, else auto). Probed once per process; warns when it is weaker than namespaces."""
    mode = (isolation or os.environ.get(ENV_VAR) or "auto").strip().lower()
    if mode not in ISOLATION_CHOICES:
        raise did_you_mean("sandbox isolation", mode, ISOLATION_CHOICES)
    caps = _probe(mode)
    if caps.level != "namespaces":
        warnings.warn(
            f"evalkit sandbox is NOT fully isolated: {caps.describe()}. Generated code can reach the "
            "network and read or write files its uid may touch.",
            SandboxWarning,
            stacklevel=2,
        )
    elif caps.missing:
        warnings.warn(f"evalkit sandbox lacks: {', '.join(caps.missing)}", SandboxWarning, stacklevel=2)
    return caps


@functools.cache
def _probe(mode: str) -> SandboxCapabilities:
    pids, memory = find_root("pids"), find_root("memory")
    # Root is exempt from RLIMIT_NPROC (uid 0 in a user namespace still is kernel uid 0): only a pids
    # cgroup or an unprivileged uid bounds the process count.
    nproc_missing = (
        "process-count limit (root ignores RLIMIT_NPROC and no pids cgroup is writable; "
        "the timeout still kills the whole tree)",
    )
    memory_missing = (
        ()
        if memory
        else (
            "sandbox-wide memory limit (no writable memory cgroup: memory_mb bounds each process's address "
            "space, so several processes together may use more)",
        )
    )
    reason = "forced by isolation=rlimits" if mode == "rlimits" else _namespaces_unavailable()
    if not reason:
        limited = os.geteuid() != 0 or pids is not None
        return SandboxCapabilities(
            "namespaces",
            True,
            True,
            True,
            limited,
            pids_cgroup=pids,
            memory_cgroup=memory,
            missing=(*(() if limited else nproc_missing), *memory_missing),
        )
    if mode == "namespaces":
        raise EvalkitError(
            f"the sandbox cannot create namespaces ({reason}); set {ENV_VAR}=auto to run with rlimits only (less safe)"
        )
    uid = None
    if os.geteuid() == 0:
        if not _rlimits_run_ok(NOBODY):
            raise EvalkitError(
                f"refusing to run generated code as root without namespaces ({reason}): the fallback runs it as "
                f"uid {NOBODY} (nobody), which cannot run {sys.executable}; make user namespaces available "
                f"({ENV_VAR}=namespaces), or run evalkit as a non-root user, or with an interpreter that nobody "
                "can read and run (not under /root)"
            )
        uid = NOBODY
    # Without a cgroup, a program of the same uid as its supervisor can kill the supervisor and leave
    # processes behind that nothing kills at the timeout.
    escape_missing = (
        ()
        if pids or memory or uid is not None
        else (
            "cleanup of escaped processes (no writable cgroup: a program can kill its same-uid supervisor and "
            "leave processes running past the timeout)",
        )
    )
    missing = (
        "network isolation",
        "read-only filesystem",
        "PID namespace",
        "a judge out of the completion's reach (the judge and the contestant share a uid, and the datasets "
        "are not hidden: code scores can be forged)",
        *(() if os.geteuid() != 0 or pids else nproc_missing),
        *memory_missing,
        *escape_missing,
    )
    return SandboxCapabilities(
        "rlimits",
        False,
        False,
        False,
        True,
        unprivileged_uid=uid,
        pids_cgroup=pids,
        memory_cgroup=memory,
        missing=missing,
        reason=reason,
    )


def _namespaces_unavailable() -> str:
    """'' if a program runs and is confined in namespaces here, else why not."""
    if shutil.which("unshare") is None:
        return "the util-linux 'unshare' command is not installed"
    caps = SandboxCapabilities("namespaces", True, True, True, True)
    probe = (
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), 1)\nexcept OSError as e:\n"
        "    print(e.errno)\n"
    )
    out = run_confined(probe, Limits(timeout_s=20.0), "", caps)
    if out.status != "passed":
        return f"namespace probe failed: {(out.detail or out.stderr).strip()[-300:]}"
    if out.stdout.strip() != "101":  # ENETUNREACH: the loopback of a fresh network namespace is down
        return f"namespace probe could reach the network: {out.stdout.strip()!r}"
    return ""


def _rlimits_run_ok(uid: int) -> bool:
    """Whether a program runs, as `uid`, in the rlimits fallback."""
    caps = SandboxCapabilities("rlimits", False, False, False, True, unprivileged_uid=uid)
    return run_confined("import os\nprint(os.getuid())", Limits(timeout_s=20.0), "", caps).stdout.strip() == str(uid)


def run_program(source: str, *, limits: Limits = Limits(), stdin: str = "", isolation: str | None = None) -> Outcome:
    """Run one Python program in the sandbox and say how it ended."""
    return run_confined(source, limits, stdin, sandbox_capabilities(isolation))


def run_programs(
    sources: Sequence[str],
    *,
    limits: Limits = Limits(),
    stdins: Sequence[str] | None = None,
    workers: int | None = None,
    isolation: str | None = None,
) -> list[Outcome]:
    """Run many programs concurrently (at most `workers` at once, default: the CPU count), in order."""
    caps = sandbox_capabilities(isolation)
    stdins = list(stdins) if stdins is not None else [""] * len(sources)
    if len(stdins) != len(sources):
        raise EvalkitError(f"got {len(sources)} programs but {len(stdins)} stdin texts; pass one per program")
    workers = max(1, workers or os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(
            pool.map(lambda pair: run_confined(pair[0], limits, pair[1], caps), zip(sources, stdins, strict=True))
        )


def run_linked_pairs(
    pairs: Sequence[tuple[Program, Program]], *, workers: int | None = None, isolation: str | None = None
) -> list[tuple[Outcome, Outcome]]:
    """Run (judge, contestant) pairs concurrently (at most `workers` pairs at once, default: the CPU
    count), in order. The two programs of a pair run in sandboxes of their own, joined by a channel
    (`launch.run_linked`); the contestant is stopped once its judge is done."""
    caps = sandbox_capabilities(isolation)
    workers = max(1, workers or os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda pair: run_linked(pair[0], pair[1], caps), pairs))
