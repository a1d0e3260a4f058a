"""Real peers for the OPC UA driver: simulated meters (asyncua servers) on 127.0.0.1.

An asyncua server takes about a second to build its address space, so each
test module shares one meter (module-scoped, in the module's event loop);
tests that disturb it (restart, forget subscriptions) leave it running.
The devices and waiting helpers are in tests/fixtures/opcua.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from drivers.opcua.simulator import LoadCurve, MeterServer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def meter() -> AsyncIterator[MeterServer]:
    """A meter drawing a steady 36 kW (0.01 kWh a second), updated every 50 ms."""
    sim = MeterServer(LoadCurve(base_kw=36.0, swing_kw=0.0), tick=0.05)
    await sim.start()
    yield sim
    await sim.close()


@pytest.hookimpl(tryfirst=True)  # marks first: tests/conftest.py and xdist read them
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each module of this folder on one xdist worker: its simulated meter (module-scoped,
    about a second to build, several under load) is built once, not once per worker."""
    here = Path(__file__).parent
    for item in items:
        if item.path.parent == here:
            item.add_marker(pytest.mark.xdist_group(f"opcua-{item.path.stem}"))
