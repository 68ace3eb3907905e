"""The sandbox's first process: confine itself, run one program, clean up, report.

Stdlib only, never imported by evalkit: the host runs it (from its cached bytecode) with one argument,
hex-encoded marshal of:
    {"mode": "namespaces" | "rlimits", "workdir", "python", "limits": {...}, "uid": int | null,
     "status_fd": int, "tmpfs_mb": int, "cgroups": [leaf cgroup dirs], "reveal": [interpreter paths],
     "hide": [host paths shown empty], "secrets": [what to cover under /etc] | null (walk it),
     "channel": [fds handed to the program as 3, 4, ...],
     "site": bool (false: the program's interpreter runs with -S)}

It first joins the sandbox's cgroups (a pids and a memory limit for everything it starts).

In "namespaces" mode it is PID 1 of fresh user, mount, PID, network and IPC namespaces (started by
`unshare`). It builds a minimal root on a fresh tmpfs: read-only binds of the system directories
(/usr, /bin, /sbin, /lib*), of /etc with every file an unprivileged user could not read covered, and
of the interpreter's prefixes and executable ("reveal"), wherever they live; a private procfs, a
/dev holding only null, zero, full, random and urandom, private tmpfs on /tmp and /dev/shm, and the
working directory. It pivots into that root and detaches the host's, so nothing else of the host
(/root, /home, /run, /var, /srv, /mnt, its sockets, the repository) exists for the program. Then it
forks the program with rlimits, no capabilities, no_new_privs and no way to make a nested user
namespace (which would give it capabilities again, over its own namespaces). When the program exits, PID 1
exits and the kernel kills whatever it left behind. PID 1 sets no timer and ignores SIGINT, so
the program cannot change its verdict by signalling it.

In "rlimits" mode (no namespaces available) it is a child subreaper instead: orphans re-parent to
it, and it kills every descendant once the program is done. When run as root it drops the program
to an unprivileged uid so RLIMIT_NPROC applies and root-owned paths are not writable (and refuses
to run the program as root), and it installs an audit hook that refuses sockets.

Any failure to confine fails closed: the program is never started and the status says why.
"""

from __future__ import annotations

import _frozen_importlib_external  # the import system's own, always loaded: its loader caches bytecode
import _signal as signal  # signal's C module: signal.py would import enum, a good part of start-up
import ctypes
import marshal
import os
import resource
import select
import sys
import time
import types

_libc = ctypes.CDLL(None, use_errno=True)


def _load_sibling(name: str) -> types.ModuleType:
    """A stdlib-only module beside this file, loaded by path (with its cached bytecode): this script runs
    isolated (`-I -S`), so evalkit is not importable here, and after the pivot the file is gone from view."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    module = types.ModuleType(f"evalkit_sandbox_{name}")
    module.__file__ = path
    sys.modules[module.__name__] = module
    _frozen_importlib_external.SourceFileLoader(module.__name__, path).exec_module(module)
    return module


rootfs = _load_sibling("rootfs")

PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG = 36, 1


def _drop_capabilities() -> None:
    """No capabilities now or after exec (we are uid 0 inside the user namespace)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        rootfs.check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop bounding capability")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable for both 32-bit words: all zero
    rootfs.check(_libc.capset(header, data), "capset")


def _set_limits(limits: dict) -> None:
    cpu = int(limits["cpu_s"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    mem = int(limits["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    # NPROC counts every process of this (user namespace, uid), PID 1 included.
    resource.setrlimit(resource.RLIMIT_NPROC, (int(limits["max_procs"]) + 1,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


_AUDIT_GUARD = (
    "import sys\n"
    "def _evalkit_no_network(event, args):\n"
    "    if event.startswith('socket.') and event != 'socket.gethostname':\n"
    "        raise PermissionError('network access is disabled in the evalkit sandbox')\n"
    "sys.addaudithook(_evalkit_no_network)\n"
    "del _evalkit_no_network\n"
)


def _exec_program(cfg: dict, stdin_fd: int) -> None:
    """In the forked child: enter the workdir, apply limits, drop privileges, exec Python."""
    workdir = cfg["workdir"]
    os.dup2(stdin_fd, 0)
    channel = [os.dup2(fd, 200 + i) for i, fd in enumerate(cfg.get("channel", ()))]
    for i, fd in enumerate(channel):  # the program's channel to another sandbox: fds 3, 4, ...
        os.dup2(fd, 3 + i)
    os.closerange(3 + len(channel), 1 << 16)
    os.setsid()
    os.chdir(workdir)
    os.umask(0o077)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # ignored by the supervisor only; Python then handles it
    _set_limits(cfg["limits"])
    flags = ["-I"] if cfg.get("site", True) else ["-I", "-S"]
    if cfg["mode"] == "namespaces":
        rootfs.check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _drop_capabilities()
        argv = [cfg["python"], *flags, "prog.py"]
    else:
        if cfg.get("uid") is not None:
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
        if os.geteuid() == 0 or os.getuid() == 0:
            raise PermissionError("refusing to run the program as root without namespaces")
        rootfs.check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        argv = [cfg["python"], *flags, "-c", _AUDIT_GUARD + "exec(compile(open('prog.py').read(), 'prog.py', 'exec'))"]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    os.execve(cfg["python"], argv, env)


def _children() -> list[int]:
    pids: list[int] = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def _kill_descendants() -> None:
    """As a subreaper: kill and reap every descendant until none is left."""
    for _ in range(1000):
        pids = _children()
        if not pids:
            return
        for pid in pids:  # (no contextlib.suppress here: importing contextlib would slow every sandbox's start)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                continue


def _wait(pid: int, timeout_s: float) -> tuple[int, resource.struct_rusage] | None:
    """(wait status, usage) of `pid` once it exits, or None after `timeout_s`. No timer and no signal
    handler is involved, so no signal the program sends can end the wait early."""
    deadline = time.monotonic() + timeout_s
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except OSError:  # Linux < 5.3: poll instead
        pidfd = None
    try:
        while True:
            done, wstatus, usage = os.wait4(pid, os.WNOHANG)
            if done:
                return wstatus, usage
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if pidfd is None:
                time.sleep(min(left, 0.01))
            else:
                select.select([pidfd], [], [], left)  # readable once the program has exited
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _supervise(cfg: dict, stdin_fd: int, notes: list[str]) -> dict:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _exec_program(cfg, stdin_fd)
        except BaseException as e:  # noqa: BLE001 - report anything, then die without cleanup handlers
            os.write(2, f"sandbox: could not start the program: {e}\n".encode())
        os._exit(127)
    for fd in (stdin_fd, *cfg.get("channel", ())):  # the channel's ends now belong to the program alone
        os.close(fd)
    status: dict = {"notes": notes}
    waited = _wait(pid, float(cfg["limits"]["timeout_s"]))
    if waited is None:
        status["timed_out"] = True
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    else:
        wstatus, usage = waited
        status["exit_code"] = os.waitstatus_to_exitcode(wstatus)
        status["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 4)
        status["max_rss_kb"] = usage.ru_maxrss
    status["wall_s"] = round(time.monotonic() - start, 4)
    _kill_descendants()
    return status


def _json(value: object) -> str:
    """JSON text for the status (dicts, lists, str, int, float, bool, None), without importing json
    (and re), which would cost every sandbox several milliseconds of start-up."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_json(str(k))}: {_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_json(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + "".join(c if " " <= c <= "~" and c not in '"\\' else _escape(c) for c in value) + '"'
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, float) and (value != value or abs(value) == float("inf")):
        return "null"
    return repr(value)


def _escape(c: str) -> str:
    units = c.encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2))


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the program may signal PID 1; nothing it sends may count
    cfg = marshal.loads(bytes.fromhex(sys.argv[1]))
    status_fd = int(cfg["status_fd"])
    stdin_fd = os.open(os.path.join(cfg["workdir"], "stdin.txt"), os.O_RDONLY)
    try:
        os.unlink(os.path.join(cfg["workdir"], "stdin.txt"))  # the program reads its stdin from fd 0 only
        for leaf in cfg.get("cgroups", ()):
            # Counts and bounds every process of the sandbox, whatever its uid (root ignores NPROC).
            with open(os.path.join(leaf, "cgroup.procs"), "w") as f:
                f.write("0")
        if cfg["mode"] == "namespaces":
            if os.getpid() != 1:
                raise RuntimeError("expected to be PID 1 of a new PID namespace")
            with open(os.path.join(cfg["workdir"], "prog.py"), "rb") as f:
                src = f.read()
            notes = rootfs.confine_filesystem(
                cfg["workdir"],
                int(cfg["tmpfs_mb"]),
                list(cfg.get("reveal", ())),
                tuple(cfg.get("hide", ())),
                cfg.get("secrets"),
            )
            with open(os.path.join(cfg["workdir"], "prog.py"), "wb") as f:
                f.write(src)
        else:
            if os.geteuid() == 0 and cfg.get("uid") is None:
                raise PermissionError("refusing to run the program as root without namespaces")
            rootfs.check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "child subreaper")
            notes = []
            if cfg.get("uid") is not None:
                for name in ("", "prog.py"):
                    os.chown(os.path.join(cfg["workdir"], name), cfg["uid"], cfg["uid"])
        status = _supervise(cfg, stdin_fd, notes)
    except BaseException as e:  # noqa: BLE001 - fail closed and say why
        status = {"error": f"{type(e).__name__}: {e}"}
    os.write(status_fd, _json(status).encode())
    os.close(status_fd)
    sys.exit(0)


if __name__ == "__main__":
    main()
