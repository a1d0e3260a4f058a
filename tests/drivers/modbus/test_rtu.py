"""Modbus RTU on a shared line: a pymodbus server at the far end of an in-process null modem."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import serial

from config.loader import load_profile
from domain.reading import Quality
from drivers.modbus.rtu import ModbusRtuDriver, switch_line
from drivers.modbus.settings import ModbusPoint, ModbusRtuDevice
from drivers.modbus.simulator import LoadCurve, SerialMeterServer, SimulatedMeter
from tests.fixtures.rtu_bus import RtuBus, profile_meter
from tests.fixtures.serial import NullModem

pytestmark = pytest.mark.timeout(60)

POINTS = [
    ModbusPoint(name="power_kw", address=0, type="float32", function="input", unit="kW"),
    ModbusPoint(
        name="import_kwh", address=10, type="uint32", scale=0.01, unit="kWh", kind="counter"
    ),
]


def device(port: str, unit: int, timeout: str = "300ms") -> ModbusRtuDevice:
    return ModbusRtuDevice(
        name=f"meter{unit}",
        modbus_rtu={
            "port": port,
            "baudrate": 9600,
            "parity": "N",
            "unit": unit,
            "timeout": timeout,
        },
        points=POINTS,
    )


@pytest.fixture
async def line() -> AsyncIterator[tuple[NullModem, SerialMeterServer]]:
    """Meters 1 and 2 answer on the line; meter 3 is dead: its replies never arrive."""
    modem = NullModem()
    modem.start()
    modem.silent_units.add(3)
    meters = [
        SimulatedMeter(
            unit, POINTS, LoadCurve(base_kw=10.0 * unit, swing_kw=0.0), counter="import_kwh"
        )
        for unit in (1, 2, 3)
    ]
    server = SerialMeterServer(meters, modem.b)
    await server.start()
    yield modem, server
    await server.stop()
    modem.close()


async def test_two_meters_on_one_port_read_in_turn(line) -> None:
    """Two unit ids on one port share one client and both read good, with their own values."""
    modem, _ = line
    drivers = [ModbusRtuDriver(device(modem.a, unit)) for unit in (1, 2)]
    results = await asyncio.gather(*(d.read() for d in drivers))
    for driver in drivers:
        await driver.close()
    powers = [{r.point: r.value for r in readings}["power_kw"] for readings in results]
    assert powers == pytest.approx([10.0, 20.0])
    assert all(r.quality is Quality.GOOD for readings in results for r in readings)


async def test_a_dead_meter_costs_its_own_timeout_not_its_neighbours_readings(line) -> None:
    """Unit 3 never answers: it reads bad after its timeout; units 1 and 2 still read good."""
    modem, _ = line
    drivers = [ModbusRtuDriver(device(modem.a, unit)) for unit in (1, 3, 2)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    live1, dead, live2 = await asyncio.gather(*(d.read() for d in drivers))
    took = loop.time() - started
    for driver in drivers:
        await driver.close()
    assert all(r.good for r in live1 + live2)
    assert all(r.quality is Quality.BAD for r in dead)
    assert "meter3 unit 3" in (dead[0].reason or "") and "no reply within 0.3s" in (
        dead[0].reason or ""
    )
    assert took < 0.3 + 1.5  # one timeout, not one per request or per neighbour


async def test_a_port_that_does_not_exist_gives_bad_readings() -> None:
    """/dev/ttyUSB9 unplugged: bad readings that say so, no exception."""
    driver = ModbusRtuDriver(device("/dev/ttyNOPE9", 1))
    readings = await driver.read()
    await driver.close()
    assert all(r.quality is Quality.BAD for r in readings)
    assert "/dev/ttyNOPE9" in (readings[0].reason or "")


async def test_a_port_that_does_not_exist_says_what_to_check() -> None:
    """The reason is the OS's, in a technician's words, not a bare 'cannot connect'."""
    driver = ModbusRtuDriver(device("/dev/ttyNOPE9", 1))
    readings = await driver.read()
    await driver.close()
    assert "cannot connect to /dev/ttyNOPE9 @9600 8N1: no such device (is the USB-RS485 " in (
        readings[0].reason or ""
    )


async def test_a_port_another_program_holds_says_so(line) -> None:
    """The daemon (or any program) has the port open and locked: 'in use by another program'."""
    modem, _ = line
    held = serial.Serial(modem.a, 9600, exclusive=True)  # as pymodbus opens it in the daemon
    try:
        driver = ModbusRtuDriver(device(modem.a, 1))
        readings = await driver.read()
        await driver.close()
    finally:
        held.close()
    assert all(r.quality is Quality.BAD for r in readings)
    assert f"cannot connect to {modem.a} @9600 8N1: in use by another program" in (
        readings[0].reason or ""
    )


async def test_a_reply_with_a_bad_crc_is_never_a_value(line) -> None:
    """A frame damaged on the line is dropped: bad readings, and the next poll reads good."""
    modem, _ = line
    modem.corrupt_units.add(1)
    driver = ModbusRtuDriver(device(modem.a, 1))
    damaged = await driver.read()
    modem.corrupt_units.clear()
    clean = await driver.read()
    await driver.close()
    assert all(r.quality is Quality.BAD and r.value is None for r in damaged)
    assert "a damaged reply arrived" in (damaged[0].reason or "")
    assert all(r.good for r in clean)


async def test_noise_before_a_reply_does_not_cost_the_reply(line) -> None:
    """A 0x00 from a transceiver turning round, before the frame: the reading is good."""
    modem, _ = line
    modem.noise = b"\x00"
    driver = ModbusRtuDriver(device(modem.a, 1))
    readings = await driver.read()
    await driver.close()
    assert all(r.good for r in readings)


async def test_a_reply_sent_twice_is_not_taken_for_the_next_answer(line) -> None:
    """A repeater that repeats replies: every register still gets its own value."""
    modem, _ = line
    modem.repeat_units.add(1)
    points = [
        ModbusPoint(name="a", address=0, type="uint32", scale=0.01, unit="kWh"),
        ModbusPoint(name="b", address=10, type="uint32", scale=0.01, unit="kWh"),
    ]
    driver = ModbusRtuDriver(
        ModbusRtuDevice(
            name="m1", modbus_rtu={"port": modem.a, "unit": 1, "max_gap": 0}, points=points
        )
    )
    polls = [await driver.read() for _ in range(3)]
    await driver.close()
    values = [{r.point: r.value for r in readings} for readings in polls]
    assert values[0]["b"] == pytest.approx(1000.0)  # the counter, not register 0's copy
    assert values[0]["a"] != values[0]["b"]
    assert values[1] == values[0] and values[2] == values[0]


async def test_each_meter_on_a_port_keeps_its_own_timeout(line) -> None:
    """The port was opened by a meter with 3 s; the dead one with 300 ms still costs 300 ms."""
    modem, _ = line
    slow_first = ModbusRtuDriver(device(modem.a, 1, timeout="3s"))
    dead = ModbusRtuDriver(device(modem.a, 3, timeout="300ms"))
    await slow_first.read()
    loop = asyncio.get_running_loop()
    started = loop.time()
    readings = await dead.read()
    took = loop.time() - started
    for driver in (slow_first, dead):
        await driver.close()
    assert all(r.quality is Quality.BAD for r in readings)
    assert took < 1.0


async def test_meters_at_different_speeds_on_one_port_are_each_asked_at_their_own() -> None:
    """Two meters on one RS-485 port, at 9600 and 19200 baud (tests/fixtures/rtu_bus: a
    meter hears only the speed the client set on the line): read in turn and all at once,
    each reads good, the port switched for each; the line is not switched needlessly."""
    slow, fast = profile_meter(3, "eastron-sdm630"), profile_meter(5, "eastron-sdm630")
    fast.baudrate = 19200
    with RtuBus([slow, fast]) as bus:
        first = rtu_device(bus.port, 3, 9600)
        second = rtu_device(bus.port, 5, 19200)
        drivers = [ModbusRtuDriver(first), ModbusRtuDriver(second)]
        try:
            for _ in range(2):
                for driver in drivers:
                    readings = await driver.read()
                    assert [r.quality for r in readings] == [Quality.GOOD], readings
            results = await asyncio.gather(*(d.read() for d in drivers))
            assert [r.quality for rs in results for r in rs] == [Quality.GOOD] * 2, results
            link = drivers[0].link
            assert link is drivers[1].link  # one port, one link
            assert not switch_line(link, second.modbus_rtu)  # at 19200 already: left as is
            assert switch_line(link, first.modbus_rtu) and link.where.endswith("@9600 8N1")
        finally:
            for driver in drivers:
                await driver.close()
    assert fast.served >= 3 and slow.served >= 3


def rtu_device(port: str, unit: int, baudrate: int) -> ModbusRtuDevice:
    points = [p for p in load_profile("eastron-sdm630").profile.points if p.name == "voltage_l1_v"]
    return ModbusRtuDevice(
        name=f"meter{unit}",
        modbus_rtu={"port": port, "baudrate": baudrate, "unit": unit, "timeout": "300ms"},
        points=points,
    )
