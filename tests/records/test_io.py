"""The one atomic writer: a failed write (full disk, file-size limit, kill) loses nothing and leaves nothing.

Every command that rewrites a file is run against a full disk; new files and directories take the
umask's mode, rewritten files keep theirs.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.errors import EvalkitError
from evalkit.records.io import (
    TEMP_SUFFIX,
    UnwritableError,
    atomic_directory,
    remove_stale_temps,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
SMALL = DATA / "records" / "small.json"
README = DATA / "golden" / "readme_before.md"
CARD = DATA / "records" / "ruyi_tables.md"


def _temps(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(TEMP_SUFFIX) or p.name.endswith(".tmp")]


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _evalkit(args: list[str], *, fsize: int | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m evalkit ARGS` in a subprocess, under a file-size limit of `fsize` bytes if given."""

    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "evalkit", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        preexec_fn=limit,
        timeout=300,
    )


# --- a full disk or a file-size limit --------------------------------------------------------------


def _readme(tmp: Path) -> list[str]:
    shutil.copyfile(README, tmp / "README.md")
    return ["readme", str(tmp / "README.md"), "--results", str(SMALL)]


def _import_table(tmp: Path) -> list[str]:
    (tmp / "pub.json").write_text('{"old": "record"}\n', encoding="utf-8")
    return ["import-table", str(CARD), "--out", str(tmp / "pub.json")]


def _junit(tmp: Path) -> list[str]:
    (tmp / "junit.xml").write_text("<old/>\n", encoding="utf-8")
    rerun = json.loads(SMALL.read_text(encoding="utf-8")) | {"run_id": "small-rerun"}  # not the reference itself
    (tmp / "candidate.json").write_text(json.dumps(rerun), encoding="utf-8")
    return [
        "regress",
        "--reference",
        str(SMALL),
        "--candidate",
        str(tmp / "candidate.json"),
        "--junit",
        str(tmp / "junit.xml"),
    ]


def _report(tmp: Path) -> list[str]:
    (tmp / "rep" / "plots").mkdir(parents=True)
    (tmp / "rep" / "report.md").write_text("# the old report\n", encoding="utf-8")
    (tmp / "rep" / "monotonicity.json").write_text("{}\n", encoding="utf-8")
    (tmp / "rep" / "plots" / "monotonicity_average.png").write_bytes(b"old plot")
    return ["report", str(SMALL), "--out", str(tmp / "rep")]


@pytest.mark.parametrize("command", [_readme, _import_table, _junit, _report], ids=lambda c: c.__name__[1:])
def test_a_file_size_limit_leaves_every_existing_file_as_it_was(tmp_path, command):
    """Each write fails past 64 bytes (EFBIG, as a full disk would): old files intact, one line, no temporary."""
    args = command(tmp_path)
    before = _snapshot(tmp_path)
    res = _evalkit(args, fsize=64)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    [line] = [ln for ln in res.stderr.splitlines() if not ln.startswith("warning: ")]
    assert line.startswith("error: cannot write ") and "File too large" in line
    assert line.endswith(
        "(File too large); raise the file-size limit (ulimit -f) and retry; a file already there is unchanged"
    )
    after = _snapshot(tmp_path)
    assert {k: after.get(k) for k in before} == before
    assert _temps(tmp_path) == []


def test_a_full_disk_mid_write_leaves_the_readme_as_it_was(tmp_path, monkeypatch):
    from evalkit.reporting.readme import update_readme

    (readme := tmp_path / "README.md").write_bytes(README.read_bytes())
    real_write = os.write

    def full(fd: int, data: bytes) -> int:
        if len(data) > 100:
            real_write(fd, bytes(data[:100]))  # part of it lands, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(UnwritableError) as e:
        update_readme(readme, [SMALL])
    assert str(e.value) == (
        f"cannot write {readme} (No space left on device); free space on its file system and retry; "
        "a file already there is unchanged"
    )
    assert readme.read_bytes() == README.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]


def test_a_failed_fsync_or_rename_removes_the_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    write_json_atomic(target, {"v": 1})
    before = target.read_bytes()
    for name in ("fsync", "replace"):
        with monkeypatch.context() as m:
            m.setattr(os, name, lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, os.strerror(errno.EIO))))
            with pytest.raises(UnwritableError, match=r"\(Input/output error\)"):
                write_json_atomic(target, {"v": 2})
        assert target.read_bytes() == before and sorted(tmp_path.iterdir()) == [target]


def test_a_failed_directory_write_leaves_nothing(tmp_path, monkeypatch):
    from evalkit.load.tiny import make_tiny

    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(UnwritableError, match=r"cannot write .*/tiny/[\w.]+ \(No space left\); free space"):
        make_tiny(tmp_path / "tiny")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "x.txt"

    def interrupt(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, "x")
    with pytest.raises(KeyboardInterrupt), atomic_directory(tmp_path / "d") as tmp:
        (tmp / "f").write_text("x")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writer_leaves_only_a_temporary_file_that_a_sweep_removes(tmp_path):
    """SIGKILL between writing and renaming: the old file is intact; the leftover is recognisably ours."""
    target = tmp_path / "progress.json"
    target.write_text('{"old": true}\n', encoding="utf-8")
    code = (
        "import os, signal, sys\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from evalkit.records.io import write_json_atomic\n"
        "write_json_atomic(sys.argv[1], {'new': True})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code, str(target)], env=env, timeout=60)
    assert res.returncode == -signal.SIGKILL
    assert target.read_text(encoding="utf-8") == '{"old": true}\n'
    [left] = _temps(tmp_path)
    assert left.name.startswith(".progress.json.")
    assert remove_stale_temps(tmp_path) == [left]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.json"]


def test_blocked_paths_are_named(tmp_path):
    (tmp_path / "f").write_text("x", encoding="utf-8")
    with pytest.raises(UnwritableError, match=r"cannot write .*/f/g/x.json \(.*/f is not a directory\)"):
        write_json_atomic(tmp_path / "f" / "g" / "x.json", {})
    (tmp_path / "d").mkdir()
    with pytest.raises(EvalkitError, match=r"cannot write .*/d \(it is a directory\)"):
        write_text_atomic(tmp_path / "d", "x")
    assert list((tmp_path / "d").iterdir()) == []
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x", encoding="utf-8")
    with pytest.raises(EvalkitError, match=r"full exists and is not empty"), atomic_directory(tmp_path / "full"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f", "full"]


# --- modes -----------------------------------------------------------------------------------------


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_files_and_directories_take_the_umask(tmp_path, umask):
    write_text_atomic(tmp_path / "a.txt", "a")
    with atomic_directory(tmp_path / "ckpt") as tmp:
        write_bytes_atomic(tmp / "w.bin", b"w")
    assert _mode(tmp_path / "a.txt") == 0o666 & ~umask  # 0644 under 022, 0640 under 027
    assert _mode(tmp_path / "ckpt") == 0o777 & ~umask
    assert _mode(tmp_path / "ckpt" / "w.bin") == 0o666 & ~umask


def test_every_file_of_a_report_takes_the_umask(tmp_path, umask):
    from evalkit.reporting.build import report

    report([SMALL], tmp_path / "rep")
    files = [p for p in (tmp_path / "rep").rglob("*") if p.is_file()]
    assert {"report.md", "monotonicity.json"} <= {p.name for p in files} and len(files) > 3
    assert {str(p.relative_to(tmp_path)): _mode(p) for p in files} == {
        str(p.relative_to(tmp_path)): 0o666 & ~umask for p in files
    }


def test_every_file_of_an_exported_checkpoint_takes_the_umask(tmp_path, umask, tiny_path):
    """transformers writes the weights 0600; the published checkpoint is readable as the umask allows."""
    from evalkit.load.family import load_family

    out = load_family(tiny_path).export_branch("2", tmp_path / "e3b")
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert "model.safetensors" in {p.name for p in files}
    assert {p.name: _mode(p) for p in files} == {p.name: 0o666 & ~umask for p in files}
    assert _mode(out) == 0o777 & ~umask and _temps(tmp_path) == []


@pytest.mark.parametrize("mode", [0o600, 0o664, 0o755])
def test_a_rewritten_file_keeps_its_mode(tmp_path, umask, mode):
    from evalkit.reporting.readme import update_readme

    readme = tmp_path / "README.md"
    readme.write_bytes(README.read_bytes())
    readme.chmod(mode)
    assert update_readme(readme, [SMALL]).changed
    assert _mode(readme) == mode


def test_a_symlinked_file_stays_a_link_to_the_rewritten_target(tmp_path):
    from evalkit.reporting.readme import update_readme

    (tmp_path / "docs").mkdir()
    target = tmp_path / "docs" / "README.md"
    target.write_bytes(README.read_bytes())
    link = tmp_path / "README.md"
    link.symlink_to("docs/README.md")
    update_readme(link, [SMALL])
    assert link.is_symlink() and os.readlink(link) == "docs/README.md"
    assert target.read_bytes() != README.read_bytes() and link.read_bytes() == target.read_bytes()
    assert _temps(tmp_path) == []


def test_a_pipe_is_written_directly(tmp_path):
    """--junit /dev/stdout, say: there is no old file to keep, and the pipe must stay a pipe.

    A pipe made here, never /dev/null: a writer that got this wrong would replace the device.
    """
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert write_text_atomic(fifo, "<testsuites/>\n") == fifo
        assert os.read(reader, 100) == b"<testsuites/>\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and sorted(tmp_path.iterdir()) == [fifo]


def test_a_descriptor_is_written_in_place(tmp_path):
    """--junit /dev/stdout with stdout redirected to a file: the file the shell holds gets the XML after
    what the command printed, and is not replaced by a new file that the shell would not see."""
    out = tmp_path / "out.txt"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"the table\n")
        inode = os.fstat(fd).st_ino
        write_text_atomic(f"/dev/fd/{fd}", "<testsuites/>\n")
        assert os.stat(out).st_ino == inode
    finally:
        os.close(fd)
    assert out.read_bytes() == b"the table\n<testsuites/>\n" and sorted(tmp_path.iterdir()) == [out]


def test_text_is_written_byte_for_byte(tmp_path):
    write_text_atomic(tmp_path / "crlf.md", "a\r\nb\n£")
    assert (tmp_path / "crlf.md").read_bytes() == "a\r\nb\n£".encode()
    write_json_atomic(tmp_path / "x.json", {"名": 1})
    assert json.loads((tmp_path / "x.json").read_text(encoding="utf-8")) == {"名": 1}
