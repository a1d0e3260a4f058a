"""`edge-agent scan` on Modbus: which unit ids answer on a serial port or a TCP host, at
which line settings, and what their registers read.

Read-only by construction: `read_pdu` is the only request this module builds, and it
builds the four read functions only (01 coils, 02 discrete inputs, 03 holding, 04
input registers). Frames are made here from the specifications rather than by
pymodbus, so a sweep sets its own short timeouts and tells silence from a garbled
reply:
- MODBUS Application Protocol Specification V1.1b3 (modbus.org, 2012): §6.1-6.4 the
  read requests and replies, §7 exception replies (function code + 0x80, one code byte).
- MODBUS over Serial Line Specification and Implementation Guide V1.02 (modbus.org,
  2006): §2.5.1 the RTU frame (address, PDU, CRC low byte first), §2.5.1.1 the 3.5
  character silence between frames, §6.2.2 CRC-16 (polynomial 0xA001 reflected, start
  0xFFFF); §2.2 unit 0 is broadcast (never answered), so a serial sweep skips it.
- MODBUS Messaging on TCP/IP Implementation Guide V1.0b (modbus.org, 2006): §3.1.3 the
  MBAP header (transaction id, protocol 0, length, unit id).
A unit is "found" when it answers the detection read at all, with registers or with
an exception (a meter that says "illegal data address" is still a meter); exceptions
0x0A and 0x0B come from a gateway about a meter that is not there, so they are not.

This module is long because the frame code, the three ways of asking (serial RTU,
Modbus TCP, RTU over TCP) and the sweeps that drive them are read together: each
transport's reply hunt uses the same frame rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import serial

from domain.errors import DecodeError
from drivers.bus import lock_for, port_trouble
from drivers.modbus.codec import decode_all, plan
from drivers.modbus.settings import ModbusPoint

__all__ = [
    "FRAMINGS",
    "SPEEDS",
    "Answer",
    "Found",
    "Line",
    "PortBusy",
    "SerialLine",
    "TcpLine",
    "crc16",
    "read_pdu",
    "read_points",
    "sweep_serial",
    "sweep_tcp",
]

READ_FUNCTIONS = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
SPEEDS = (9600, 19200, 4800, 2400)  # most common first: a found meter ends no sweep early
FRAMINGS = ("8N1", "8E1", "8N2")  # the Modbus serial default is 8E1 (V1.02 §2.5.1); 8N1 is common
# a gateway's path unavailable, target failed to respond (V1.1b3 §7)
GATEWAY_EXCEPTIONS: tuple[int, ...] = (0x0A, 0x0B)
DETECT = ("holding", 0, 1)  # the detection read: any meter answers it, with data or an exception
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


@dataclass(frozen=True)
class Found:
    """A unit id that answered, at which line settings, and what it said."""

    unit: int
    line: dict[str, object]  # the YAML link fields: port, baudrate, parity ... or host, port
    how: str  # "/dev/ttyUSB0 @9600 8N1" or "10.0.0.7:502"
    answer: str  # what the detection read got
    any_unit: bool = False  # a TCP server that answers every unit id the same


@dataclass
class Sweep:
    """What a sweep met besides meters: settings the port refused, garbled units."""

    found: list[Found] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "8E1: the port refuses 9600 8E1"
    garbled: list[str] = field(default_factory=list)  # "unit 9 @9600 8N1: garbled reply (...)"
    seconds: float = 0.0


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def estimate(units: int, settings: int, timeout: float, baudrate: int = 9600) -> float:
    """Seconds for a sweep where nothing answers: each unit waits out its timeout."""
    per = timeout + (8 + 7) * 11 / baudrate + max(3.5 * 11 / baudrate, 0.002)
    return units * settings * per


async def sweep_serial(
    port: str,
    speeds: Sequence[int] = SPEEDS,
    framings: Sequence[str] = FRAMINGS,
    units: Iterable[int] = range(1, 248),
    timeout: float = 0.1,
    progress: Progress = _quiet,
) -> Sweep:
    """Every unit id at every speed and framing; raises PortBusy when the port cannot be
    had at all (a framing the port refuses is noted and skipped).

    A UART checks only the first stop bit, so a meter set to 8N1 also answers 8N2 and
    the other way round: a unit found at one is not asked again at the other."""
    result = Sweep()
    started = time.monotonic()
    wanted = [u for u in units if 1 <= u <= 247]
    for baudrate in speeds:
        for framing in framings:
            known = {
                f.unit
                for f in result.found
                if f.line["baudrate"] == baudrate and f.line["parity"] == framing[1]
            }
            try:
                line = SerialLine(port, baudrate, framing, timeout)
            except PortBusy as exc:
                if "refuses" not in str(exc):
                    raise
                result.refused.append(f"{baudrate} {framing}: {exc}")
                continue
            try:
                fields = {
                    "port": port,
                    "baudrate": baudrate,
                    "parity": framing[1],
                    "stopbits": int(framing[2]),
                }
                left = [u for u in wanted if u not in known]
                await _sweep_line(line, left, fields, result, progress)
            finally:
                await line.close()
    result.seconds = time.monotonic() - started
    return result


async def sweep_tcp(
    host: str,
    port: int = 502,
    framer: str = "socket",
    units: Iterable[int] = range(1, 248),
    timeout: float = 0.3,
    progress: Progress = _quiet,
) -> Sweep:
    """Every unit id on a host. A server that answers 255, 0 and unit ids no two meters
    share (1 and 246) alike is one meter answering any unit: found once. One that
    answers 255 or 0 only is a meter reached directly (MODBUS Messaging on TCP/IP
    Implementation Guide V1.0b §4.4.1.2, p. 23: the unit id is then useless, 0xFF is to
    be used, 0 is also accepted) and is found at that id, unless meters answer behind it."""
    result = Sweep()
    started = time.monotonic()
    line = TcpLine(host, port, framer, timeout)
    fields: dict[str, object] = {"host": host, "port": port}
    if framer == "rtu":
        fields["framer"] = "rtu"
    try:
        pdu = read_pdu(*DETECT)
        # RTU frames go on to a serial line, where 0 is broadcast and 255 no address
        direct = () if framer == "rtu" else (255, 0)
        anyone = [u for u in direct if (await line.ask(u, pdu)).present(line.absent)]
        if anyone and all([(await line.ask(u, pdu)).present(line.absent) for u in (1, 246)]):
            answer = await line.ask(1, pdu)
            note = f"{answer}; answers any unit id (also {', '.join(map(str, anyone))})"
            result.found.append(Found(1, fields | {"unit": 1}, line.where, note, any_unit=True))
        else:
            await _sweep_line(line, list(units), fields, result, progress)
            for unit in anyone if not result.found else ():
                answer = await line.ask(unit, pdu)
                result.found.append(Found(unit, fields | {"unit": unit}, line.where, str(answer)))
    finally:
        await line.close()
    result.seconds = time.monotonic() - started
    return result


async def _sweep_line(
    line: Line, units: Sequence[int], fields: dict[str, object], result: Sweep, progress: Progress
) -> None:
    pdu = read_pdu(*DETECT)
    for i, unit in enumerate(units):
        progress(f"{line.where}: unit {unit} ({i + 1}/{len(units)}), {len(result.found)} found")
        answer = await line.ask(unit, pdu)
        if answer.present(line.absent):
            result.found.append(Found(unit, fields | {"unit": unit}, line.where, str(answer)))
        elif answer.kind == "garbled":
            result.garbled.append(f"unit {unit} on {line.where}: {answer}")


async def read_points(
    line: Line, unit: int, points: Sequence[ModbusPoint]
) -> dict[str, float | str]:
    """Each point's value, or why it has none ("exception 02 (illegal data address)").

    Only the points' own registers are asked (no gap bridged): a meter that refuses a
    register it does not have must not cost its neighbours.
    """
    values: dict[str, float | str] = {}
    for request in plan(points, max_gap=0):
        answer = await line.ask(unit, read_pdu(request.function, request.address, request.count))
        if answer.kind != "data":
            values.update({p.name: str(answer) for p in request.points})
            continue
        if request.function in ("coil", "discrete"):
            words: list[int] | list[bool] = [
                bool(answer.data[i // 8] >> (i % 8) & 1) for i in range(request.count)
            ]
        else:
            data = answer.data
            words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
        for point, value in zip(request.points, decode_all(request, words), strict=True):
            # decode_all gives a DecodeError for a NaN or infinite float
            values[point.name] = (
                f"not a number ({value})" if isinstance(value, DecodeError) else value
            )
    return values


@contextlib.asynccontextmanager
async def opened(found: Found, timeout: float) -> AsyncIterator[Line]:
    """A line to a found unit, at the settings it was found at."""
    f = found.line
    line: Line
    if "host" in f:
        line = TcpLine(str(f["host"]), int(str(f["port"])), str(f.get("framer", "socket")), timeout)
    else:
        framing = f"8{f['parity']}{f['stopbits']}"
        line = SerialLine(str(f["port"]), int(str(f["baudrate"])), framing, timeout)
    try:
        yield line
    finally:
        await line.close()


def tty_progress() -> Progress:
    """A one-line progress report on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        return _quiet
    last = [0.0]

    def show(text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.2:
            last[0] = now
            print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)

    return show
