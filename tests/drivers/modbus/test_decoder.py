"""QuietDecoder: the same replies as pymodbus's own decoder, without formatting them."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st
from pymodbus.pdu import DecodePDU

from drivers.modbus.link import QuietDecoder, tcp_link
from drivers.modbus.settings import ModbusTcp

LIBRARY = DecodePDU(False)
QUIET = QuietDecoder(False)


def _same(frame: bytes) -> None:
    ours, theirs = QUIET.decode(frame), LIBRARY.decode(frame)
    assert type(ours) is type(theirs)
    if theirs is not None:
        assert ours is not None
        assert (ours.function_code, ours.registers, ours.bits) == (
            theirs.function_code, theirs.registers, theirs.bits,
        )  # fmt: skip


def test_a_register_reply_decodes_as_the_library_does() -> None:
    words = [0x4148, 0x0000, 0xFFFF, 0x0001]
    frame = bytes([4, 2 * len(words)]) + b"".join(w.to_bytes(2, "big") for w in words)
    reply = QUIET.decode(frame)
    assert reply is not None
    assert reply.function_code == 4
    assert reply.registers == words
    _same(frame)


def test_coils_exceptions_and_writes_decode_as_the_library_does() -> None:
    for frame in (
        bytes([1, 1, 0b101]),  # coils
        bytes([0x84, 2]),  # exception reply to FC 4: illegal data address
        bytes([6, 0, 1, 0, 7]),  # write single register echo
        bytes([3, 4, 0, 1]),  # a register reply cut short
    ):
        _same(frame)


@given(st.binary(max_size=40))
def test_garbage_is_refused_or_decoded_as_the_library_does(frame: bytes) -> None:
    _same(frame)


def test_no_reply_is_formatted_while_debug_is_off(caplog, monkeypatch) -> None:
    formatted = []
    reply_class = type(LIBRARY.decode(bytes([3, 2, 0, 1])))
    monkeypatch.setattr(reply_class, "__str__", lambda self: formatted.append(1) or "reply")
    with caplog.at_level(logging.INFO, logger="pymodbus"):
        assert QUIET.decode(bytes([3, 2, 0, 1])) is not None
        assert formatted == []
        LIBRARY.decode(bytes([3, 2, 0, 1]))  # the reason QuietDecoder exists
        assert formatted == [1]


async def test_every_modbus_tcp_link_decodes_with_it() -> None:
    """Modbus TCP and RTU over TCP alike: a link left with the library's decoder would
    still read right, only slower, so nothing else would notice."""
    for framer in ("socket", "rtu"):
        link = tcp_link(ModbusTcp(host="127.0.0.1", port=1502, framer=framer), "meter")
        assert type(link.client.ctx.framer.decoder) is QuietDecoder, framer
        await link.close()
