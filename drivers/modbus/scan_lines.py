"""The ways `edge-agent scan` asks Modbus unit ids: a serial port at one setting (RTU), or a
TCP host (MBAP, or RTU frames through a transparent converter); and the read frames they
send, made here from the specifications so a sweep sets its own short timeouts and tells
silence from a garbled reply.

Read-only by construction: `read_pdu` is the only request built, and it builds the four
read functions only (01 coils, 02 discrete inputs, 03 holding, 04 input registers).
- MODBUS Application Protocol Specification V1.1b3 (modbus.org, 2012): §6.1-6.4 the
  read requests and replies, §7 exception replies (function code + 0x80, one code byte).
- MODBUS over Serial Line Specification and Implementation Guide V1.02 (modbus.org,
  2006): §2.5.1 the RTU frame (address, PDU, CRC low byte first), §2.5.1.1 the 3.5
  character silence between frames, §6.2.2 CRC-16 (polynomial 0xA001 reflected, start
  0xFFFF).
- MODBUS Messaging on TCP/IP Implementation Guide V1.0b (modbus.org, 2006): §3.1.3 the
  MBAP header (transaction id, protocol 0, length, unit id).
Exceptions 0x0A and 0x0B come from a gateway about a meter that is not there, so an
`Answer` carrying them is no meter (`Answer.present`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import serial

from drivers.bus import lock_for, port_trouble

READ_FUNCTIONS = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
# a gateway's path unavailable, target failed to respond (V1.1b3 §7)
GATEWAY_EXCEPTIONS: tuple[int, ...] = (0x0A, 0x0B)
EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    6: "server device busy",
}


class PortBusy(Exception):
    """The port cannot be opened for the scan (held by another program, absent ...)."""


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS of `data` (Serial Line V1.02 §6.2.2); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def read_pdu(function: str, address: int, count: int) -> bytes:
    """The PDU of a read request: function code, start address, quantity (V1.1b3 §6.1-6.4)."""
    return bytes([READ_FUNCTIONS[function]]) + address.to_bytes(2, "big") + count.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back for one request."""

    kind: str  # data | exception | silent | garbled
    data: bytes = b""  # the reply's data bytes (after the byte count)
    code: int = 0  # the exception code
    heard: bytes = b""  # what arrived, for a garbled reply

    def present(self, absent: tuple[int, ...] = GATEWAY_EXCEPTIONS) -> bool:
        """A meter answered: data, or an exception other than those saying no meter is."""
        return self.kind == "data" or (self.kind == "exception" and self.code not in absent)

    def __str__(self) -> str:
        if self.kind == "exception":
            return f"exception {self.code:02X} ({EXCEPTIONS.get(self.code, 'gateway')})"
        if self.kind == "garbled":
            more = " ..." if len(self.heard) > 12 else ""
            return f"garbled reply ({self.heard[:12].hex(' ')}{more})"
        return "no reply" if self.kind == "silent" else f"{len(self.data)} bytes"


def _reply_length(pdu: bytes, head: bytes) -> int | None:
    """The length of the PDU of a reply starting `head` (function, byte count ...)."""
    if not head:
        return None
    if head[0] == pdu[0] | 0x80:
        return 2
    if head[0] != pdu[0] or len(head) < 2:
        return None
    return 2 + head[1]


def _answer(pdu: bytes, reply: bytes) -> Answer:
    """A reply PDU as an Answer; `reply` is a whole PDU `_reply_length` measured."""
    if reply[0] & 0x80:
        return Answer("exception", code=reply[1])
    count = int.from_bytes(pdu[3:5], "big")
    expected = 2 * count if pdu[0] in (3, 4) else (count + 7) // 8
    if reply[1] != expected:
        return Answer("garbled", heard=reply)
    return Answer("data", data=reply[2:])


def _longest(pdu: bytes) -> int:
    """Bytes of the longest RTU reply to a read `pdu`: unit, function, count, data, CRC."""
    count = int.from_bytes(pdu[3:5], "big")
    return 5 + (2 * count if pdu[0] in (3, 4) else (count + 7) // 8)


def find_rtu(heard: bytes, unit: int, pdu: bytes) -> Answer | None:
    """The reply of `unit` to `pdu` in what the line carried, skipping noise before it."""
    for start in range(len(heard)):
        if heard[start] != unit:
            continue
        length = _reply_length(pdu, heard[start + 1 : start + 3])
        if length is None or start + 1 + length + 2 > len(heard):
            continue
        frame = heard[start : start + 1 + length]
        crc = heard[start + 1 + length : start + 3 + length]
        if crc16(frame) == int.from_bytes(crc, "little"):
            return _answer(pdu, frame[1:])
    return None


class Line(Protocol):
    """One way of asking unit ids: a serial port at one setting, or a TCP host."""

    where: str
    absent: tuple[int, ...]  # exception codes that mean "no such unit" here

    async def ask(self, unit: int, pdu: bytes) -> Answer: ...

    async def close(self) -> None: ...


class _Heard:
    """Bytes arriving on a file descriptor, collected by the event loop."""

    def __init__(self) -> None:
        self.bytes = bytearray()
        self.arrived = asyncio.Event()

    async def until(self, done: Callable[[bytes], bool], deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while not done(bytes(self.bytes)):
            left = deadline - loop.time()
            if left <= 0:
                return
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)


class SerialLine:
    """A serial port at one speed and framing; each request under the port's bus lock
    (drivers/bus.py), so an agent polling the same port in this process is never
    interrupted mid-transaction. Only the unit addressed answers on a serial line, so
    any exception it sends proves it is there (bar a gateway's 0A/0B)."""

    absent: tuple[int, ...] = GATEWAY_EXCEPTIONS

    def __init__(self, port: str, baudrate: int, framing: str, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.where = f"{port} @{baudrate} {framing}"
        parity, stopbits = framing[1], int(framing[2])
        try:
            self._serial = serial.Serial(
                port,
                baudrate,
                bytesize=8,
                parity=parity,
                stopbits=stopbits,
                timeout=0,
                exclusive=True,
            )
        except (OSError, termios.error, ValueError) as exc:  # SerialException is an OSError
            raise PortBusy(port_trouble(exc, f"{baudrate} {framing}")) from None
        self._char = 11 / baudrate  # one character: start, 8 data, parity or 2nd stop, stop
        self._heard = _Heard()
        self._fd = self._serial.fileno()
        asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        with contextlib.suppress(OSError):
            self._heard.bytes += os.read(self._fd, 4096)
        self._heard.arrived.set()

    async def ask(self, unit: int, pdu: bytes) -> Answer:
        frame = bytes([unit]) + pdu
        frame += crc16(frame).to_bytes(2, "little")
        loop = asyncio.get_running_loop()
        async with lock_for(self.port):
            self._heard.bytes.clear()
            self._serial.reset_input_buffer()
            self._serial.write(frame)
            # the request's and the reply's time on the wire, then the timeout
            deadline = loop.time() + self.timeout + (len(frame) + _longest(pdu)) * self._char
            await self._heard.until(lambda b: find_rtu(b, unit, pdu) is not None, deadline)
            heard = bytes(self._heard.bytes)
            await asyncio.sleep(max(3.5 * self._char, 0.002))  # the silence between frames
        found = find_rtu(heard, unit, pdu)
        if found is not None:
            return found
        return Answer("garbled", heard=heard) if heard else Answer("silent")

    async def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self._fd)
        self._serial.close()


class TcpLine:
    """A TCP host: Modbus TCP (MBAP), or RTU frames for a serial converter in transparent
    mode (`framer="rtu"`). After a timeout the connection is replaced, so a late reply
    can never answer the next request (as drivers/modbus/link.py explains).

    Behind a gateway the gateway itself answers for unit ids it has no meter at: 0A or
    0B as the specification says, or 04 (server device failure), as pymodbus-based
    servers do (pymodbus 3.x). So on TCP an exception 04 is not taken for a meter.
    """

    absent: tuple[int, ...] = (0x04, *GATEWAY_EXCEPTIONS)

    def __init__(self, host: str, port: int, framer: str, timeout: float) -> None:
        self.host, self.port, self.framer, self.timeout = host, port, framer, timeout
        self.where = f"{host}:{port}" + (" (RTU over TCP)" if framer == "rtu" else "")
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._tid = 0

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is None:
            try:
                opening = asyncio.open_connection(self.host, self.port)
                self._streams = await asyncio.wait_for(opening, max(self.timeout, 2.0))
            except (OSError, TimeoutError) as exc:
                raise PortBusy(
                    f"cannot connect to {self.where}: {str(exc) or 'timed out'}"
                ) from None
        return self._streams

    async def ask(self, unit: int, pdu: bytes) -> Answer:
        reader, writer = await self._open()
        try:
            if self.framer == "rtu":
                return await self._ask_rtu(reader, writer, unit, pdu)
            return await self._ask_mbap(reader, writer, unit, pdu)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            await self.close()  # a late reply must not meet the next request
            return Answer("silent")

    async def _ask_mbap(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, unit: int, pdu: bytes
    ) -> Answer:
        self._tid = (self._tid + 1) % 0x10000
        header = self._tid.to_bytes(2, "big") + b"\0\0" + (len(pdu) + 1).to_bytes(2, "big")
        writer.write(header + bytes([unit]) + pdu)
        await writer.drain()
        async with asyncio.timeout(self.timeout):
            while True:
                head = await reader.readexactly(7)
                body = await reader.readexactly(int.from_bytes(head[4:6], "big") - 1)
                if head[:2] != header[:2] or head[2:4] != b"\0\0":
                    continue  # not the reply to this request
                length = _reply_length(pdu, body[:2])
                if length is None or length != len(body):
                    return Answer("garbled", heard=head + body)
                return _answer(pdu, body)

    async def _ask_rtu(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, unit: int, pdu: bytes
    ) -> Answer:
        frame = bytes([unit]) + pdu
        writer.write(frame + crc16(frame).to_bytes(2, "little"))
        await writer.drain()
        heard = b""
        found = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout):
                while (found := find_rtu(heard, unit, pdu)) is None:
                    chunk = await reader.read(4096)
                    if not chunk:
                        break
                    heard += chunk
        if found is not None:
            return found
        await self.close()
        return Answer("garbled", heard=heard) if heard else Answer("silent")

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
