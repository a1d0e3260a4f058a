"""Frames that begin with 68H and end with a byte sum and 16H: DL/T 645 and CJ/T 188.

Both standards frame a message the same way around a header of their own:

    [FE ...] 68 <header> L DATA(L) CS 16

CS is the sum modulo 256 of every byte from the first 68 through the last
data byte (DL/T 645-2007 §5, CJ/T 188-2018 §6). What lies between (address,
meter type, a second 68, control code) each codec reads itself; here is the
hunting for a frame in a stream of bytes, the checksum, and the wire form.
Pure functions over bytes, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from domain.errors import FrameError

PREAMBLE = b"\xfe\xfe\xfe\xfe"  # wake-up bytes sent before a request
START, END = 0x68, 0x16
_SHOWN = 32  # bytes of a garbled frame quoted in its error: the header and the DI

F = TypeVar("F")


def framed(body: bytes, *, preamble: bool = True) -> bytes:
    """`body` (68 through the last data byte) as sent: wake-up bytes, body, CS, 16."""
    return (PREAMBLE if preamble else b"") + body + bytes([sum(body) & 0xFF, END])


@dataclass(frozen=True, slots=True)
class Layout(Generic[F]):
    """Where a protocol's header keeps what the hunt needs, and how a body becomes a frame."""

    header: int  # bytes from the first 68 through L
    second_start: int | None  # offset of a second 68 in the header (DL/T 645: 7), if any
    shape: str  # the frame as a technician reads it, for "no frame (...)"
    build: Callable[[bytes], F]  # a checked body (68 through the last data byte) -> frame

    def scan(self, buffer: bytes) -> tuple[F | FrameError | None, int]:
        """The first frame in `buffer`, skipping wake-up FE bytes and junk before it.

        Returns (frame or error, bytes consumed up to its end), or (None, bytes that
        can be dropped) when no complete frame is there yet. Never raises: streams
        call it as bytes arrive and decide themselves what a bad frame means.

        A start whose announced end byte is not 16 (or, with a second 68 in the
        header, whose second 68 is missing) was a false start in junk; one that
        ends with 16 but fails the checksum is a garbled frame. While the first
        start is still incomplete, only a complete frame with a good checksum
        further on is taken: a false start in junk whose length byte promises
        more than arrives must not hide the real reply behind it.
        """
        pending: int | None = None  # the first start still waiting for bytes
        at = buffer.find(START)
        while at >= 0:
            if self.second_start is not None:
                second = at + self.second_start
                if second < len(buffer) and buffer[second] != START:
                    at = buffer.find(START, at + 1)
                    continue
            end = self._end(buffer, at)
            if end > len(buffer):
                pending = at if pending is None else pending
            elif buffer[end - 1] == END:
                found = self._checked(buffer[at:end])
                if pending is None or not isinstance(found, FrameError):
                    return found, end
            at = buffer.find(START, at + 1)
        return None, len(buffer) if pending is None else pending

    def parse(self, data: bytes) -> F:
        """The first frame in `data` (any leading FE and junk skipped), or FrameError."""
        found, used = self.scan(data)
        if isinstance(found, FrameError):
            raise found
        if found is not None:
            return found
        if used < len(data):
            rest = data[used:]
            wanted = f"{self._end(rest, 0)} bytes" if len(rest) >= self.header else "a full header"
            raise FrameError(f"incomplete frame: {len(rest)} bytes from its start, {wanted} needed")
        shown = data[:16].hex(" ").upper() + (" ..." if len(data) > 16 else "")
        raise FrameError(f"no frame ({self.shape}) in {len(data)} bytes: {shown}".rstrip())

    def _end(self, buffer: bytes, at: int) -> int:
        """Where the frame starting at `at` ends (past its 16), or past the buffer when its
        header is not all there yet."""
        if at + self.header > len(buffer):
            return len(buffer) + 1
        return at + self.header + buffer[at + self.header - 1] + 2

    def _checked(self, raw: bytes) -> F | FrameError:
        body, checksum = raw[:-2], raw[-2]
        if sum(body) & 0xFF != checksum:
            shown = raw[:_SHOWN].hex(" ").upper() + (" ..." if len(raw) > _SHOWN else "")
            return FrameError(
                f"garbled reply: checksum {checksum:02X}, the bytes add up to "
                f"{sum(body) & 0xFF:02X} ({shown})"
            )
        return self.build(body)
