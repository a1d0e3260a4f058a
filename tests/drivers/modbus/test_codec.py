"""Decoding tables and the request plan."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import DecodeError
from drivers.modbus.codec import (
    Request,
    decode_all,
    decode_block,
    decode_point,
    decode_registers,
    encode_registers,
    plan,
    shared_plan,
)
from drivers.modbus.settings import ModbusPoint


def point(**kw: object) -> ModbusPoint:
    return ModbusPoint(**{"name": "p", "address": 0, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("words", "fields", "expected"),
    [
        ([0x8000], {"type": "int16"}, -32768),
        ([0xFFFF], {"type": "int16"}, -1),
        ([0xFFFF], {"type": "uint16"}, 65535),
        ([0x0001, 0x0000], {"type": "uint32"}, 65536),
        ([0x0000, 0x0001], {"type": "uint32", "word_order": "little"}, 65536),
        ([0xFFFF, 0xFFFE], {"type": "int32"}, -2),
        ([0x3F80, 0x0000], {"type": "float32"}, 1.0),
        ([0x0000, 0x3F80], {"type": "float32", "word_order": "little"}, 1.0),
        ([0x803F, 0x0000], {"type": "float32", "byte_order": "little"}, 1.0),
        ([0, 0, 0, 0x0100], {"type": "uint64"}, 256),
        ([0x3FF0, 0, 0, 0], {"type": "float64"}, 1.0),
        ([12345, 0], {"type": "uint32", "word_order": "little", "scale": 0.01}, 123.45),
        ([100], {"type": "int16", "scale": 0.1, "offset": -40}, -30.0),
    ],
)
def test_decode_table(words: list[int], fields: dict, expected: float) -> None:
    """Registers decode to the documented value for each type and order."""
    assert decode_registers(words, point(**fields)) == pytest.approx(expected)


@pytest.mark.parametrize("words", [[0x7FC0, 0x0000], [0x7F80, 0x0000], [0xFF80, 0x0000]])
def test_nan_and_infinite_floats_are_refused(words: list[int]) -> None:
    """A float32 register holding NaN or infinity is never a number."""
    with pytest.raises(DecodeError):
        decode_registers(words, point(type="float32"))


def test_short_reply_is_refused() -> None:
    """A reply with fewer registers than requested cannot be decoded."""
    p = point(address=4, type="uint32")
    with pytest.raises(DecodeError):
        decode_point(Request("holding", 0, 6, (p,)), [0, 0, 0, 0, 1], p)


@given(
    st.sampled_from(["int16", "uint16", "int32", "uint32", "int64", "uint64"]),
    st.sampled_from(["big", "little"]),
    st.sampled_from(["big", "little"]),
    st.integers(-(2**53), 2**53),
)
def test_integers_round_trip(kind: str, words: str, bytes_: str, value: int) -> None:
    """Encoding then decoding an in-range integer gives it back, in any byte and word order.

    Values are floats downstream, so 64-bit registers are exact up to 2**53
    (9 PWh counted in Wh: beyond any meter's life)."""
    bits = int(kind.removeprefix("u").removeprefix("int"))
    low, high = (
        (0, 2**bits - 1) if kind.startswith("u") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    )
    value = min(max(value, low), high)
    p = point(type=kind, word_order=words, byte_order=bytes_)
    assert decode_registers(encode_registers(value, p), p) == value


@given(
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.sampled_from(["big", "little"])
)
def test_float32_round_trip(value: float, order: str) -> None:
    """float32 values survive the trip through registers bit for bit."""
    p = point(type="float32", word_order=order)
    assert decode_registers(encode_registers(value, p), p) == value


def test_plan_coalesces_adjacent_points_and_splits_on_gaps_and_functions() -> None:
    """Points of one function are read together; a hole above max_gap starts a new request."""
    points = [
        point(name="a", address=0, type="float32", function="input"),
        point(name="b", address=2, type="float32", function="input"),
        point(name="c", address=10, type="float32", function="input"),
        point(name="d", address=100, type="uint16", function="input"),
        point(name="e", address=0, type="uint32", function="holding"),
    ]
    requests = plan(points, max_gap=8)
    assert [(r.function, r.address, r.count, [p.name for p in r.points]) for r in requests] == [
        ("holding", 0, 2, ["e"]),
        ("input", 0, 12, ["a", "b", "c"]),
        ("input", 100, 1, ["d"]),
    ]


def test_devices_with_the_same_point_objects_share_their_requests() -> None:
    """What the loader's shared points buy: one plan for meters alike, each with its own
    list (a split changes one meter's list only); equal but distinct points plan alike."""
    points = [point(name=f"p{i}", address=2 * i, type="float32") for i in range(4)]
    first, second = shared_plan(points, 8), shared_plan(list(points), 8)
    assert first == second == plan(points, 8)
    assert all(a is b for a, b in zip(first, second, strict=True)) and first is not second
    first[0:1] = plan(points[:2], 0)
    assert second == plan(points, 8)
    copies = [p.model_copy() for p in points]
    assert shared_plan(copies, 8) == plan(points, 8)
    assert shared_plan(copies, 8)[0] is not second[0]
    assert shared_plan(points, 0) == plan(points, 0)


def test_plan_never_exceeds_125_registers() -> None:
    """A long run of registers is split at the protocol limit."""
    points = [point(name=f"p{i}", address=i * 2, type="float32") for i in range(100)]
    requests = plan(points)
    assert all(r.count <= 125 for r in requests)
    assert sum(len(r.points) for r in requests) == 100


@pytest.mark.parametrize(("bit", "expected"), [(0, 1.0), (1, 0.0), (15, 1.0)])
def test_a_bit_field_reads_one_flag_of_a_status_word(bit: int, expected: float) -> None:
    """bit: n gives bit n of the register (0 = least significant) as 1.0 or 0.0."""
    assert decode_registers([0x8001], point(type="uint16", bit=bit)) == expected


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["int16", "uint16", "int32", "uint32", "float32", "float64", "int64"]),
            st.sampled_from(["big", "little"]),
            st.sampled_from(["big", "little"]),
        ),
        min_size=1,
        max_size=8,
    ),
    st.data(),
)
def test_the_fast_path_decodes_exactly_like_one_point_at_a_time(layouts: list, data) -> None:
    """decode_all (the poll path) and decode_point agree on any registers, any layout."""
    points, address = [], 0
    for i, (kind, words, bytes_) in enumerate(layouts):
        kw = {"word_order": words} if kind not in ("int16", "uint16") else {}
        points.append(point(name=f"p{i}", address=address, type=kind, byte_order=bytes_, **kw))
        address += {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}.get(kind, 4)
    registers = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=address, max_size=address))
    (request,) = plan(points, max_gap=0)
    fast = decode_all(request, registers)
    for p, got in zip(request.points, fast, strict=True):
        try:
            expected = decode_point(request, registers, p)
        except DecodeError:
            assert isinstance(got, DecodeError)
        else:
            assert got == expected or (got != got and expected != expected)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["int16", "uint16", "int32", "uint32", "float32", "float64", "int64"]),
            st.integers(0, 3),  # registers of hole before the point
            st.sampled_from([(1.0, 0.0), (0.01, 0.0), (1.0, -40.0), (-1.0, 0.0)]),
        ),
        min_size=1,
        max_size=10,
    ),
    st.data(),
)
def test_the_whole_request_path_decodes_to_the_bit_like_one_point_at_a_time(
    layouts: list, data
) -> None:
    """decode_block (the usual reply, one struct call) gives exactly decode_point's floats,
    the sign of zero included, or None when a value is NaN or infinite; garbage in."""
    points, address = [], 0
    for i, (kind, hole, (scale, offset)) in enumerate(layouts):
        address += hole
        points.append(point(name=f"p{i}", address=address, type=kind, scale=scale, offset=offset))
        address += {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}.get(kind, 4)
    floats = st.integers(0, 0xFFFF) | st.sampled_from([0x8000, 0x7F80, 0xFF80, 0x7FC0, 0])
    registers = data.draw(st.lists(floats, min_size=address, max_size=address))
    (request,) = plan(points, max_gap=3)
    block = decode_block(request, registers)
    expected: list[float] = []
    for p in request.points:
        try:
            expected.append(decode_point(request, registers, p))
        except DecodeError:
            assert block is None
            return
    if block is None:  # only for an infinity a scale made, or a sum beyond float
        assert not math.isfinite(sum(expected))
        return
    assert [struct.pack(">d", v) for v in block] == [struct.pack(">d", v) for v in expected]
    assert all(type(v) is float for v in block)


def test_overlapping_points_and_bits_take_the_point_by_point_path() -> None:
    word = point(name="w", address=0, type="uint16")
    flag = point(name="f", address=0, type="uint16", bit=3)
    (request,) = plan([word, flag], max_gap=0)
    assert request.whole is None and decode_block(request, [8]) is None
    assert decode_all(request, [8]) == [8.0, 1.0]
    overlap = [point(name="a", address=0, type="uint32"), point(name="b", address=1)]
    (request,) = plan(overlap, max_gap=0)
    assert request.whole is None
    assert decode_block(plan([word], 0)[0], []) is None  # a short reply
