"""Scanning a DL/T 645 port: the meters of both editions found on a simulated line (the
meters of tests/fixtures/dlt645_std.py, written from the standards), and nothing else."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import serial

from domain.errors import Disconnected
from drivers.bus import lock_for
from drivers.dlt645 import _link
from drivers.dlt645.scan import Dlt645Found, scan_port
from drivers.dlt645.settings import Dlt645Device
from tests.fixtures.dlt645_std import Bus, Meter, bcd

pytestmark = pytest.mark.timeout(60)

OLD, NEW, GONE = "000000000414", "000012345678", "000000000009"
READS = {0x01, 0x11, 0x13}  # 1997 read data, 2007 read data, 2007 read address


def old(**faults: Any) -> Meter:
    return Meter(OLD, "1997", {"9010": bcd(9580.15, 8, 2)}, **faults)


def new(address: str = NEW, **faults: Any) -> Meter:
    return Meter(address, "2007", {"00010000": bcd(12345.67, 8, 2)}, **faults)


async def test_one_meter_of_each_edition_is_found_by_the_wildcard() -> None:
    """No addresses: each edition's wildcard question reaches its one meter; each is found
    with its own edition, address and what it said. Only read commands are sent."""
    async with Bus([old(), new()]) as line:
        found = await scan_port(line.port, baudrates=(2400,), parity="N", timeout=0.3)
    assert found == [
        Dlt645Found(
            NEW,
            "2007",
            2400,
            "N",
            (
                "2007 read address (13H) at AAAAAAAAAAAA → 000012345678",
                "2007 read 00010000 → 12345.67 kWh",
            ),
        ),
        Dlt645Found(
            OLD,
            "1997",
            2400,
            "N",
            ("1997 read 9010 at AAAAAAAAAAAA → 9580.15 kWh from meter 000000000414",),
        ),
    ]
    assert {r.control for r in line.heard} <= READS


async def test_given_addresses_are_asked_in_both_editions() -> None:
    """Each address in turn, 2007 then 1997: the 1997 and 2007 meters are told apart, the
    silent address is not a meter."""
    async with Bus([old(), new()]) as line:
        found = await scan_port(
            line.port, baudrates=(2400,), addresses=[OLD, NEW, GONE], parity="N", timeout=0.3
        )
    assert [(f.address, f.edition) for f in found] == [(OLD, "1997"), (NEW, "2007")]
    assert found[0].evidence == ("1997 read 9010 → 9580.15 kWh",)
    assert found[1].evidence == ("2007 read 00010000 → 12345.67 kWh",)
    asked = [(r.address, r.control) for r in line.heard]
    assert asked == [(a, c) for a in (OLD, NEW, GONE) for c in (0x11, 0x01)]


async def test_an_abnormal_reply_proves_a_meter_too() -> None:
    """A meter that refuses the energy DI still answered in its edition: found, with why."""
    async with Bus([old(error=0x04)]) as line:
        (found,) = await scan_port(
            line.port, baudrates=(2400,), addresses=[OLD], parity="N", timeout=0.3
        )
    assert (found.address, found.edition) == (OLD, "1997")
    assert found.evidence == ("1997 read 9010 → error reply: password wrong",)


async def test_garbage_is_not_a_meter_but_is_heard() -> None:
    """An address answering garbage: not found; `heard` tells the technician what came."""
    heard: list[str] = []
    async with Bus([new(garbage=b"\x12\x34\x56\x78")]) as line:
        found = await scan_port(
            line.port, baudrates=(2400,), addresses=[NEW], parity="N", timeout=0.3, heard=heard
        )
    assert found == []
    assert heard[0].startswith(f"{line.port} @2400 8N1: 2007 read 00010000 at {NEW}: ")
    assert "only 4 bytes (12 34 56 78)" in heard[0]


async def test_a_wrong_checksum_is_not_a_meter() -> None:
    """A reply failing its checksum proves nothing: not found, heard as garbled."""
    heard: list[str] = []
    async with Bus([old(bad_checksum=True)]) as line:
        found = await scan_port(
            line.port, baudrates=(2400,), addresses=[OLD], parity="N", timeout=0.3, heard=heard
        )
    assert found == []
    assert any("heard a garbled frame" in line_ for line_ in heard)


async def test_two_meters_of_one_edition_collide_on_the_wildcard() -> None:
    """Two 2007 meters answer the wildcard at once: neither is guessed; heard asks for
    their addresses."""
    heard: list[str] = []
    async with Bus([new(), new("000000000001")]) as line:
        found = await scan_port(line.port, baudrates=(2400,), parity="N", timeout=0.3, heard=heard)
    assert found == []
    assert any("is more than one meter on the line?" in line_ for line_ in heard)


async def test_each_meter_is_found_at_its_own_speed() -> None:
    """A meter set to 1200 bps answers only there: found once, with that speed."""
    async with Bus([old(baudrate=1200), new(baudrate=9600)]) as line:
        found = await scan_port(line.port, parity="N", timeout=0.2)
    assert sorted((f.address, f.edition, f.baudrate) for f in found) == [
        (OLD, "1997", 1200),
        (NEW, "2007", 9600),
    ]


async def test_a_slow_meter_within_the_timeout_is_found() -> None:
    """A meter taking 150 ms of a 300 ms timeout is found; one past it is not."""
    async with Bus([old(delay=0.15), new(delay=0.5)]) as line:
        found = await scan_port(
            line.port, baudrates=(2400,), addresses=[OLD, NEW], parity="N", timeout=0.3
        )
    assert [f.address for f in found] == [OLD]


async def test_a_port_held_by_another_program_is_refused_before_sending() -> None:
    """Another program (here an exclusive open, as the agent's service does) holds the port:
    Disconnected says so, and nothing reaches the line."""
    async with Bus([new()]) as line:
        holder = serial.Serial(line.port, 2400, exclusive=True)
        try:
            with pytest.raises(Disconnected, match="in use by another program") as caught:
                await scan_port(line.port, parity="N", timeout=0.3)
        finally:
            holder.close()
    assert str(caught.value).startswith(f"cannot scan {line.port}: ")
    assert line.heard == []


async def test_a_port_this_agent_polls_is_scanned_through_its_link() -> None:
    """The port is attached by a running driver: the scan shares its link and bus lock, at
    its speed only, instead of opening the port a second time."""
    async with Bus([new(), old()]) as line:
        dev = Dlt645Device(
            name="poller",
            dlt645={"port": line.port, "parity": "N", "address": NEW, "timeout": "300ms"},
            points=[{"name": "e", "di": "00010000"}],
        )
        link = _link.attach(dev.name, dev.dlt645)
        try:
            found = await scan_port(line.port, baudrates=(1200, 4800), parity="E", timeout=0.3)
        finally:
            await _link.detach(link)
    assert sorted((f.address, f.baudrate, f.parity) for f in found) == [
        (OLD, 2400, "N"),
        (NEW, 2400, "N"),
    ]


async def test_the_scan_waits_for_the_bus_lock() -> None:
    """While another exchange holds the port's lock (an agent's poll), the scan sends
    nothing; it goes on once the lock is free."""
    async with Bus([new()]) as line:
        lock = lock_for(line.port)
        await lock.acquire()
        task = asyncio.create_task(
            scan_port(line.port, baudrates=(2400,), addresses=[NEW], parity="N", timeout=0.3)
        )
        await asyncio.sleep(0.3)  # real time: the scan's own timeout would have passed
        held = list(line.heard)
        lock.release()
        found = await task
    assert held == []
    assert [f.address for f in found] == [NEW]


async def test_a_missing_port_is_refused() -> None:
    """No such device: Disconnected naming it."""
    with pytest.raises(Disconnected, match="no such device"):
        await scan_port("/dev/ttyDLT645-scan-absent", timeout=0.1)


async def test_an_address_must_be_twelve_digits() -> None:
    """A typo in an address is refused before the port is opened."""
    with pytest.raises(ValueError, match="12 digits"):
        await scan_port("/dev/ttyDLT645-scan-absent", addresses=["1234"])
