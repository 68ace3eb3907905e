"""Plain data between a judge and a contestant: a strict binary codec and the frames that carry it.

Plain data is None, bool, int, float (nan and inf included), complex, str, bytes, and list, tuple,
dict, set and frozenset of plain data, nested. `dumps` accepts exactly those types (a subclass of int,
list or anything else is not plain data) and `loads` builds only those types, so an object decoded
from a contestant's reply is a builtin value with builtin `==`, whatever the contestant sent. `loads`
bounds the size and the nesting depth, refuses unknown tags, trailing bytes and duplicate keys, and
never evaluates anything.

A frame is a kind (one ASCII byte), a sequence number and a length (4 bytes each, little-endian),
then that many bytes of payload.

Stdlib only: the judge's and the contestant's programs load this file's source inside their sandboxes.
"""

from __future__ import annotations

import os
import select
import struct
import time

MAX_BYTES = 16 << 20  # the largest reply a judge reads
MAX_DEPTH = 100  # containers nested deeper than this are not plain data
HEADER = struct.Struct("<cII")
_DOUBLE = struct.Struct("<d")
_COMPLEX = struct.Struct("<dd")
_COUNT = struct.Struct("<I")

# Frame kinds. Judge to contestant: CALL. Contestant to judge: READY or LOAD_FAILED once, then one of
# RETURN, RAISED or NOT_PLAIN per call, with the call's sequence number.
CALL, READY, LOAD_FAILED, RETURN, RAISED, NOT_PLAIN = b"C", b"Y", b"L", b"R", b"E", b"P"


class NotPlain(ValueError):
    """A value that is not plain data, or bytes that do not decode to it."""


def dumps(value: object, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> bytes:
    """The encoding of `value`; NotPlain says why it is not plain data or is over the limits."""
    out: list[bytes] = []
    _Encoder(out, max_bytes, max_depth).encode(value, 0)
    return b"".join(out)


class _Encoder:
    def __init__(self, out: list[bytes], max_bytes: int, max_depth: int) -> None:
        self.out, self.left, self.max_depth = out, max_bytes, max_depth

    def put(self, chunk: bytes) -> None:
        self.left -= len(chunk)
        if self.left < 0:
            raise NotPlain("a value larger than the limit on a reply")
        self.out.append(chunk)

    def encode(self, v: object, depth: int) -> None:
        t = type(v)
        if v is None:
            self.put(b"N")
        elif t is bool:
            self.put(b"T" if v else b"F")
        elif t is int:
            raw = v.to_bytes(v.bit_length() // 8 + 1, "little", signed=True)  # type: ignore[attr-defined]
            self.put(b"i" + _COUNT.pack(len(raw)) + raw)
        elif t is float:
            self.put(b"f" + _DOUBLE.pack(v))
        elif t is complex:
            self.put(b"c" + _COMPLEX.pack(v.real, v.imag))  # type: ignore[attr-defined]
        elif t is str:
            raw = v.encode("utf-8", "surrogatepass")  # type: ignore[attr-defined]
            self.put(b"s" + _COUNT.pack(len(raw)) + raw)
        elif t is bytes:
            self.put(b"b" + _COUNT.pack(len(v)) + v)  # type: ignore[arg-type, operator]
        elif t in _CONTAINER_TAGS:
            if depth >= self.max_depth:
                raise NotPlain(f"a value nested deeper than {self.max_depth} levels")
            self.put(_CONTAINER_TAGS[t] + _COUNT.pack(len(v)))  # type: ignore[arg-type]
            if t is dict:
                for key, item in v.items():  # type: ignore[attr-defined]
                    self.encode(key, depth + 1)
                    self.encode(item, depth + 1)
            else:
                for item in v:  # type: ignore[attr-defined]
                    self.encode(item, depth + 1)
        else:
            raise NotPlain(f"a value of type {_type_name(t)}")


_CONTAINER_TAGS: dict[type, bytes] = {list: b"l", tuple: b"t", set: b"S", frozenset: b"R", dict: b"d"}


def _type_name(t: type) -> str:
    """`t`'s name, and the builtin it subclasses, read without running any code of `t` or its metaclass."""
    try:
        name = type.__dict__["__qualname__"].__get__(t, type)
        mro = type.__dict__["__mro__"].__get__(t, type)
    except Exception:  # noqa: BLE001 - whatever it is, it is not plain data
        return "unknown"
    name = name[:100] if type(name) is str else "unknown"
    base = next((b.__name__ for b in mro[1:] if b in _BUILTINS), None)
    return f"{name}, a subclass of {base}" if base else name


_BUILTINS = (bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset)


def loads(data: bytes, max_depth: int = MAX_DEPTH) -> object:
    """The plain value `data` encodes; NotPlain if it is malformed, too deep or has trailing bytes."""
    decoder = _Decoder(memoryview(data), max_depth)
    value = decoder.decode(0)
    if decoder.pos != len(data):
        raise NotPlain(f"{len(data) - decoder.pos} bytes after the value")
    return value


class _Decoder:
    def __init__(self, data: memoryview, max_depth: int) -> None:
        self.data, self.pos, self.max_depth = data, 0, max_depth

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self.data):
            raise NotPlain("truncated value")
        chunk, self.pos = self.data[self.pos : end], end
        return chunk

    def count(self) -> int:
        return _COUNT.unpack(self.take(4))[0]

    def decode(self, depth: int) -> object:
        tag = bytes(self.take(1))
        if tag in _ATOMS:
            return _ATOMS[tag]
        if tag == b"i":
            return int.from_bytes(self.take(self.count()), "little", signed=True)
        if tag == b"f":
            return _DOUBLE.unpack(self.take(8))[0]
        if tag == b"c":
            return complex(*_COMPLEX.unpack(self.take(16)))
        if tag == b"s":
            try:
                return str(self.take(self.count()), "utf-8", "surrogatepass")
            except UnicodeDecodeError as e:
                raise NotPlain(f"a string that is not UTF-8 ({e.reason})") from None
        if tag == b"b":
            return bytes(self.take(self.count()))
        if tag not in _CONTAINERS:
            raise NotPlain(f"unknown tag {tag!r}")
        if depth >= self.max_depth:
            raise NotPlain(f"a value nested deeper than {self.max_depth} levels")
        n = self.count()
        if tag == b"d":
            out: dict = {}
            for _ in range(n):
                key, item = self.decode(depth + 1), self.decode(depth + 1)
                try:
                    out[key] = item
                except TypeError:
                    raise NotPlain(f"an unhashable {type(key).__name__} as a dict key") from None
            if len(out) != n:
                raise NotPlain("a dict with a repeated key")
            return out
        items = [self.decode(depth + 1) for _ in range(n)]
        kind = _CONTAINERS[tag]
        try:
            built = kind(items)
        except TypeError:
            raise NotPlain(f"an unhashable item in a {kind.__name__}") from None
        if len(built) != n:
            raise NotPlain(f"a {kind.__name__} with a repeated item")
        return built


_ATOMS = {b"N": None, b"T": True, b"F": False}
_CONTAINERS = {b"l": list, b"t": tuple, b"S": set, b"R": frozenset, b"d": dict}


class ChannelClosed(EOFError):
    """The other end closed the channel (it exited), possibly in the middle of a frame."""


class ChannelTimeout(TimeoutError):
    """The deadline passed before a whole frame arrived or was sent."""


def send(fd: int, kind: bytes, seq: int, payload: bytes, deadline: float | None = None) -> None:
    """Write one frame; with a deadline, `fd` must be non-blocking and the write stops at the deadline."""
    view = memoryview(HEADER.pack(kind, seq, len(payload)) + payload)
    while view:
        if deadline is not None:
            _wait(fd, deadline, write=True)
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        except BrokenPipeError:
            raise ChannelClosed("the reader closed the channel") from None
        view = view[n:]


def recv(fd: int, max_bytes: int, deadline: float | None = None) -> tuple[bytes, int, bytes]:
    """(kind, sequence number, payload) of the next frame. NotPlain for a payload over `max_bytes`
    (which is left unread); ChannelClosed at end of file; ChannelTimeout past the deadline."""
    kind, seq, length = HEADER.unpack(_read(fd, HEADER.size, deadline))
    if length > max_bytes:
        raise NotPlain(f"a reply of {length} bytes, over the {max_bytes}-byte limit")
    return kind, seq, _read(fd, length, deadline)


def _read(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, left = [], n
    while left:
        if deadline is not None:
            _wait(fd, deadline, write=False)
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise ChannelClosed(f"end of file {n - left} bytes into a {n}-byte read")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _wait(fd: int, deadline: float, *, write: bool) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ChannelTimeout
    ready = select.select([], [fd], [], left)[1] if write else select.select([fd], [], [], left)[0]
    if not ready:
        raise ChannelTimeout
