"""What the DL/T 645 tests build on: devices on a simulated bus, closed whatever happens."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from config import load_profile
from drivers.dlt645.driver import Dlt645Driver
from drivers.dlt645.settings import Dlt645Device, Dlt645Point
from drivers.dlt645.simulator import LoadCurve, SimulatedBus, SimulatedMeter, values_for

ADDRESS = "000012345678"
T0 = 1_800_000_000.0  # a fixed clock: every value is known exactly
PROFILE = [
    p for p in load_profile("dlt645-2007-energy").profile.points if isinstance(p, Dlt645Point)
]
CURVE = LoadCurve(base_kw=36.0, swing_kw=0.0, start_kwh=12345.67, t0=T0)


def device(
    port: str,
    address: str = ADDRESS,
    points: Iterable[Dlt645Point] = PROFILE,
    timeout: str = "300ms",
    name: str = "workshop3",
) -> Dlt645Device:
    """A device as the loader makes it; parity N because pseudo-terminals refuse E."""
    return Dlt645Device(
        name=name,
        dlt645={"port": port, "parity": "N", "address": address, "timeout": timeout},
        points=list(points),
    )


def meter(address: str = ADDRESS, **faults: Any) -> SimulatedMeter:
    """A meter serving every profile point (at T0 unless a clock is given), with these faults."""
    faults.setdefault("clock", lambda: T0)
    return SimulatedMeter(address, values_for(PROFILE, CURVE), **faults)


@contextlib.asynccontextmanager
async def bus(*meters: SimulatedMeter) -> AsyncIterator[SimulatedBus]:
    async with SimulatedBus(meters) as line:
        yield line


@contextlib.asynccontextmanager
async def driver(dev: Dlt645Device) -> AsyncIterator[Dlt645Driver]:
    made = Dlt645Driver(dev)
    try:
        yield made
    finally:
        await made.close()
