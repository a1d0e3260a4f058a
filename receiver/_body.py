"""A request body read as it arrives, never past the receiver's limit.

The limit holds twice: on the bytes that come over the wire (a declared
Content-Length over it is refused before a byte is read, a chunked body as
soon as its chunks pass it) and on what gzip inflates them to, a piece at a
time with `max_length`, so a few kilobytes that would inflate to a gigabyte
are refused once the output passes the limit, never held whole.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator

from receiver._request import Refused

_LENGTH = re.compile(r"[0-9]{1,18}")


def declared_length(header: str | None, limit: int) -> int | None:
    """The Content-Length, if given; 413 at once when it is over the limit."""
    if header is None:
        return None
    text = header.strip()
    if not _LENGTH.fullmatch(text):
        raise Refused(400, f"invalid Content-Length {header!r}", close=True)
    if int(text) > limit:
        raise Refused(413, f"body of {int(text)} bytes is over {limit}", close=True)
    return int(text)


class _Inflater:
    """gzip members one after another (RFC 1952 allows several), output bounded by `limit`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._out = bytearray()
        self._member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._started = False  # some input of the current member has been fed

    def feed(self, data: bytes) -> None:
        try:
            while data:
                if self._member.eof:  # the next member begins where the last one ended
                    self._member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                self._started = True
                piece = self._member.decompress(data, self._limit - len(self._out) + 1)
                self._out += piece
                if len(self._out) > self._limit:
                    raise Refused(
                        413, f"body is over {self._limit} bytes once decompressed", close=True
                    )
                data = self._member.unconsumed_tail or self._member.unused_data
                if self._member.eof:
                    self._started = False
        except zlib.error as exc:
            raise Refused(400, f"body is not valid gzip: {exc}") from None

    def finish(self) -> bytes:
        if self._started and not self._member.eof:
            raise Refused(400, "gzip body is truncated")
        return bytes(self._out)


def gunzip(data: bytes, limit: int) -> bytes:
    """A whole gzip payload (an MQTT message) inflated, never past `limit` bytes."""
    inflater = _Inflater(limit)
    inflater.feed(data)
    return inflater.finish()


async def read_body(
    chunks: AsyncIterator[bytes], length: int | None, limit: int, *, compressed: bool
) -> bytes:
    """The body, inflated when `compressed`; 413 as soon as either side passes `limit`."""
    received = 0
    inflater = _Inflater(limit) if compressed else None
    plain = bytearray()
    broken: Refused | None = None  # not gzip: said once the whole body is in, or is too long
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise Refused(413, f"body is over {limit} bytes", close=True)
        if inflater is None:
            plain += chunk
        elif broken is None:
            try:
                inflater.feed(chunk)
            except Refused as refused:
                if refused.status == 413:
                    raise
                broken = refused
    if length is not None and received < length:
        raise Refused(400, "body is shorter than its Content-Length", close=True)
    if broken is not None:
        raise broken
    return inflater.finish() if inflater is not None else bytes(plain)
