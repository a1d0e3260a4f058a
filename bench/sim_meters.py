"""Serve N simulated meters of 20 float32 input registers each, for the benchmarks.

Run in its own process so the meters' CPU never counts against the agent's:
    python bench/sim_meters.py N PORTFILE
writes their ports to PORTFILE and serves until SIGTERM: one
server per meter, as a plant's meters are separate hosts. PORTFILE.requests
holds the number of read requests answered so far (every half second).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

from drivers.modbus.settings import ModbusPoint
from drivers.modbus.simulator import LoadCurve, MeterServer, SimulatedMeter

VALUES = 20


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
    for i in range(count):
        meter = SimulatedMeter(1, points(), LoadCurve(base_kw=50.0 + i, swing_kw=10.0))
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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    for server in servers:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
