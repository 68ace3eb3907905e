"""Every file evalkit writes goes through here, so that a write can fail without losing anything.

A file is written to a temporary file in the same directory, flushed to disk (fsync), then renamed over
its path, and the directory is synced: a reader, a crash, a full disk or a file-size limit leaves the
old file or the new one, never part of either, and a failed write removes its temporary file. A
directory written as a whole (a checkpoint) is filled in a temporary sibling and renamed into place the
same way (`atomic_directory`).

New files and directories get the mode ordinary tools give them: 0666 and 0777 less the umask (0644
and 0755 under umask 022), so a shared results folder stays readable by the team. A file that is
rewritten keeps its mode, and a symlink keeps pointing where it did: its target is rewritten.

Temporary names start with a dot and end in `TEMP_SUFFIX`. Only a killed process leaves one behind;
`remove_stale_temps` clears them where one process has the directory to itself (a locked run).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError

TEMP_SUFFIX = ".evalkit-tmp"
# Errors that say the disk (or the process's allowance of it) is full, not that the path is wrong.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class UnwritableError(EvalkitError):
    """An output path that cannot be written; the CLI names the option it came from.

    `hint` is None when the fix is another path (the CLI then names the option to change).
    """

    def __init__(self, path: str | Path, reason: str, hint: str | None = None) -> None:
        self.path, self.reason, self.hint = Path(path), reason, hint
        super().__init__(f"cannot write {path} ({reason}); {hint or 'pass a writable path'}")

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a worker process (plots), re-raised here
        return (type(self), (str(self.path), self.reason, self.hint))


def cannot_write(path: str | Path, error: OSError) -> UnwritableError:
    """The error for `path`, with the reason a user can act on (an ancestor that is a file, a full disk)."""
    path = Path(path)
    reason = error.strerror or str(error)
    if error.errno in _NO_SPACE:
        fix = "raise the file-size limit (ulimit -f)" if error.errno == errno.EFBIG else "free space on its file system"
        return UnwritableError(path, reason, f"{fix} and retry; a file already there is unchanged")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return UnwritableError(path, f"{parent} is not a directory")
            break
    if path.is_dir():
        return UnwritableError(path, "it is a directory")
    return UnwritableError(path, reason)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` so that a reader sees the old file or the new one, never half of either.

    A path that cannot be written (no permission, a parent that is a file, a full disk) is an
    UnwritableError, and the file already at `path` is left as it was. A device, a pipe or a descriptor
    (--junit /dev/stdout) has no old contents to keep and is written to directly.
    """
    path = Path(path)
    try:
        mode = _mode_of(path)
        if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or _names_a_descriptor(path)):
            with open(path, "ab") as f:  # appended: `> out.txt` keeps what the command printed before
                f.write(data)
            return path
        target = Path(os.path.realpath(path)) if path.is_symlink() else path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(target.parent, target.name, lambda p: os.open(p, _CREATE, 0o666))
    except OSError as e:
        raise cannot_write(path, e) from None
    try:
        try:
            if mode is not None and stat.S_ISREG(mode):
                os.fchmod(fd, stat.S_IMODE(mode))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise cannot_write(path, e) from None
        raise
    _sync_directory(target.parent)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """`write_bytes_atomic` of the UTF-8 text, line endings exactly as given."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """A new temporary sibling of `path` to fill; when the block ends without error, it becomes `path`.

    `path` must be absent or an empty directory, also when the block ends: a directory that another
    process filled meanwhile is an EvalkitError and is left alone. On any error the temporary
    directory is removed and `path` is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = _mode_of(path)
        _, tmp = _create_temp(path.parent, path.name, lambda p: os.mkdir(p, 0o777))
    except OSError as e:
        raise cannot_write(path, e) from None
    try:
        made = stat.S_IMODE(os.stat(tmp).st_mode)  # 0777 less the umask
        if mode is not None and stat.S_ISDIR(mode):
            os.chmod(tmp, stat.S_IMODE(mode))
        yield tmp
        _sync_tree(tmp, made)
        try:
            os.rename(tmp, path)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise EvalkitError(f"{path} exists and is not empty; choose a new directory") from None
            raise
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, UnwritableError) and tmp in e.path.parents:  # name the file as it would have been
            raise UnwritableError(path / e.path.relative_to(tmp), e.reason, e.hint) from None
        if isinstance(e, OSError):
            raise cannot_write(path, e) from None
        raise
    _sync_directory(path.parent)


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Remove the temporary files and directories that killed writers left under `directory`.

    Only for a directory no other process writes to at the time (a run directory under its lock):
    another writer's temporary file would be removed from under it.
    """
    removed = []
    for p in sorted(Path(directory).rglob(f".*{TEMP_SUFFIX}")):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW


def _create_temp(directory: Path, name: str, make: Any) -> tuple[Any, Path]:
    """A fresh hidden name beside `name`, made by `make` (created with 0666/0777, so the umask applies)."""
    for _ in range(100):
        tmp = directory / f".{name[:64]}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        try:
            return make(tmp), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(directory))


def _names_a_descriptor(path: Path) -> bool:
    """/dev/stdout, /dev/fd/N, /proc/self/fd/N: a descriptor the process holds, whatever it is open on.

    Renaming over the file behind it would cut the descriptor off from it, so it is written in place.
    """
    p = os.path.abspath(path)
    for _ in range(40):  # the kernel's limit on links followed
        if p.startswith(("/proc/", "/dev/fd/")):
            return True
        if not os.path.islink(p):
            return False
        p = os.path.join(os.path.dirname(p), os.readlink(p))
    return False


def _mode_of(path: Path) -> int | None:
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        return None


def _sync_tree(root: Path, mode: int) -> None:
    """fsync every file and directory under `root`, so its rename publishes contents that are on disk.

    Files that libraries wrote there (transformers writes weights 0600) get the umask's mode too:
    `mode` & 0666 for a file, `mode` for a directory below `root`.
    """
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fchmod(fd, mode & 0o666)
                os.fsync(fd)
            finally:
                os.close(fd)
        if dirpath != str(root):
            os.chmod(dirpath, mode)
        _sync_directory(Path(dirpath))


def _sync_directory(path: Path) -> None:
    """fsync a directory, so a rename in it survives a crash; file systems that cannot do that are skipped."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise cannot_write(path, e) from None
    finally:
        os.close(fd)
