"""One process at a time in a run directory: an OS file lock held for the run's whole life.

`run` and `run --resume` hold `flock` on `<run dir>/run.lock` through an open descriptor, so the kernel
releases it when the process ends in any way (a SIGKILL included) and a stale lock cannot outlive its
holder. A second process that finds the run locked stops with one line naming the holder, read from
the lock file: its pid, host, command and start time. Two resumes would otherwise both redo the
remaining tasks and the record would keep only one of their sessions.

The lock file is the one file evalkit rewrites in place (a lock belongs to a file, not to a name, so it
cannot be replaced by a rename); its holder line is informative only. The holder removes it when the
run ends. While it holds the lock, a process has the run directory to itself, so it also removes the
temporary files of writers killed in an earlier session.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from evalkit.errors import EvalkitError
from evalkit.records.io import cannot_write, remove_stale_temps

LOCK_NAME = "run.lock"


@contextmanager
def run_lock(run_dir: Path, run_id: str, command: str) -> Iterator[list[Path]]:
    """Hold the run's lock for the block; yields the stale temporary files it removed."""
    path = run_dir / LOCK_NAME
    fd = _acquire(path, run_id)
    try:
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        except OSError as e:  # a full disk: one line now, before the run writes anything
            raise cannot_write(path, e) from None
        yield remove_stale_temps(run_dir)
    finally:
        path.unlink(missing_ok=True)  # before the release: whoever locks next creates a fresh file
        os.close(fd)


def _acquire(path: Path, run_id: str) -> int:
    """An open descriptor of the lock file at `path`, locked; or an EvalkitError naming the holder."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
        except OSError as e:
            raise cannot_write(path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise EvalkitError(
                f"run {run_id} is in use by {holder}; wait for it to finish or stop it (its lock goes "
                "with it), then resume"
            ) from None
        except OSError as e:
            os.close(fd)
            raise cannot_write(path, e) from None
        # The previous holder may have removed the file between our open and our lock: then the lock
        # is on a file no one else will find, and the one to hold is the file now at the path.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False)):
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it in the file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        command = " ".join(str(info["command"]).split())  # on one line, however it was typed
        return f"pid {info['pid']} on {info['host']} ({command}, since {info['since']})"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, OSError):
        return "another process (it has not written its details yet)"
