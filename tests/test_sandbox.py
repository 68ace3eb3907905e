"""The sandbox runs hostile programs for real: each must be contained and leave nothing behind."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest

from evalkit._errors import EvalkitError
from evalkit.sandbox import Limits, SandboxWarning, run_program, run_programs, sandbox_capabilities

# Generous wall time: these programs must not time out even on a loaded machine.
FAST = Limits(timeout_s=20.0, cpu_s=5, memory_mb=512, max_procs=16)
SHORT = Limits(timeout_s=4.0, cpu_s=2, memory_mb=512, max_procs=16)
QUIET = pytest.mark.filterwarnings("ignore::evalkit.sandbox.SandboxWarning")
ISOLATIONS = ["namespaces", pytest.param("rlimits", marks=QUIET)]


def _namespaces() -> bool:
    try:
        return sandbox_capabilities("namespaces").level == "namespaces"
    except EvalkitError:
        return False


needs_namespaces = pytest.mark.skipif(not _namespaces(), reason="this kernel refuses user namespaces")


def _procs_with(token: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if token.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_runs_a_program_with_stdin_and_reports_it():
    out = run_program("import sys\nprint(sys.stdin.read().upper())", stdin="hello", limits=FAST)
    assert (out.status, out.exit_code, out.stdout) == ("passed", 0, "HELLO\n")
    failed = run_program("raise ValueError('boom')", limits=FAST)
    assert failed.status == "failed" and failed.exit_code == 1 and "ValueError: boom" in failed.stderr


def test_output_is_truncated_to_the_limit():
    out = run_program("print('x' * 1_000_000)", limits=Limits(max_output_bytes=1000))
    assert out.passed and out.truncated and len(out.stdout) == 1000


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_fork_bomb_is_bounded_and_nothing_survives(isolation):
    token = f"evalkit-bomb-{uuid.uuid4().hex}"
    bomb = ("import os, sys, time\n"
            "n = 0\n"
            "while True:\n"
            "    try:\n"
            "        os.fork(); n += 1\n"
            "    except OSError as e:\n"
            "        print('fork refused', e.errno, flush=True); break\n"
            "time.sleep(60)\n")
    # Re-exec with the token on the command line so the host can find every descendant.
    source = f"import os, sys\nos.execv(sys.executable, [sys.executable, '-c', {bomb!r}, {token!r}])\n"
    out = run_program(source, limits=SHORT, isolation=isolation)
    assert out.status == "timeout", out
    assert "fork refused 11" in out.stdout  # EAGAIN: the process limit stopped it
    deadline = time.monotonic() + 5
    while _procs_with(token) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _procs_with(token) == []


@needs_namespaces
def test_writes_outside_the_workdir_do_not_reach_the_host(tmp_path):
    targets = [tmp_path / "escaped.txt", Path.home() / f".evalkit-escape-{uuid.uuid4().hex}",
               Path(__file__).with_name(f"escape-{uuid.uuid4().hex}.py")]
    source = "import os\n" + "".join(
        f"try:\n    open({str(t)!r}, 'w').write('pwned')\nexcept OSError as e:\n    print(e.errno)\n" for t in targets)
    source += "open('inside.txt', 'w').write('fine')\nprint(os.getcwd())\n"
    out = run_program(source, limits=FAST)
    assert out.passed, out.stderr
    assert all(not t.exists() for t in targets)
    # Read-only outside the scratch mounts; under /tmp the sandbox's private tmpfs lacks the host's folders.
    expected = [str(errno.ENOENT if t.is_relative_to("/tmp") else errno.EROFS) for t in targets]
    assert out.stdout.split()[:3] == expected
    assert not Path(out.stdout.split()[-1]).exists()  # the working directory is gone


@needs_namespaces
def test_no_network_even_to_a_local_listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(6)
    port = server.getsockname()[1]
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(_accept(server)))
    thread.start()
    try:
        out = run_program(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)\n", limits=FAST)
    finally:
        thread.join()
        server.close()
    assert out.status == "failed" and "Network is unreachable" in out.stderr
    assert accepted == [None]


def _accept(server: socket.socket) -> object:
    try:
        conn, _ = server.accept()
        conn.close()
        return "connected"
    except OSError:
        return None


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_infinite_loops_time_out_and_are_killed(isolation):
    busy = run_program("while True:\n    pass\n", limits=SHORT, isolation=isolation)
    assert busy.status == "timeout"  # CPU time, or wall time first on a loaded machine
    asleep = run_program("import time\ntime.sleep(600)\n", limits=Limits(timeout_s=1.5), isolation=isolation)
    assert asleep.status == "timeout" and asleep.wall_s < 5


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_memory_balloon_fails_inside_and_the_host_is_fine(isolation):
    out = run_program("x = []\nwhile True:\n    x.append(bytearray(50_000_000))\n", limits=FAST, isolation=isolation)
    assert out.status == "failed" and "MemoryError" in out.stderr, out
    assert run_program("print('still fine')", limits=FAST, isolation=isolation).stdout == "still fine\n"


def test_fallback_warns_loudly_and_names_what_is_missing():
    with pytest.warns(SandboxWarning, match="NOT fully isolated.*network isolation"):
        caps = sandbox_capabilities("rlimits")
    assert caps.level == "rlimits" and not caps.network_isolated and caps.missing
    with pytest.warns(SandboxWarning):
        out = run_program("import socket\nsocket.socket()", limits=FAST, isolation="rlimits")
    assert out.status == "failed" and "network access is disabled" in out.stderr


def test_fallback_can_be_forced_by_environment(monkeypatch):
    monkeypatch.setenv("EVALKIT_SANDBOX", "rlimits")
    with pytest.warns(SandboxWarning):
        assert sandbox_capabilities().level == "rlimits"


@needs_namespaces
def test_capabilities_state_the_isolation_in_force():
    caps = sandbox_capabilities()
    assert caps.level == "namespaces" and caps.network_isolated and caps.filesystem_readonly
    assert caps.as_dict()["level"] == "namespaces" and "namespaces" in caps.describe()


def test_many_programs_run_concurrently_in_order():
    sources = [f"print({i} * {i})" for i in range(8)]
    outs = run_programs(sources, limits=FAST, workers=4)
    assert [o.stdout.strip() for o in outs] == [str(i * i) for i in range(8)]
    with pytest.raises(EvalkitError, match="stdin"):
        run_programs(sources, stdins=["x"])


def test_bad_settings_are_user_errors():
    with pytest.raises(EvalkitError, match="valid sandbox isolations"):
        sandbox_capabilities("docker")
    with pytest.raises(EvalkitError, match="timeout_s must be positive"):
        Limits(timeout_s=0)


@needs_namespaces
def test_an_interpreter_under_tmp_stays_visible_read_only(tmp_path):
    """The sandbox's private /tmp must not hide the interpreter running evalkit (a venv in /tmp, say)."""
    import subprocess
    import sys

    venv = Path("/tmp") / f"evalkit-venv-{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        probe = (
            "import sys\n"
            "from evalkit.sandbox import run_program\n"
            "ok = run_program('import sys; print(sys.prefix)', isolation='namespaces')\n"
            "ro = run_program('import sys; open(sys.prefix + \"/planted\", \"w\")', isolation='namespaces')\n"
            "print(ok.status, ok.stdout.strip() == sys.prefix, ro.status, 'Read-only' in ro.stderr)\n"
        )
        repo = str(Path(__file__).resolve().parents[1])
        out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": repo}, check=True)
        assert out.stdout.split() == ["passed", "True", "failed", "True"], out.stderr
        assert not (venv / "planted").exists()
    finally:
        subprocess.run(["rm", "-rf", str(venv)], check=False)
