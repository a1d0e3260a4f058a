"""The simulated meter's standard nodes come from a shelf built once (drivers/opcua/
_address_space.py): a meter started from it serves as one built from scratch, and a
damaged cache costs only the time it saves."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from drivers.opcua import _address_space
from drivers.opcua.driver import OpcUaDriver
from drivers.opcua.simulator import LoadCurve, MeterServer
from tests.fixtures.opcua import all_good, device

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(60)]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder of this test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return _address_space._folder()


async def readings_of_a_meter() -> tuple[list, list[str]]:
    """A meter started, read once, closed: the readings and the Server namespaces."""
    sim = MeterServer(LoadCurve(base_kw=36.0, swing_kw=0.0))
    await sim.start()
    driver = OpcUaDriver(device(sim.endpoint))
    try:
        assert sim._server is not None
        return await driver.read(), await sim._server.get_namespace_array()
    finally:
        await driver.close()
        await sim.close()


async def test_the_first_meter_builds_the_shelf_and_the_next_reads_from_it(cache: Path) -> None:
    """No cache: the meter builds its nodes and leaves the shelf, whole (its mark last) and
    nothing half-built beside it; the next meter, from the shelf, reads the same."""
    built, namespaces = await readings_of_a_meter()
    assert all_good(built)
    assert (cache / "standard").is_file()
    assert [p.name for p in cache.parent.iterdir()] == [cache.name]  # no .building-* left
    again, namespaces_again = await readings_of_a_meter()
    assert all_good(again)
    assert [r.point for r in again] == [r.point for r in built]
    assert namespaces_again == namespaces


async def test_a_damaged_cache_is_said_once_and_the_meter_starts_all_the_same(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A shelf whose data is garbage: a warning naming the folder, then the nodes built."""
    cache.mkdir(parents=True)
    (cache / "standard").touch()
    (cache / "standard.dir").write_text("'i=84', (0, 10)\n")
    (cache / "standard.dat").write_bytes(b"\x00garbage\xff" * 4)
    with caplog.at_level(logging.WARNING, logger="edge_agent.opcua"):
        readings, _ = await readings_of_a_meter()
    assert all_good(readings)
    assert [r.message for r in caplog.records if str(cache) in r.message]
