"""The run lock: one process per run directory, a clear line naming the holder, gone with a killed holder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.errors import EvalkitError
from evalkit.evaluation.lock import LOCK_NAME, run_lock
from evalkit.records.io import TEMP_SUFFIX

ROOT = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from evalkit.evaluation.lock import run_lock\n"
    "with run_lock(Path(sys.argv[1]), 'r1', sys.argv[2]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(600)\n"
)


def hold(run_dir: Path, command: str = "evalkit run --resume r1") -> subprocess.Popen:
    """A process that holds the run's lock until it is killed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir), command], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_second_holder_is_told_who_holds_the_run(tmp_path):
    holder = hold(tmp_path, "evalkit run --out o\n--resume r1")
    try:
        with pytest.raises(EvalkitError) as e, run_lock(tmp_path, "r1", "second"):
            pass
        message = str(e.value)
        assert message.startswith(f"run r1 is in use by pid {holder.pid} on {socket.gethostname()} ")
        assert "(evalkit run --out o --resume r1, since 20" in message and "\n" not in message
        assert message.endswith("wait for it to finish or stop it (its lock goes with it), then resume")
    finally:
        holder.kill()
        holder.wait()
    assert holder.returncode == -signal.SIGKILL
    with run_lock(tmp_path, "r1", "after the kill"):  # the kernel released the killed holder's lock
        assert "after the kill" in (tmp_path / LOCK_NAME).read_text()
    assert list(tmp_path.iterdir()) == []  # the lock file goes with its holder


def test_the_lock_holds_within_one_process_too(tmp_path):
    with run_lock(tmp_path, "r1", "first"):
        with pytest.raises(EvalkitError, match=r"run r1 is in use by pid \d+"), run_lock(tmp_path, "r1", "second"):
            pass
        assert (tmp_path / LOCK_NAME).is_file()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_file_without_details_still_blocks(tmp_path):
    """A holder that has not written its details yet (or a damaged file): still one clear line."""
    import fcntl

    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    os.write(fd, b"\x00garbage")
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        details = r"in use by another process \(it has not written its details yet\)"
        with pytest.raises(EvalkitError, match=details), run_lock(tmp_path, "r1", "second"):
            pass
    finally:
        os.close(fd)


def test_taking_the_lock_removes_what_killed_writers_left(tmp_path):
    (tmp_path / "results").mkdir()
    left = [tmp_path / f".progress.json.ab12cd34{TEMP_SUFFIX}", tmp_path / "results" / f".x.json.0{TEMP_SUFFIX}"]
    for p in left:
        p.write_text("{")
    (tmp_path / f".half-built{TEMP_SUFFIX}").mkdir()
    (tmp_path / "keep.tmp").write_text("not ours")
    with run_lock(tmp_path, "r1", "resume") as removed:
        assert sorted(removed) == sorted([*left, tmp_path / f".half-built{TEMP_SUFFIX}"])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep.tmp", "results"]


def test_an_unwritable_run_directory_is_one_line(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run").chmod(0o500)
    try:
        if os.access(tmp_path / "run", os.W_OK):
            pytest.skip("running as a user that writes anywhere")
        denied = r"cannot write .*/run/run\.lock \(Permission denied\)"
        with pytest.raises(EvalkitError, match=denied), run_lock(tmp_path / "run", "r1", "x"):
            pass
    finally:
        (tmp_path / "run").chmod(0o700)


def test_a_full_disk_when_taking_the_lock_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwrite", full)
    full_disk = r"cannot write .*/run\.lock \(No space left on device\); free space"
    with pytest.raises(EvalkitError, match=full_disk), run_lock(tmp_path, "r1", "x"):
        pytest.fail("the block must not run")
    assert list(tmp_path.iterdir()) == []
