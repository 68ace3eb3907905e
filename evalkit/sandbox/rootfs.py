"""The sandbox's minimal root: a fresh tmpfs holding read-only views of the system directories and the
interpreter, a private /proc, /dev and /tmp and the working directory, pivoted into so nothing else of
the host exists for the program.

Stdlib only, like the sandbox's first process (`init`), which loads this file by path before it
confines itself; evalkit imports it only to list /etc's secrets (`etc_secrets`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

_libc = ctypes.CDLL(None, use_errno=True)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MNT_DETACH = 0x20, 0x1000, 2
SYS_MOUNT_SETATTR = 442  # the same number on every architecture since Linux 5.12
SYS_PIVOT_ROOT = {
    "x86_64": 155,
    "aarch64": 41,
    "arm64": 41,
    "riscv64": 41,
    "loongarch64": 41,
    "ppc64le": 203,
    "ppc64": 203,
    "s390x": 217,
}
SEALED = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
SEALED_DEVICES = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Covered whatever their mode; anything else under /etc that others may not read is covered too.
_ETC_SECRETS = (
    "shadow",
    "shadow-",
    "gshadow",
    "gshadow-",
    "sudoers",
    "sudoers.d",
    "ssh",
    "ssl/private",
    "security/opasswd",
    "credstore",
    "credstore.encrypted",
)
_SCRATCH = ("/tmp", "/dev/shm")
_DEVICES = ("null", "zero", "full", "random", "urandom")


def check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _seal(path: str, attrs: int = SEALED) -> None:
    """Set `attrs` (read-only, nosuid, and nodev or noexec) on the mount at `path` and all below it."""
    attr = _MountAttr(attrs, 0, 0, 0)
    ret = _libc.syscall(
        SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)
    )
    if ret == 0:
        return
    if ctypes.get_errno() != errno.ENOSYS:
        check(ret, f"make {path} read-only")
    # Kernels before 5.12: remount each mount read-only, keeping the flags the kernel locked.
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    below = [p for p in points if p == path or p.startswith(path.rstrip("/") + "/")]
    for target in sorted(set(below), key=lambda p: p.count("/")):
        _mount(None, target, None, MS_REMOUNT | MS_BIND | _mount_flags(attrs) | _locked_flags(target))


def _mount_flags(attrs: int) -> int:
    pairs = (
        (MOUNT_ATTR_RDONLY, MS_RDONLY),
        (MOUNT_ATTR_NOSUID, MS_NOSUID),
        (MOUNT_ATTR_NODEV, MS_NODEV),
        (MOUNT_ATTR_NOEXEC, MS_NOEXEC),
    )
    return sum(ms for attr, ms in pairs if attrs & attr)


def _locked_flags(target: str) -> int:
    """The flags of the mount at `target` that a remount in a user namespace must keep."""
    have = os.statvfs(target).f_flag
    flags = sum(
        ms
        for st, ms in (
            (os.ST_NOEXEC, MS_NOEXEC),
            (os.ST_NODEV, MS_NODEV),
            (os.ST_NOSUID, MS_NOSUID),
            (os.ST_NOATIME, MS_NOATIME),
            (os.ST_NODIRATIME, MS_NODIRATIME),
            (os.ST_RELATIME, MS_RELATIME),
        )
        if have & st
    )
    return flags if have & (os.ST_NOATIME | os.ST_RELATIME) else flags | MS_STRICTATIME


def _under(path: str, dirs: tuple[str, ...] | list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def _make_dirs(root: str, path: str) -> None:
    """Create `path` under `root` as traverse-only directories: the program can pass, not list."""
    current = root
    for part in path.strip("/").split("/"):
        if not part:
            continue
        current = f"{current}/{part}"
        if not os.path.lexists(current):
            os.mkdir(current, 0o111)


def _mirror_links(root: str, path: str, late: bool, depth: int = 0) -> None:
    """Recreate under `root` the host's symlinks along `path`, so that the same path resolves there:
    those under the scratch mounts if `late` (they exist by then), the others if not."""
    if depth > 40:
        raise OSError(errno.ELOOP, f"too many symlinks in {path}")
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/" + "/".join(parts[:i])
        if os.path.islink(prefix):
            target = os.readlink(prefix)
            if _under(prefix, _SCRATCH) == late and not os.path.lexists(root + prefix):
                _make_dirs(root, os.path.dirname(prefix))
                os.symlink(target, root + prefix)
            rest = os.path.join(os.path.dirname(prefix), target, *parts[i:])
            _mirror_links(root, os.path.normpath(rest), late, depth + 1)
            return


def _reveal(root: str, path: str, bound: list[str], late: bool = False) -> None:
    """Show the host's `path` read-only at the same path under `root` (symlinks on the way included).
    Parts under the scratch mounts (a venv in /tmp, say) are made in a second, `late` pass."""
    if not os.path.lexists(path):
        return
    _mirror_links(root, path, late)
    real = os.path.realpath(path)
    if _under(real, _SCRATCH) != late or _under(real, bound):
        return
    if os.path.isdir(real):
        _make_dirs(root, real)
    else:
        _make_dirs(root, os.path.dirname(real))
        if not os.path.lexists(root + real):
            os.close(os.open(root + real, os.O_CREAT | os.O_WRONLY, 0))
    _mount(real, root + real, None, MS_BIND | MS_REC)
    _seal(root + real)  # at once: nothing may ever be written through a bind of the host
    bound.append(real)


def etc_secrets(etc: str = "/etc") -> list[str]:
    """What an unprivileged user could not read under `etc` (shadow, sudoers, private keys), relative to
    it. Walking /etc costs about as much as the rest of building a root, so the host lists it (and
    refreshes the list now and then) and passes it in; without a list, the sandbox walks /etc itself."""
    targets = {os.path.join(etc, name) for name in _ETC_SECRETS}
    for dirpath, dirnames, filenames in os.walk(etc):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and (not mode & stat.S_IROTH or (stat.S_ISDIR(mode) and not mode & stat.S_IXOTH)):
                targets.add(path)
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in targets]
    return sorted(os.path.relpath(path, etc) for path in targets)


def _cover_secrets(etc: str, secrets: list[str] | None) -> None:
    """Cover `secrets` (default: `etc_secrets(etc)`) under the bound /etc with an empty tmpfs
    (directories) or an unusable /dev/null (files)."""
    for name in sorted({*_ETC_SECRETS, *(etc_secrets(etc) if secrets is None else secrets)}):
        path = os.path.join(etc, name)
        if not os.path.lexists(path) or os.path.islink(path):
            continue  # a symlink leads elsewhere in /etc (covered there) or out of the root (dangling)
        _cover(path)


def _cover(path: str) -> None:
    """Show `path` as an empty directory that no one may enter, or as an unreadable empty file."""
    if os.path.isdir(path):
        _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0")
    else:
        _mount("/dev/null", path, None, MS_BIND)


def _hide(root: str, paths: tuple[str, ...] | list[str]) -> None:
    """Cover each host path in `paths` that the root shows (a dataset beside the interpreter, say)."""
    for path in paths:
        real = root + os.path.realpath(path)
        if os.path.lexists(real) and not os.path.islink(real):
            _cover(real)


def confine_filesystem(
    workdir: str, tmpfs_mb: int, reveal: list[str], hide: tuple[str, ...] = (), secrets: list[str] | None = None
) -> list[str]:
    """Build the program's minimal root, with each of `hide` and of /etc's `secrets` covered, and pivot
    into it. Returns notes.

    The root is a tmpfs mounted over the host's working directory (whose files were read already);
    `workdir` becomes a fresh scratch directory at the same path inside it.
    """
    notes = []
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    try:  # this user namespace's own limit: the program gets no nested one (and no capabilities in it)
        with open("/proc/sys/user/max_user_namespaces", "w") as f:
            f.write("0")
    except OSError as e:
        notes.append(f"nested user namespaces allowed (could not forbid them: {e.strerror})")
    root = workdir
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    bound: list[str] = []
    for path in _SYSTEM_DIRS:
        _reveal(root, path, bound)
        if path == "/etc" and "/etc" in bound:
            _cover_secrets(root + "/etc", secrets)
            _seal(root + "/etc")
    for path in reveal:
        _reveal(root, path, bound)
    _hide(root, hide)
    for name in ("proc", "dev", "tmp"):
        os.mkdir(f"{root}/{name}", 0o755)
    if not _under(workdir, _SCRATCH):
        _make_dirs(root, workdir)
    _seal(root)
    try:
        _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    except OSError:
        # procfs refused (a masked /proc in a container): hide the host's process table instead.
        _mount("tmpfs", root + "/proc", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k")
        notes.append("procfs hidden (could not mount a private one)")
    scratch = f"size={tmpfs_mb}m,mode=1777"
    _private_dev(root + "/dev", scratch)
    _mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, scratch)
    for path in reveal:  # an interpreter under /tmp (a venv, say), bound into the private /tmp
        _reveal(root, path, bound, late=True)
    _hide(root, [p for p in hide if _under(os.path.realpath(p), _SCRATCH)])
    if _under(workdir, _SCRATCH):
        os.makedirs(root + workdir, 0o700, exist_ok=True)
    else:
        _mount("tmpfs", root + workdir, "tmpfs", MS_NOSUID | MS_NODEV, scratch)
    _pivot_into(root)
    return notes


def _pivot_into(root: str) -> None:
    """Make `root` the root of this mount namespace and detach the host's root entirely."""
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise RuntimeError(f"pivot_root's system call number is unknown on {os.uname().machine}")
    os.chdir(root)
    check(_libc.syscall(number, b".", b"."), "pivot_root")
    check(_libc.umount2(b".", MNT_DETACH), "detach the host's root")
    os.chdir("/")


def _private_dev(dev: str, scratch_opts: str) -> None:
    """A tmpfs /dev holding only null, zero, full, random and urandom (no disks), and a /dev/shm."""
    _mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=1m,mode=755")
    for name in _DEVICES:
        if os.path.exists(f"/dev/{name}"):
            open(f"{dev}/{name}", "w").close()
            _mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", f"{dev}/{name}")
    os.symlink("/proc/self/fd", f"{dev}/fd")
    os.mkdir(f"{dev}/shm")
    _seal(dev, SEALED_DEVICES)  # read-only; the bound device nodes stay usable
    _mount("tmpfs", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV, scratch_opts)
