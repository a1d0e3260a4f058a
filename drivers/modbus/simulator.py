"""Simulated Modbus TCP meters for the demo, the tests and the benchmarks.

A meter's power follows a smooth curve and its energy register is the exact
integral of that curve, computed at the moment a request is answered, as a
real meter's would be. The simulator also remembers the first energy value it
served, so "what the meter advanced" is known independently of the agent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus.codec import decode_registers, encode_registers, width
from drivers.modbus.settings import ModbusPoint

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


@dataclass
class LoadCurve:
    """P(t) = base + swing * sin(2 pi t / period + phase), in kW; energy in kWh."""

    base_kw: float
    swing_kw: float
    period_s: float = 120.0
    phase: float = 0.0
    start_kwh: float = 1000.0
    t0: float = field(default_factory=time.time)

    def power_kw(self, t: float) -> float:
        return self.base_kw + self.swing_kw * math.sin(self._angle(t))

    def energy_kwh(self, t: float) -> float:
        dt = t - self.t0
        ramp = self.base_kw * dt / 3600.0
        wave = self.swing_kw * self.period_s / (2 * math.pi * 3600.0)
        return self.start_kwh + ramp + wave * (math.cos(self.phase) - math.cos(self._angle(t)))

    def _angle(self, t: float) -> float:
        return 2 * math.pi * (t - self.t0) / self.period_s + self.phase


# kWh and kW are the curve's units; a register in Wh, W or MWh holds a multiple
_PER_KILO = {"Wh": 1000.0, "W": 1000.0, "MWh": 0.001, "MW": 0.001}


def _typical(name: str, power_kw: float) -> float:
    """Plausible values for the other points of a meter."""
    if name.startswith("voltage"):
        return 230.0
    if name.startswith("current"):
        return power_kw * 1000.0 / (3 * 230.0)
    if name.startswith("frequency"):
        return 50.0
    if name == "power_factor":
        return 0.95
    return 0.0


@dataclass
class SimulatedMeter:
    unit: int
    points: list[ModbusPoint]
    curve: LoadCurve
    counter: str = "import_kwh"
    power: str = "power_kw"
    clock: Callable[[], float] = time.time
    offline: bool = False  # answer every request with "gateway target failed to respond"
    strict: bool = False  # refuse reads that span registers between the points, as many meters do
    delay: float = 0.0  # seconds from reading the values to answering: a slow gateway
    first_served: tuple[float, float] | None = None  # (t, kWh) of the first energy read
    last_served: tuple[float, float] | None = None
    requests: int = 0  # read requests answered

    def values(self, t: float) -> dict[str, float]:
        """Every point's value at `t`, in the point's own unit (Wh, kWh, W, kW ...)."""
        power = self.curve.power_kw(t)
        out = {}
        for point in self.points:
            if point.name == self.counter:
                out[point.name] = self.curve.energy_kwh(t) * _PER_KILO.get(point.unit, 1.0)
            elif point.name == self.power:
                out[point.name] = power * _PER_KILO.get(point.unit, 1.0)
            else:
                out[point.name] = _typical(point.name, power)
        return out

    def device(self) -> SimDevice:
        if self.strict:  # only the points' own registers exist
            blocks = [
                SimData(address=p.address, count=width(p), values=0, datatype=DataType.REGISTERS)
                for p in sorted(self.points, key=lambda p: p.address)
            ]
        else:
            size = max(p.address + width(p) for p in self.points) + 1
            blocks = [SimData(address=0, count=size, values=0, datatype=DataType.REGISTERS)]
        return SimDevice(id=self.unit, simdata=blocks, action=self._answer)

    async def _answer(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: object,
    ) -> ExcCodes | None:
        if self.offline:
            return ExcCodes.GATEWAY_NO_RESPONSE
        self.requests += 1
        t = self.clock()
        values = self.values(t)
        answer = []  # (offset, words): written when the answer goes out, after the delay
        for point in self.points:
            if point.address + width(point) <= address or point.address >= address + count:
                continue
            words = encode_registers(values[point.name], point)
            answer.append((point.address - start_address, words))
            if point.name == self.counter:
                served = (t, decode_registers(words, point) / _PER_KILO.get(point.unit, 1.0))
                self.first_served = self.first_served or served
                self.last_served = served
        if self.delay:
            await asyncio.sleep(self.delay)
        for offset, words in answer:  # the server reads its reply from these registers next
            registers[offset : offset + len(words)] = words
        return None


class MeterServer:
    """One TCP port serving several simulated meters (unit ids), like a gateway."""

    def __init__(
        self,
        meters: list[SimulatedMeter],
        host: str = "127.0.0.1",
        port: int = 0,
        framer: str = "socket",  # "rtu": RTU frames over TCP, like a transparent converter
    ):
        self.meters = meters
        kind = FramerType.RTU if framer == "rtu" else FramerType.SOCKET
        self._server = ModbusTcpServer(
            [m.device() for m in meters], address=(host, port), framer=kind
        )
        self.host = host
        self.port = port

    async def start(self) -> None:
        await self._server.serve_forever(background=True)
        transport = self._server.transport  # typed a BaseTransport; a listener's is a Server
        if isinstance(transport, asyncio.Server) and self.port == 0:
            self.port = transport.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self._server.shutdown()


class SerialMeterServer:
    """Meters on one RS-485 line (a serial port or a pty): units not served stay silent."""

    def __init__(self, meters: list[SimulatedMeter], port: str, baudrate: int = 9600) -> None:
        self.meters = meters
        self._server = ModbusSerialServer(
            [m.device() for m in meters],
            framer=FramerType.RTU,
            port=port,
            baudrate=baudrate,
            parity="N",
            ignore_missing_devices=True,
        )

    async def start(self) -> None:
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        await self._server.shutdown()
