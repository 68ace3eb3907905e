"""The sandbox runs hostile programs for real: each must be contained and leave nothing behind."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path

import pytest

from evalkit.errors import EvalkitError
from evalkit.sandbox import runner as sandbox
from evalkit.sandbox.cgroups import SandboxCgroups
from evalkit.sandbox.launch import run_confined
from evalkit.sandbox.runner import (
    Limits,
    SandboxCapabilities,
    SandboxWarning,
    run_program,
    run_programs,
    sandbox_capabilities,
)

# Generous wall time: these programs must not time out even on a loaded machine.
FAST = Limits(timeout_s=20.0, cpu_s=5, memory_mb=512, max_procs=16)
SHORT = Limits(timeout_s=4.0, cpu_s=2, memory_mb=512, max_procs=16)
QUIET = pytest.mark.filterwarnings("ignore::evalkit.sandbox.runner.SandboxWarning")


def _namespaces() -> bool:
    try:
        return sandbox_capabilities("namespaces").level == "namespaces"
    except EvalkitError:
        return False


def _rlimits() -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SandboxWarning)
            return sandbox_capabilities("rlimits").level == "rlimits"
    except EvalkitError:
        return False


needs_namespaces = pytest.mark.skipif(not _namespaces(), reason="this kernel refuses user namespaces")
needs_rlimits = pytest.mark.skipif(
    not _rlimits(),
    reason="the rlimits fallback refuses to run here: evalkit runs "
    "as root and the unprivileged uid cannot run this interpreter",
)
ISOLATIONS = [pytest.param("namespaces", marks=needs_namespaces), pytest.param("rlimits", marks=[QUIET, needs_rlimits])]


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
    bomb = (
        "import os, sys, time\n"
        "n = 0\n"
        "while True:\n"
        "    try:\n"
        "        os.fork(); n += 1\n"
        "    except OSError as e:\n"
        "        print('fork refused', e.errno, flush=True); break\n"
        "time.sleep(60)\n"
    )
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
    targets = [
        tmp_path / "escaped.txt",
        Path.home() / f".evalkit-escape-{uuid.uuid4().hex}",
        Path(__file__).with_name(f"escape-{uuid.uuid4().hex}.py"),
    ]
    source = "import os\n" + "".join(
        f"try:\n    open({str(t)!r}, 'w').write('pwned')\nexcept OSError as e:\n    print(e.errno)\n" for t in targets
    )
    source += "open('inside.txt', 'w').write('fine')\nprint(os.getcwd())\n"
    out = run_program(source, limits=FAST, isolation="namespaces")
    assert out.passed, out.stderr
    assert all(not t.exists() for t in targets)
    # Absent from the sandbox's minimal root, or a read-only (traverse-only) directory there.
    assert set(out.stdout.split()[:3]) <= {str(errno.ENOENT), str(errno.EROFS), str(errno.EACCES)}, out.stdout
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


@needs_rlimits
def test_fallback_warns_loudly_and_names_what_is_missing():
    with pytest.warns(SandboxWarning, match="NOT fully isolated.*network isolation"):
        caps = sandbox_capabilities("rlimits")
    assert caps.level == "rlimits" and not caps.network_isolated and caps.missing
    with pytest.warns(SandboxWarning):
        out = run_program("import socket\nsocket.socket()", limits=FAST, isolation="rlimits")
    assert out.status == "failed" and "network access is disabled" in out.stderr


@needs_rlimits
def test_fallback_can_be_forced_by_environment(monkeypatch):
    monkeypatch.setenv("EVALKIT_SANDBOX", "rlimits")
    with pytest.warns(SandboxWarning):
        assert sandbox_capabilities().level == "rlimits"


@needs_namespaces
def test_capabilities_state_the_isolation_in_force():
    caps = sandbox_capabilities()
    assert caps.level == "namespaces" and caps.network_isolated and caps.filesystem_readonly
    assert caps.as_dict()["level"] == "namespaces" and "namespaces" in caps.describe()
    assert caps.as_dict()["sandbox_memory_limit"] is (caps.memory_cgroup is not None)
    assert ("memory cgroup" in caps.describe()) is caps.sandbox_memory_limit
    assert caps.sandbox_memory_limit or any("sandbox-wide memory limit" in m for m in caps.missing)


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
            "from evalkit.sandbox.runner import run_program\n"
            "ok = run_program('import sys; print(sys.prefix)', isolation='namespaces')\n"
            "ro = run_program('import sys; open(sys.prefix + \"/planted\", \"w\")', isolation='namespaces')\n"
            "print(ok.status, ok.stdout.strip() == sys.prefix, ro.status, 'Read-only' in ro.stderr)\n"
        )
        repo = str(Path(__file__).resolve().parents[2])
        out = subprocess.run(
            [str(venv / "bin" / "python"), "-c", probe],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": repo},
            check=True,
        )
        assert out.stdout.split() == ["passed", "True", "failed", "True"], out.stderr
        assert not (venv / "planted").exists()
    finally:
        subprocess.run(["rm", "-rf", str(venv)], check=False)


def test_the_fallback_never_runs_generated_code_as_root(monkeypatch):
    try:
        out = run_program("import os\nprint(os.getuid())", limits=FAST, isolation="rlimits")
    except EvalkitError as e:  # refused: namespaces unusable here, or the unprivileged uid cannot run Python
        assert "refusing to run generated code as root" in str(e) and "\n" not in str(e)
    else:
        assert out.passed and out.stdout.strip() != "0"


@pytest.mark.skipif(os.geteuid() != 0, reason="only evalkit running as root could run generated code as root")
@QUIET
def test_as_root_the_fallback_refuses_when_the_unprivileged_uid_cannot_run_python(monkeypatch):
    monkeypatch.setattr(sandbox, "_rlimits_run_ok", lambda uid: False)  # an interpreter under /root, say
    sandbox._probe.cache_clear()
    try:
        with pytest.raises(EvalkitError, match=r"refusing to run generated code as root .*non-root user"):
            sandbox_capabilities("rlimits")
        monkeypatch.setattr(sandbox, "_namespaces_unavailable", lambda: "no user namespaces here")
        with pytest.raises(EvalkitError, match="refusing to run generated code as root"):
            sandbox_capabilities("auto")  # auto falls back only where the fallback is safe
    finally:
        sandbox._probe.cache_clear()
    # The sandbox's first process refuses too, whatever the host asks of it (a harmless program).
    caps = SandboxCapabilities("rlimits", False, False, False, True, unprivileged_uid=None)
    out = run_confined("import os\nprint(os.getuid())", FAST, "", caps)
    assert out.status == "error" and "refusing to run the program as root" in out.detail and out.stdout == ""


@needs_namespaces
def test_the_program_sees_a_minimal_root_without_host_secrets():
    secret = Path.home() / f".evalkit-secret-{uuid.uuid4().hex}"
    repo = str(Path(__file__).resolve().parents[2])
    probe = (
        "import os, sys\n"
        f"for path in ('/root', '/home', '/run', '/var', '/srv', '/mnt', {repo!r}, {str(secret)!r}):\n"
        "    try:\n"
        "        print(path, 'LISTED' if os.path.isdir(path) and os.listdir(path) is not None else 'READ', "
        "open(path).read() if os.path.isfile(path) else '')\n"
        "    except OSError as e:\n"
        "        print(path, 'refused', e.errno)\n"
        "for path in ('/etc/shadow', '/etc/gshadow', '/etc/ssl/private'):\n"
        "    try:\n"
        "        print(path, 'READ', repr(open(path).read() if os.path.isfile(path) else os.listdir(path)))\n"
        "    except OSError as e:\n"
        "        print(path, 'refused', e.errno)\n"
        "print('python', sys.executable, os.path.exists('/etc/passwd'))\n"
    )
    secret.write_text("hunter2")
    try:
        out = run_program(probe, limits=FAST, isolation="namespaces")
    finally:
        secret.unlink()
    assert out.passed, out.stderr
    assert "hunter2" not in out.stdout and "LISTED" not in out.stdout, out.stdout
    for line in out.stdout.splitlines()[:-1]:
        path, verdict, *rest = line.split(" ", 2)
        # /etc/shadow may be absent from the host, or covered so that reading it fails or yields nothing.
        assert verdict == "refused" or rest in ([""], ["''"], ["[]"]), line
    assert out.stdout.splitlines()[-1] == f"python {sys.executable} True"


@needs_namespaces
def test_no_host_unix_socket_is_reachable():
    if not os.access("/run", os.W_OK):
        pytest.skip("/run is not writable here; the test needs a Unix socket outside /tmp, where sockets live")
    path = f"/run/evalkit-test-{uuid.uuid4().hex[:12]}.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    server.settimeout(6)
    accepted: list[object] = []
    thread = threading.Thread(target=lambda: accepted.append(_accept(server)))
    thread.start()
    try:
        out = run_program(
            f"import socket\nsocket.socket(socket.AF_UNIX).connect({path!r})\n", limits=FAST, isolation="namespaces"
        )
    finally:
        thread.join()
        server.close()
        os.unlink(path)
    assert out.status == "failed" and "FileNotFoundError" in out.stderr, out
    assert accepted == [None]


@needs_namespaces
def test_memory_is_limited_for_the_whole_sandbox_not_per_process():
    caps = sandbox_capabilities()
    if not caps.sandbox_memory_limit:
        pytest.skip("no writable memory cgroup here: the memory limit is per process only")
    children = (
        "import os, time\n"
        "pids = []\n"
        "for _ in range(6):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        block = b'x' * 250_000_000\n"  # written, so resident: 250 MB each
        "        time.sleep(3)\n"
        "        os._exit(0)\n"
        "    pids.append(pid)\n"
        "print(sum(os.waitpid(pid, 0)[1] == 0 for pid in pids), 'children held 250 MB')\n"
    )
    out = run_program(children, limits=Limits(timeout_s=30.0, memory_mb=300, max_procs=16), isolation="namespaces")
    assert out.passed, out
    assert int(out.stdout.split()[0]) < 6, out.stdout  # 6 x 250 MB do not fit in 300 MB
    assert "sandbox-wide memory limit (300 MB) killed a process" in out.detail


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make cgroups")
def test_the_host_kills_whatever_is_left_in_the_sandbox_cgroups():
    caps = sandbox_capabilities()
    if not (caps.pids_cgroup or caps.memory_cgroup):
        pytest.skip("no writable cgroup here")
    token = f"evalkit-orphan-{uuid.uuid4().hex}"
    # Stands in for a program that killed its supervisor (harmless here): a process joins the sandbox's
    # cgroups, leaves a detached sleeper behind and exits. Only the cgroup still knows the sleeper.
    leave_orphan = (
        "import os, subprocess, sys\n"
        "for leaf in sys.argv[2:]:\n"
        "    open(os.path.join(leaf, 'cgroup.procs'), 'w').write('0')\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', sys.argv[1]], start_new_session=True)\n"
    )
    with SandboxCgroups(caps.pids_cgroup, caps.memory_cgroup, 8, 256) as cgroups:
        subprocess.run([sys.executable, "-c", leave_orphan, token, *cgroups.paths], check=True, timeout=20)
        assert _procs_with(token)
        cgroups.kill()
        deadline = time.monotonic() + 5
        while _procs_with(token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _procs_with(token) == []


@needs_namespaces
def test_signals_to_the_sandbox_init_change_nothing():
    # PID 1 here is the sandbox's own first process (isolation is namespaces, or nothing runs).
    source = (
        "import os, signal, time\n"
        "for sig in (signal.SIGALRM, signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):\n"
        "    os.kill(1, sig)\n"
        "time.sleep(0.5)\n"
        "print('done')\n"
    )
    out = run_program(source, limits=FAST, isolation="namespaces")
    assert (out.status, out.stdout) == ("passed", "done\n"), out
    interrupted = run_program(
        "import os, signal\nos.kill(os.getpid(), signal.SIGINT)\n", limits=FAST, isolation="namespaces"
    )
    assert interrupted.status == "failed" and "KeyboardInterrupt" in interrupted.stderr


@needs_namespaces
def test_the_program_cannot_make_nested_user_namespaces():
    host_limit = Path("/proc/sys/user/max_user_namespaces").read_text()
    source = (
        "import ctypes, errno\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.unshare(0x10000000), errno.errorcode[ctypes.get_errno()])\n"
    )  # CLONE_NEWUSER
    out = run_program(source, limits=FAST, isolation="namespaces")
    assert out.passed and out.stdout.split() == ["-1", "ENOSPC"], out
    assert Path("/proc/sys/user/max_user_namespaces").read_text() == host_limit  # the host's own is untouched


_FALLBACK_DRIVER = r"""
import json, os, sys, uuid, warnings
from evalkit.sandbox.runner import Limits, run_program, sandbox_capabilities
warnings.simplefilter("ignore")
limits = Limits(timeout_s=20.0, cpu_s=5, memory_mb=256, max_procs=8)
token = "evalkit-fallback-" + uuid.uuid4().hex
# Each program re-execs itself with the token on its command line, so the host can look for survivors.
tagged = ("import os, sys\nif len(sys.argv) < 2:\n"
          f"    os.execv(sys.executable, [sys.executable, '-c', open('prog.py').read(), {token!r}])\n")
bomb = tagged + ("import time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        break\n"
                 "time.sleep(60)\n")
target = os.path.join(sys.argv[1], "escaped.txt")
out = {
    "level": sandbox_capabilities("rlimits").level,
    "uid": run_program("import os; print(os.getuid())", limits=limits, isolation="rlimits").stdout.strip(),
    "socket": run_program("import socket; socket.socket()", limits=limits, isolation="rlimits").stderr,
    "write": run_program(f"open({target!r}, 'w').write('pwned')", limits=limits, isolation="rlimits").stderr,
    "bomb": run_program(bomb, limits=Limits(timeout_s=3.0, cpu_s=2, memory_mb=256, max_procs=8),
                        isolation="rlimits").status,
    "sleeper": run_program(tagged + "import time\nif os.fork() == 0:\n    time.sleep(600)\ntime.sleep(600)\n",
                           limits=Limits(timeout_s=1.5), isolation="rlimits").status,
}
out["token"] = token
print(json.dumps(out))
"""


def _python_nobody_can_run() -> str | None:
    """A Python >= 3.10 outside /root (the system's), for the fallback as root; None if there is none."""
    for path in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(path, os.X_OK) and not os.path.realpath(path).startswith("/root"):
            ok = subprocess.run([path, "-c", "import sys; sys.exit(sys.version_info < (3, 10))"], capture_output=True)
            if ok.returncode == 0:
                return path
    return None


@pytest.mark.skipif(
    os.geteuid() != 0 or _python_nobody_can_run() is None,
    reason="needs root and a system Python the unprivileged uid can run",
)
def test_the_fallback_as_root_runs_programs_as_nobody_and_contains_them(tmp_path):
    """Where this interpreter lives under /root the fallback refuses; the system Python shows what it does."""
    python = _python_nobody_can_run()
    assert python is not None
    repo = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [python, "-I", "-c", f"import sys; sys.path.insert(0, {repo!r})\n" + _FALLBACK_DRIVER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["level"] == "rlimits" and out["uid"] == "65534"
    assert "network access is disabled" in out["socket"]
    assert "Permission denied" in out["write"] and not (tmp_path / "escaped.txt").exists()
    assert out["bomb"] == "timeout" and out["sleeper"] == "timeout"
    assert out["token"] and not _procs_with(out["token"])
