"""Serve N simulated meters of 20 float32 input registers each, for the benchmarks.

Run in its own process so the meters' CPU never counts against the agent's:
    python bench/sim_meters.py N PORTFILE
writes their ports to PORTFILE and serves until SIGTERM: one
server per meter, as a plant's meters are separate hosts. PORTFILE.requests
holds the number of read requests answered so far (every half second), and
PORTFILE.skipped the turns the meters lost so far: each gap of 1.5 s or more
between two reads of one meter counts round(gap) - 1 turns (the benchmarks poll
every second; half a second late is the poller falling behind, whatever its phase).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time

from drivers.modbus.settings import ModbusPoint
from drivers.modbus.simulator import LoadCurve, MeterServer, SimulatedMeter

VALUES = 20
PERIOD = 1.0  # s between a meter's polls in the benchmarks


class Turns:
    """A meter's clock that also notes the turns its poller lost (see the docstring)."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.skipped = 0

    def __call__(self) -> float:
        now = time.time()
        if self.last is not None and now - self.last >= 1.5 * PERIOD:
            self.skipped += round((now - self.last) / PERIOD) - 1
        self.last = now
        return now


def points() -> list[ModbusPoint]:
    names = ["import_kwh", "power_kw"] + [f"value_{i}" for i in range(VALUES - 2)]
    return [
        ModbusPoint(
            name=name,
            address=2 * i,
            function="input",
            type="float32",
            unit="kWh" if name == "import_kwh" else "kW" if name == "power_kw" else "",
            kind="counter" if name == "import_kwh" else "gauge",
        )
        for i, name in enumerate(names)
    ]


async def main(count: int, portfile: str) -> None:
    servers = []
    turns = [Turns() for _ in range(count)]
    for i in range(count):
        curve = LoadCurve(base_kw=50.0 + i, swing_kw=10.0)
        meter = SimulatedMeter(1, points(), curve, clock=turns[i])
        server = MeterServer([meter])
        await server.start()
        servers.append(server)
    with open(portfile, "w") as out:
        out.write(" ".join(str(s.port) for s in servers))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    counts = portfile + ".requests"
    while not stop.is_set():  # how many requests were answered so far, for values/s
        with open(counts + ".tmp", "w") as out:
            out.write(str(sum(m.requests for s in servers for m in s.meters)))
        os.replace(counts + ".tmp", counts)
        with open(portfile + ".skipped.tmp", "w") as out:
            out.write(str(sum(t.skipped for t in turns)))
        os.replace(portfile + ".skipped.tmp", portfile + ".skipped")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    for server in servers:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
