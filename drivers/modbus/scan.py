"""`edge-agent scan` on Modbus: which unit ids answer on a serial port or a TCP host, at
which line settings, and what their registers read.

The sweeps are here; the lines they ask through, and the read frames, are in
scan_lines.py (read-only by construction: only the four read functions are built).
A unit is "found" when it answers the detection read at all, with registers or with
an exception (a meter that says "illegal data address" is still a meter); exceptions
0x0A and 0x0B come from a gateway about a meter that is not there, so they are not.
On a serial line unit 0 is broadcast (never answered: MODBUS over Serial Line V1.02
§2.2), so a serial sweep skips it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from domain.errors import DecodeError
from drivers.modbus.codec import decode_all, plan
from drivers.modbus.scan_lines import (
    Answer,
    Line,
    PortBusy,
    SerialLine,
    TcpLine,
    crc16,
    find_rtu,
    read_pdu,
)
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
    "find_rtu",
    "read_pdu",
    "read_points",
    "sweep_serial",
    "sweep_tcp",
]

SPEEDS = (9600, 19200, 4800, 2400)  # most common first: a found meter ends no sweep early
FRAMINGS = ("8N1", "8E1", "8N2")  # the Modbus serial default is 8E1 (V1.02 §2.5.1); 8N1 is common
DETECT = ("holding", 0, 1)  # the detection read: any meter answers it, with data or an exception


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
    """Every unit id of `units` on a host, and 255 first. A server that answers 255 and
    unit ids no two meters share (1 and 246) alike is one meter answering any unit:
    found once. One that answers 255 only is a meter reached directly (MODBUS Messaging
    on TCP/IP Implementation Guide V1.0b §4.4.1.2, p. 23: the unit id is then useless,
    0xFF is to be used, 0 is also accepted) and is found at that id, unless meters
    answer behind it.

    Unit 0 is asked only when `units` names it: a TCP-to-RTU gateway forwards unit 0
    onto its serial line as a broadcast (MODBUS over Serial Line V1.02 §2.2), which is
    for writes only, so every meter behind it would receive a read it must not answer.
    Asked, it is probed like 255 (a direct meter found at 0). Over the RTU framer
    neither is probed: the frames go on to a serial line, where 0 is broadcast and
    255 no address; there unit 0 is asked only as one of `units`, as named."""
    result = Sweep()
    started = time.monotonic()
    line = TcpLine(host, port, framer, timeout)
    fields: dict[str, object] = {"host": host, "port": port}
    if framer == "rtu":
        fields["framer"] = "rtu"
    wanted = list(units)
    direct = () if framer == "rtu" else (255, 0) if 0 in wanted else (255,)
    try:
        pdu = read_pdu(*DETECT)
        anyone = [u for u in direct if (await line.ask(u, pdu)).present(line.absent)]
        if anyone and all([(await line.ask(u, pdu)).present(line.absent) for u in (1, 246)]):
            answer = await line.ask(1, pdu)
            note = f"{answer}; answers any unit id (also {', '.join(map(str, anyone))})"
            result.found.append(Found(1, fields | {"unit": 1}, line.where, note, any_unit=True))
        else:
            await _sweep_line(line, wanted, fields, result, progress)
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
