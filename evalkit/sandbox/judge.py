"""The judge's side of a judged program: run the dataset's trusted tests against a proxy of the completion.

Runs as the program of the judge's sandbox (stdlib only; `judged` builds a program that loads `wire`
and this file and calls `main`), never imported by evalkit. It reads its configuration from stdin
(marshal, written by the host), runs the trusted setup code (a HumanEval prompt's helpers, say), waits
for the contestant to load, and runs the tests with each of the completion's entry points bound to a
proxy. A proxy call sends the arguments as plain data on fd 4 and reads the reply from fd 3; the reply
is decoded by `wire.loads` into builtin values, so every `==` the tests evaluate compares values built
here. Nothing of the contestant's but those bytes reaches this process.

The first call that fails (an exception, a timeout, a value that is not plain data, the contestant
exiting or breaking the protocol) fails the program, whatever the tests do with the exception the
proxy raises. The verdict goes to the host on the original stdout, as one line of hex-encoded plain
data; fd 1 itself points at /dev/null while the tests run.
"""

from __future__ import annotations

import io
import marshal
import os
import sys
import time
import types

import evalkit_sandbox_wire as wire  # type: ignore[import-not-found]  # loaded by the program's bootstrap

REPLIES, CALLS = 3, 4
TESTS = "tests.py"


class Stop(BaseException):
    """A call failed and the verdict is settled; not an Exception, so `except Exception` in tests cannot
    swallow it (and a bare `except:` that does changes nothing: the failure is already recorded)."""


class ContestantFailed(Exception):
    """A call failed, raised where the tests are OpenCompass's run_test, which reports any Exception."""


class Channel:
    """The judge's end of the channel: one call at a time, each bounded in time and in reply size."""

    def __init__(self, cfg: dict, start: float) -> None:
        self.budget_s = cfg["budget_s"]  # the whole program's, shared by every call
        self.deadline = start + self.budget_s
        self.max_bytes, self.max_depth = cfg["max_bytes"], cfg["max_depth"]
        self.seq, self.load_error = 0, ""
        self.failure: tuple[str, str] | None = None
        self.timeout_error: type[BaseException] = Stop
        self.call_error: type[BaseException] = Stop
        os.set_blocking(CALLS, False)

    def fail(self, kind: str, reason: str) -> None:
        if self.failure is None:
            self.failure = (kind, reason)

    def stop(self) -> BaseException:
        kind, reason = self.failure or ("crashed", "")
        return (self.timeout_error if kind == "timeout" else self.call_error)(f"{kind}: {reason}")

    def ready(self) -> dict | None:
        """The kind of each top-level name the contestant defines, or None (and a failure) if it did not load."""
        try:
            kind, _, payload = wire.recv(REPLIES, self.max_bytes, self.deadline)
            value = wire.loads(payload, self.max_depth)
        except wire.ChannelTimeout:
            self.fail("timeout", f"the completion did not finish loading within {self.budget_s:g} s")
            return None
        except wire.ChannelClosed:
            self.fail("crashed", "the contestant exited while loading the completion")
            return None
        except wire.NotPlain as e:
            self.fail("not plain data", f"the contestant's first message: {e}")
            return None
        if kind == wire.LOAD_FAILED and type(value) is str:
            self.load_error = value[:600]
            self.fail("exception", f"loading the completion raised {self.load_error}")
        elif kind == wire.READY and type(value) is dict and all(type(v) is str for v in value.values()):
            return value
        else:
            self.fail("crashed", f"the contestant broke the protocol (a {kind!r} frame while loading)")
        return None

    def call(self, name: str, args: tuple, kwargs: dict) -> object:
        if self.failure is not None:
            raise self.stop()
        self.seq += 1
        seq, left = self.seq, max(0.0, self.deadline - time.monotonic())
        try:
            payload = wire.dumps([name, args, kwargs], 1 << 40, self.max_depth)
        except wire.NotPlain as e:
            self.fail("sandbox error", f"the tests passed {e} to {name}, which cannot cross to the contestant")
            raise self.stop() from None

        def what() -> str:  # the call, described only when something went wrong
            return _call(seq, name, args)

        try:
            wire.send(CALLS, wire.CALL, seq, payload, self.deadline)
            kind, got, reply = wire.recv(REPLIES, self.max_bytes, self.deadline)
            if got != seq or kind not in (wire.RETURN, wire.RAISED, wire.NOT_PLAIN):
                self.fail("crashed", f"the contestant broke the protocol (a {kind!r} frame for call {got})")
            elif kind == wire.RETURN:
                return wire.loads(reply, self.max_depth)
            elif kind == wire.RAISED:
                self.fail("exception", f"{what()} raised {_reason(reply, self.max_depth)}")
            else:
                self.fail("not plain data", f"{what()} returned {_reason(reply, self.max_depth)}")
        except wire.ChannelTimeout:
            self.fail(
                "timeout", f"{what()} did not return within the {left:.3g} s left of the program's {self.budget_s:g} s"
            )
        except wire.ChannelClosed:
            self.fail("crashed", f"the contestant exited during {what()}")
        except wire.NotPlain as e:
            self.fail("not plain data", f"{what()} returned {e}")
        except MemoryError:
            self.fail("not plain data", f"{what()} returned a value too large to decode")
        except BaseException as e:  # the tests' own timer (OpenCompass's SIGALRM), say: record it and let it through
            self.fail(
                "timeout" if "timeout" in type(e).__name__.lower() else "crashed", f"{what()} was interrupted ({e!r})"
            )
            raise
        raise self.stop()

    def proxy(self, name: str) -> types.FunctionType:
        def proxy(*args: object, **kwargs: object) -> object:
            return self.call(name, args, kwargs)

        proxy.__name__ = proxy.__qualname__ = name
        return proxy  # type: ignore[return-value]


def _reason(payload: bytes, max_depth: int) -> str:
    value = wire.loads(payload, max_depth)
    if type(value) is not str:
        raise wire.NotPlain("a reason that is not a string")
    return value[:600]


def _call(seq: int, name: str, args: tuple) -> str:
    shown = repr(tuple(a[:50] + "..." if type(a) is str and len(a) > 60 else a for a in args))
    shown = shown[:-2] + ")" if shown.endswith(",)") else shown
    return f"call {seq}, {name}{shown[:120] + ('...)' if len(shown) > 120 else '')}"


def _where(e: BaseException, filename: str) -> str:
    line, tb = None, e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return text[:400] + (f" ({filename} line {line})" if line else "")


def judge_exec(cfg: dict, channel: Channel) -> dict:
    """HumanEval and MBPP: `setup` (the prompt, trusted helpers) then `tests` in one namespace, with
    each name of `proxies`, and each of `maybe` that the completion defines as a function and the setup
    does not define, bound to a proxy. A stdlib module that the completion imported under a name in
    `maybe` is imported here."""
    namespace: dict = {}
    exec(compile(cfg["setup"], "setup.py", "exec"), namespace)
    names = channel.ready()
    if names is None:
        return {}
    for name in cfg["proxies"]:
        namespace[name] = channel.proxy(name)
    for name in cfg["maybe"]:
        if name in namespace:  # the setup's own (OpenCompass's type-aware equality, say) is never the completion's
            continue
        if names.get(name) == "callable":
            namespace[name] = channel.proxy(name)
        elif names.get(name) == "module" and name in sys.stdlib_module_names:
            namespace[name] = __import__(name)
    try:
        exec(compile(cfg["tests"], TESTS, "exec"), namespace)
    except Stop:
        pass
    except BaseException as e:  # noqa: BLE001 - the tests rejected the answers
        channel.fail("wrong answer", _where(e, TESTS))
    if channel.seq == 0:
        channel.fail("wrong answer", "the tests never called the completion")
    return {}


def judge_lcb(cfg: dict, channel: Channel) -> dict:
    """LiveCodeBench: OpenCompass's own run_test over the real test cases, given a stand-in for the code
    whose entry point (a method, a function, or a standard-input program) is the proxy. run_test's
    comparisons then see only values decoded here; a failed call raises into run_test as an exception
    (its timeout as its TimeoutException), so its metadata is stock's."""
    import builtins

    import evalkit_sandbox_contestant as loader  # type: ignore[import-not-found]

    tu = loader.load_testing_util(cfg, types.SimpleNamespace(from_string=_runtime_module))
    channel.timeout_error, channel.call_error = tu.TimeoutException, ContestantFailed
    names = channel.ready()
    if names is None:
        if channel.load_error:
            message, _, error = channel.load_error.partition(": ")
            message = message if message in ("Compilation Error", "Unable to extract code") else "Compilation Error"
            return {"results": [-2], "metadata": {"error": error, "error_code": -1, "error_message": message}}
        return {}
    builtins._evalkit_call = lambda *args: channel.call(cfg["fn_name"] or "main", args, {})  # type: ignore[attr-defined]
    results, metadata = tu.run_test(
        {"input_output": cfg["sample"]}, test=cfg["stub"], timeout=cfg["timeout"], memory_limit_bytes=cfg["memory"]
    )
    results = [bool(r) if type(r) is not int and hasattr(r, "item") else r for r in results]
    metadata = {str(k): v if type(v) in (str, int, float, bool) else str(v) for k, v in metadata.items()}
    if channel.failure is None and not (results and all(r is True for r in results)):
        channel.fail("wrong answer", str(metadata.get("error_message") or "a test case failed"))
    return {"results": results, "metadata": metadata}


def _runtime_module(name: str, doc: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name, doc)
    exec(source, module.__dict__)
    return module


def main() -> None:
    start = time.monotonic()
    cfg = marshal.loads(sys.stdin.buffer.read())
    verdict_fd = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing the tests print can reach the verdict's stream
    sys.stdin, sys.stdout = io.StringIO(), io.StringIO()
    channel = Channel(cfg, start)
    extra = (judge_exec if cfg["kind"] == "exec" else judge_lcb)(cfg, channel)
    kind, reason = channel.failure or (None, "")
    verdict = {"passed": channel.failure is None, "failure": kind, "reason": reason, "calls": channel.seq, **extra}
    os.write(verdict_fd, wire.dumps(verdict, 1 << 40).hex().encode() + b"\n")
    os._exit(0)  # no exit handlers, no waiting for threads the tests started
