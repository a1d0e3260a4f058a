"""Real peers for the OPC UA driver: simulated meters (asyncua servers) on 127.0.0.1.

An asyncua server takes about a second to build its address space, so each
test module shares one meter (module-scoped, in the module's event loop);
tests that disturb it (restart, forget subscriptions) leave it running.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio

from domain.reading import Reading
from drivers.opcua.driver import OpcUaDriver
from drivers.opcua.settings import OpcUaDevice
from drivers.opcua.simulator import LoadCurve, MeterServer, node_id

POINTS = [
    {"name": "import_kwh", "node": node_id("import_kwh"), "unit": "kWh", "kind": "counter"},
    {"name": "power_kw", "node": node_id("power_kw"), "unit": "kW"},
]


def device(endpoint: str, points: list[dict[str, Any]] | None = None, **opcua: Any) -> OpcUaDevice:
    """A device on `endpoint` with short timeouts; `opcua` overrides the transport's fields."""
    transport = {"endpoint": endpoint, "timeout": "500ms", "publishing_interval": "100ms"}
    return OpcUaDevice(name="m1", poll="1s", opcua={**transport, **opcua}, points=points or POINTS)


async def until(check: Callable[[], Any], within: float = 5.0, every: float = 0.05) -> Any:
    """The first truthy `check()` within `within` seconds, else None."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(every)
    return None


async def polls_until(
    driver: OpcUaDriver, ok: Callable[[list[Reading]], bool], within: float = 10.0
) -> list[Reading] | None:
    """Poll every 0.1 s until `ok(readings)`; the readings, or None after `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        readings = await driver.read()
        if ok(readings):
            return readings
        await asyncio.sleep(0.1)
    return None


def all_good(readings: list[Reading]) -> bool:
    return all(r.good for r in readings)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def meter() -> AsyncIterator[MeterServer]:
    """A meter drawing a steady 36 kW (0.01 kWh a second), updated every 50 ms."""
    sim = MeterServer(LoadCurve(base_kw=36.0, swing_kw=0.0), tick=0.05)
    await sim.start()
    yield sim
    await sim.close()


@contextlib.asynccontextmanager
async def delayed(port: int, latency: float) -> AsyncIterator[int]:
    """A TCP proxy to 127.0.0.1:`port` that delays every byte `latency` seconds each way
    (a slow link, not a slow peer: bytes in flight overlap); yields its own port."""
    pipes: set[asyncio.Task[None]] = set()

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(due - time.monotonic())
                if not data:
                    break
                dst.write(data)
                await dst.drain()

        sender = asyncio.create_task(deliver())
        try:
            while data := await src.read(65536):
                queue.put_nowait((time.monotonic() + latency, data))
            queue.put_nowait((time.monotonic() + latency, b""))
            await sender
        finally:
            sender.cancel()
            dst.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            pipes.add(asyncio.create_task(task))

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield proxy.sockets[0].getsockname()[1]
    finally:
        proxy.close()
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        await proxy.wait_closed()
