"""Simulated DL/T 645-2007 meters on a serial line, for the tests and the demo.

`SimulatedBus` plays the meters' side of an RS-485 pair: by default the master
side of a pseudo-terminal (os.openpty), whose other side `bus.port`
(/dev/pts/N) the driver opens like a USB adapter; or a real serial port.
Every meter hears every request and the one addressed answers, as on a real bus.

A meter's values are a dict DI -> value bytes, or DI -> callable giving the
bytes at time t; `values_for` builds it from a profile's points and a
LoadCurve, so the energy register is the exact integral of the power served.
Fault switches reproduce what the field does: silence, a garbled checksum,
error replies for DIs the meter lacks, FE and junk before a reply, a reply from
another address, values split into follow-up frames, a stray frame heard ahead
of a delayed reply, a reply delayed past the driver's timeout.

Pseudo-terminals on some kernels refuse even parity (EINVAL when pyserial sets
it): run simulated buses with parity N; real ports keep 8E1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tty
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import serial

from domain.errors import FrameError
from drivers.dlt645.codec import (
    ERROR,
    FOLLOWS,
    PREAMBLE,
    READ_ADDRESS,
    READ_DATA,
    READ_FOLLOW_UP,
    REPLY,
    Frame,
    address_matches,
    address_to_wire,
    di_from_wire,
    encode_bcd,
    scan,
)
from drivers.dlt645.settings import Dlt645Point
from drivers.modbus.simulator import LoadCurve

__all__ = ["LoadCurve", "SimulatedBus", "SimulatedMeter", "values_for"]

Value = bytes | Callable[[float], bytes]
NO_DATA = b"\x02"  # error word, bit 1: no requested data
OTHER = b"\x01"  # error word, bit 0: other error


@dataclass
class SimulatedMeter:
    """One meter: its address, its values, and the faults it should show."""

    address: str
    values: dict[str, Value] = field(default_factory=dict)  # DI3..DI0 -> value bytes
    clock: Callable[[], float] = time.time
    silent: bool = False  # never answers: a dead or unpowered meter
    garbled: bool = False  # answers with a wrong checksum
    preamble: bytes = PREAMBLE  # wake-up bytes before each reply
    junk: bytes = b""  # line noise before the preamble
    reply_as: str | None = None  # answers under another address
    noise: bytes | None = None  # sent instead of a reply: a meter at another baud rate
    split: int | None = None  # value bytes per frame: more come as follow-up frames
    ignored: set[str] = field(default_factory=set)  # DIs left unanswered, not error-replied
    delay: float = 0.0  # seconds before answering
    ahead: bytes = b""  # sent at once before a delayed reply: a late neighbour, a garbled frame
    asked: list[str] = field(default_factory=list)  # DIs requested, in order

    def answer(self, request: Frame) -> bytes | None:
        """The bytes this meter sends for `request`, or None when it keeps quiet."""
        if request.is_reply or self.silent:
            return None
        if request.function == READ_ADDRESS:
            wire = address_to_wire(self.address)  # the data field holds it low byte first too
            return self._send(Frame(self.address, READ_ADDRESS | REPLY, wire))
        if not address_matches(request.address, self.address):
            return None
        if request.function not in (READ_DATA, READ_FOLLOW_UP) or len(request.data) < 4:
            return self._send(Frame(self.address, request.function | REPLY | ERROR, OTHER))
        di = di_from_wire(request.data[:4])
        self.asked.append(di)
        if di in self.ignored:
            return None
        value = self.values.get(di)
        if value is None:
            return self._send(Frame(self.address, request.function | REPLY | ERROR, NO_DATA))
        raw = value(self.clock()) if callable(value) else value
        if request.function == READ_DATA:
            piece, more = raw[: self.split], self.split is not None and len(raw) > self.split
            tail = b""
        elif self.split is None or len(request.data) != 5:
            return self._send(Frame(self.address, request.function | REPLY | ERROR, OTHER))
        else:
            seq = request.data[4]
            start = seq * self.split
            piece, more = raw[start : start + self.split], len(raw) > start + self.split
            tail = bytes([seq])
        control = request.function | REPLY | (FOLLOWS if more else 0)
        return self._send(Frame(self.address, control, request.data[:4] + piece + tail))

    def _send(self, frame: Frame) -> bytes:
        if self.noise is not None:
            return self.noise
        if self.reply_as is not None:
            frame = Frame(self.reply_as, frame.control, frame.data)
        wire = bytearray(frame.encode(preamble=False))
        if self.garbled:
            wire[-2] = (wire[-2] + 1) & 0xFF
        return self.junk + self.preamble + bytes(wire)


class SimulatedBus:
    """Meters on one line: a fresh pseudo-terminal, or `port` (a real serial device)."""

    def __init__(
        self,
        meters: Iterable[SimulatedMeter],
        port: str | None = None,
        baudrate: int = 2400,
        parity: str = "E",
        echo: bool = False,
    ) -> None:
        self.meters = list(meters)
        self.echo = echo  # a half-duplex adapter that hears its own requests
        self._serial: serial.Serial | None = None
        if port is None:
            self._fd, self._slave = os.openpty()
            tty.setraw(self._slave)  # no echo, no line editing until the driver opens it
            os.set_blocking(self._fd, False)
            self.port = os.ttyname(self._slave)
        else:
            self._serial = serial.Serial(
                port, baudrate, parity=parity, timeout=0, write_timeout=0, exclusive=True
            )
            self._fd = self._serial.fileno()
            self.port = port
        self._rx = bytearray()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False
        self._closed = False

    async def start(self) -> None:
        asyncio.get_running_loop().add_reader(self._fd, self._on_readable)
        self._running = True

    async def stop(self) -> None:
        """Stop answering and close the line: the driver's side sees the port go away."""
        if self._running:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._running = False
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._closed:
            return
        self._closed = True
        if self._serial is not None:
            self._serial.close()
        else:
            for fd in (self._fd, self._slave):
                with contextlib.suppress(OSError):
                    os.close(fd)

    async def __aenter__(self) -> SimulatedBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # the port went away: stop listening, or this fires forever
            asyncio.get_running_loop().remove_reader(self._fd)
            self._running = False
            return
        self._rx += chunk
        while True:
            found, used = scan(bytes(self._rx))
            del self._rx[:used]
            if found is None:
                return
            if isinstance(found, FrameError):
                continue  # a meter ignores a garbled request
            if self.echo and not found.is_reply:
                self._spawn(self._reply(found.encode(), 0.0))
            for meter in self.meters:
                reply = meter.answer(found)
                if reply is not None:
                    if meter.ahead:
                        self._spawn(self._reply(meter.ahead, 0.0))
                    self._spawn(self._reply(reply, meter.delay))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply(self, data: bytes, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        with contextlib.suppress(OSError):  # the line was closed meanwhile
            os.write(self._fd, data)


def values_for(points: Iterable[Dlt645Point], curve: LoadCurve) -> dict[str, Value]:
    """DI -> value at time t for a profile's points: energy is the integral of the power curve.

    Values follow the DI, not the point's name: forward active energy is the
    curve's energy (tariffs 1-4 take fixed shares of it), total active power
    the curve's power; voltages, currents, power factor and frequency are
    plausible; anything else reads 0.
    """
    table: dict[str, Value] = {}
    for point in points:

        def value(t: float, point: Dlt645Point = point) -> bytes:
            raw = (_typical(point.di.upper(), curve, t) - point.offset) / point.scale
            return encode_bcd(raw, point.format, point.signed)

        table[point.di.upper()] = value
    return table


_TARIFF_SHARE = {"01": 0.1, "02": 0.3, "03": 0.4, "04": 0.2}  # sharp, peak, flat, valley


def _typical(di: str, curve: LoadCurve, t: float) -> float:
    if di == "00010000":
        return curve.energy_kwh(t)
    if di.startswith("0001") and di.endswith("00") and di[4:6] in _TARIFF_SHARE:
        return curve.energy_kwh(t) * _TARIFF_SHARE[di[4:6]]
    if di.startswith("0203"):
        return curve.power_kw(t) / (3 if di != "02030000" else 1)
    if di.startswith("0201"):
        return 230.0
    if di.startswith("0202"):
        return curve.power_kw(t) * 1000.0 / (3 * 230.0 * 0.95)
    if di.startswith("0206"):
        return 0.95
    if di == "02800002":
        return 50.0
    return 0.0
