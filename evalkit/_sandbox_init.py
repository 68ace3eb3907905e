"""The sandbox's first process: confine itself, run one program, clean up, report.

Run as a script (stdlib only, never imported by evalkit) with one JSON argument:
    {"mode": "namespaces" | "rlimits", "workdir", "python", "limits": {...}, "uid": int | null,
     "status_fd": int, "tmpfs_mb": int, "pids_cgroup": str | null}

In "namespaces" mode it is PID 1 of fresh user, mount, PID and network namespaces (started by
`unshare`). It makes every mount read-only, mounts a private procfs and private tmpfs on /tmp,
/var/tmp, /dev/shm and the working directory, then forks the program with rlimits, no capabilities
and no_new_privs. When the program exits, PID 1 exits and the kernel kills whatever it left behind.

In "rlimits" mode (no namespaces available) it is a child subreaper instead: orphans re-parent to
it, and it kills every descendant once the program is done. When run as root it drops the program
to an unprivileged uid so RLIMIT_NPROC applies and root-owned paths are not writable, and it
installs an audit hook that refuses sockets.

Any failure to confine fails closed: the program is never started and the status says why.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import time

_libc = ctypes.CDLL(None, use_errno=True)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
MS_REMOUNT, MS_BIND, MNT_DETACH = 0x20, 0x1000, 2
_DEVICES = ("null", "zero", "full", "random", "urandom")
SYS_MOUNT_SETATTR = 442  # the same number on every architecture since Linux 5.12
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG = 36, 1
TIMEOUT_EXIT = 124


class _Timeout(Exception):
    pass


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _readonly_everything() -> None:
    """Make every mount under / read-only, nosuid and nodev in this mount namespace."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    ret = _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr),
                        ctypes.sizeof(attr))
    if ret == 0:
        return
    # Kernels before 5.12: remount each mount point read-only, keeping its locked flags.
    with open("/proc/self/mountinfo") as f:
        rows = [line.split() for line in f]
    for row in sorted(rows, key=lambda r: r[4].count("/")):
        target = row[4].replace("\\040", " ")
        opts = set(row[5].split(","))
        flags = MS_RDONLY | MS_NOSUID | MS_NODEV | (MS_NOEXEC if "noexec" in opts else 0)
        _mount(None, target, None, MS_REMOUNT | MS_BIND | flags)


def _confine_filesystem(workdir: str, tmpfs_mb: int, keep: list[str]) -> list[str]:
    """Read-only view of the host, private writable tmpfs for scratch space. Returns notes.

    `keep` are directories under the scratch mounts (a venv in /tmp, say) that the program needs:
    they are bound back, read-only, at the same paths once the tmpfs covers their parents.
    """
    notes = []
    kept = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in keep if os.path.isdir(path)]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _readonly_everything()
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    except OSError:
        # procfs refused (a masked /proc in a container): hide the host's process table instead.
        _mount("tmpfs", "/proc", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k")
        notes.append("procfs hidden (could not mount a private one)")
    size = f"size={tmpfs_mb}m,mode=1777"
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, size)
    _private_dev(size)
    if os.path.isdir("/var/tmp"):
        _mount("tmpfs", "/var/tmp", "tmpfs", MS_NOSUID | MS_NODEV, size)
    for path, fd in kept:
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        os.close(fd)
    os.makedirs(workdir, exist_ok=True)
    if not os.access(workdir, os.W_OK) or _is_readonly(workdir):
        _mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, size)
    return notes


def _private_dev(scratch_opts: str) -> None:
    """Replace /dev by a tmpfs holding only null, zero, full, random and urandom (no disks)."""
    stage = "/tmp/.evalkit-dev"  # /tmp is already private here
    os.mkdir(stage)
    names = [n for n in _DEVICES if os.path.exists(f"/dev/{n}")]
    for name in names:
        open(f"{stage}/{name}", "w").close()
        _mount(f"/dev/{name}", f"{stage}/{name}", None, MS_BIND)
    _mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=1m,mode=755")
    for name in names:
        open(f"/dev/{name}", "w").close()
        _mount(f"{stage}/{name}", f"/dev/{name}", None, MS_BIND)
        # The bind inherited nodev from the read-only pass; clear it for this one node only.
        _mount(None, f"/dev/{name}", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC)
        _check(_libc.umount2(f"{stage}/{name}".encode(), MNT_DETACH), f"umount {stage}/{name}")
        os.unlink(f"{stage}/{name}")
    os.rmdir(stage)
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", f"/dev/{name}")
    os.symlink("/proc/self/fd", "/dev/fd")
    os.mkdir("/dev/shm")
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, scratch_opts)
    _mount(None, "/dev", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "size=1m,mode=755")


def _is_readonly(path: str) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def _drop_capabilities() -> None:
    """No capabilities now or after exec (we are uid 0 inside the user namespace)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop bounding capability")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable for both 32-bit words: all zero
    _check(_libc.capset(header, data), "capset")


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
    os.closerange(3, 1 << 16)
    os.setsid()
    os.chdir(workdir)
    os.umask(0o077)
    _set_limits(cfg["limits"])
    if cfg["mode"] == "namespaces":
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _drop_capabilities()
        argv = [cfg["python"], "-I", "prog.py"]
    else:
        if cfg.get("uid") is not None:
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        argv = [cfg["python"], "-I", "-c", _AUDIT_GUARD + "exec(compile(open('prog.py').read(), 'prog.py', 'exec'))"]
    env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8",
           "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
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
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _on_alarm(signum: int, frame: object) -> None:
    raise _Timeout


def _supervise(cfg: dict, stdin_fd: int, notes: list[str]) -> dict:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _exec_program(cfg, stdin_fd)
        except BaseException as e:  # noqa: BLE001 - report anything, then die without cleanup handlers
            os.write(2, f"sandbox: could not start the program: {e}\n".encode())
        os._exit(127)
    os.close(stdin_fd)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(cfg["limits"]["timeout_s"]))
    status: dict = {"notes": notes}
    try:
        _, wstatus, usage = os.wait4(pid, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        status["exit_code"] = os.waitstatus_to_exitcode(wstatus)
        status["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 4)
        status["max_rss_kb"] = usage.ru_maxrss
    except _Timeout:
        status["timed_out"] = True
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    status["wall_s"] = round(time.monotonic() - start, 4)
    _kill_descendants()
    return status


def main() -> None:
    cfg = json.loads(sys.argv[1])
    status_fd = int(cfg["status_fd"])
    stdin_fd = os.open(os.path.join(cfg["workdir"], "stdin.txt"), os.O_RDONLY)
    try:
        if cfg.get("pids_cgroup"):
            # Counts every process and thread of the sandbox, whatever its uid (root ignores NPROC).
            with open(os.path.join(cfg["pids_cgroup"], "cgroup.procs"), "w") as f:
                f.write("0")
        if cfg["mode"] == "namespaces":
            if os.getpid() != 1:
                raise RuntimeError("expected to be PID 1 of a new PID namespace")
            with open(os.path.join(cfg["workdir"], "prog.py"), "rb") as f:
                src = f.read()
            notes = _confine_filesystem(cfg["workdir"], int(cfg["tmpfs_mb"]), list(cfg.get("keep", ())))
            with open(os.path.join(cfg["workdir"], "prog.py"), "wb") as f:
                f.write(src)
        else:
            _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "child subreaper")
            notes = []
            if cfg.get("uid") is not None:
                for name in ("", "prog.py", "stdin.txt"):
                    os.chown(os.path.join(cfg["workdir"], name), cfg["uid"], cfg["uid"])
        status = _supervise(cfg, stdin_fd, notes)
    except BaseException as e:  # noqa: BLE001 - fail closed and say why
        status = {"error": f"{type(e).__name__}: {e}"}
    os.write(status_fd, json.dumps(status).encode())
    os.close(status_fd)
    sys.exit(0)


if __name__ == "__main__":
    main()
