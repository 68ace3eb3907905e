"""The plain-data codec and its frames: exact round trips of builtin values, and a strict decoder."""

from __future__ import annotations

import math
import os
import struct
import time

import pytest

from evalkit.sandbox import wire

PLAIN = [
    None,
    True,
    False,
    0,
    -1,
    127,
    128,
    -129,
    2**64,
    -(3**200),
    0.0,
    -0.0,
    1.5e-300,
    float("inf"),
    float("-inf"),
    1 + 2j,
    complex(float("inf"), -0.0),
    "",
    "plain",
    "odd: \x00 \n \t é 😀 \u200b \ud800 \udfff",
    b"",
    b"\x00\xff bytes",
    [],
    [1, [2, [3, []]]],
    (),
    (1,),
    ("a", (None, 2.5)),
    {1, 2, 3},
    set(),
    frozenset({"a", (1, 2)}),
    {},
    {"a": 1, 2: [3], (4, 5): {"b": None}, frozenset({1}): set()},
    [{1: (2, 3)}, {"x": [1.25, -0.5]}],
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values_round_trip_exactly(value):
    back = wire.loads(wire.dumps(value))
    assert back == value and _types(back) == _types(value)


def _types(value):
    """Every type in a value, in order, so that 1 and True or (1,) and [1] are told apart."""
    if isinstance(value, dict):
        return (dict, [(_types(k), _types(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value), [_types(v) for v in value])
    if isinstance(value, set | frozenset):
        return (type(value), sorted(map(repr, map(_types, value))))
    return type(value)


def test_nan_round_trips_as_a_float_nan():
    back = wire.loads(wire.dumps([float("nan"), complex(0, float("nan"))]))
    assert type(back[0]) is float and math.isnan(back[0]) and math.isnan(back[1].imag)


class _AlwaysEqual:
    def __eq__(self, other):
        return True


class _EqInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class _EqList(list):
    def __eq__(self, other):
        return True


class _Meta(type):
    @property
    def __name__(cls):  # a class that answers for its own name
        raise RuntimeError("boom")

    @property
    def __mro__(cls):
        raise RuntimeError("boom")


@pytest.mark.parametrize(
    "value, message",
    [
        (_AlwaysEqual(), "a value of type _AlwaysEqual"),
        (_EqInt(3), "a value of type _EqInt, a subclass of int"),
        (_EqList([1]), "a value of type _EqList, a subclass of list"),
        ([1, {2: _EqInt(1)}], "a subclass of int"),
        ({_EqInt(1): 1}, "a subclass of int"),
        (iter([1]), "a value of type list_iterator"),
        (print, "a value of type builtin_function_or_method"),
        (bytearray(b"x"), "a value of type bytearray"),
        (_Meta("Hidden", (), {})(), "a value of type Hidden"),
    ],
)
def test_what_is_not_plain_data_is_refused_by_name(value, message):
    with pytest.raises(wire.NotPlain, match=message):
        wire.dumps(value)


def test_depth_and_size_are_bounded_when_encoding():
    deep: list = []
    for _ in range(wire.MAX_DEPTH - 1):
        deep = [deep]
    assert wire.loads(wire.dumps(deep)) == deep  # exactly MAX_DEPTH lists deep is fine
    with pytest.raises(wire.NotPlain, match="nested deeper than"):
        wire.dumps([deep])
    loop: list = []
    loop.append(loop)
    with pytest.raises(wire.NotPlain, match="nested deeper than"):
        wire.dumps(loop)
    with pytest.raises(wire.NotPlain, match="larger than the limit"):
        wire.dumps("x" * 1001, max_bytes=1000)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "truncated"),
        (b"X", "unknown tag"),
        (b"N" + b"N", "1 bytes after the value"),
        (b"i" + struct.pack("<I", 9) + b"\x01", "truncated"),
        (b"l" + struct.pack("<I", 2**32 - 1) + b"N", "truncated"),  # a huge count with nothing behind it
        (b"s" + struct.pack("<I", 1) + b"\xff", "not UTF-8"),
        (b"f" + b"\x00" * 7, "truncated"),
        (b"S" + struct.pack("<I", 1) + b"l" + struct.pack("<I", 0), "unhashable item in a set"),
        (b"d" + struct.pack("<I", 1) + b"l" + struct.pack("<I", 0) + b"N", "unhashable list as a dict key"),
        (b"S" + struct.pack("<I", 2) + b"NN", "a set with a repeated item"),
        (b"d" + struct.pack("<I", 2) + b"NTNF", "a dict with a repeated key"),
        (b"S" + struct.pack("<I", 2) + b"T" + b"i" + struct.pack("<I", 1) + b"\x01", "repeated item"),  # True == 1
    ],
)
def test_malformed_bytes_are_refused(data, message):
    with pytest.raises(wire.NotPlain, match=message):
        wire.loads(data)


def test_decoding_bounds_the_depth_and_builds_only_builtins():
    deep = b"l\x01\x00\x00\x00" * (wire.MAX_DEPTH + 1) + b"N"
    with pytest.raises(wire.NotPlain, match="nested deeper"):
        wire.loads(deep)
    value = wire.loads(wire.dumps({"a": [1, (2.0, {3})]}))
    assert type(value["a"]) is list and type(value["a"][1]) is tuple and type(value["a"][1][1]) is set


def test_frames_cross_a_pipe_and_are_bounded():
    r, w = os.pipe()
    try:
        wire.send(w, wire.RETURN, 7, wire.dumps([1, "two"]))
        assert wire.recv(r, 1 << 20) == (wire.RETURN, 7, wire.dumps([1, "two"]))
        wire.send(w, wire.RETURN, 8, b"x" * 100)
        with pytest.raises(wire.NotPlain, match="a reply of 100 bytes, over the 10-byte limit"):
            wire.recv(r, 10)
    finally:
        os.close(r)
        os.close(w)


def test_a_frame_cut_short_or_late_is_reported():
    r, w = os.pipe()
    os.write(w, wire.HEADER.pack(wire.RETURN, 1, 10) + b"abc")
    os.close(w)
    with pytest.raises(wire.ChannelClosed):
        wire.recv(r, 1 << 20)
    os.close(r)
    r, w = os.pipe()
    start = time.monotonic()
    with pytest.raises(wire.ChannelTimeout):
        wire.recv(r, 1 << 20, time.monotonic() + 0.2)
    assert time.monotonic() - start < 2
    os.set_blocking(w, False)
    with pytest.raises(wire.ChannelTimeout):  # a reader that never reads cannot hold a writer past its deadline
        wire.send(w, wire.CALL, 1, b"x" * (1 << 22), time.monotonic() + 0.2)
    os.close(r)
    with pytest.raises(wire.ChannelClosed):
        wire.send(w, wire.CALL, 1, b"x")
    os.close(w)
