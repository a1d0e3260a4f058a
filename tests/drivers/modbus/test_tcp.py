"""The Modbus TCP driver against real peers: a pymodbus server, and sockets that misbehave."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from config.loader import load_profile
from domain.reading import Quality
from drivers.modbus.settings import ModbusPoint, ModbusTcpDevice
from drivers.modbus.simulator import LoadCurve, MeterServer, SimulatedMeter
from drivers.modbus.tcp import ModbusTcpDriver
from tests.fixtures.modbus import POINTS
from tests.fixtures.peers import raw_server, silent

pytestmark = pytest.mark.timeout(30)


def device(port: int, unit: int = 1, timeout: str = "500ms", points=POINTS) -> ModbusTcpDevice:
    return ModbusTcpDevice(
        name="m1",
        modbus_tcp={"host": "127.0.0.1", "port": port, "unit": unit, "timeout": timeout},
        points=points,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def meter() -> AsyncIterator[tuple[SimulatedMeter, MeterServer]]:
    sim = SimulatedMeter(1, POINTS, LoadCurve(base_kw=50.0, swing_kw=0.0), counter="energy_kwh")
    server = MeterServer([sim])
    await server.start()
    yield sim, server
    await server.stop()


async def polls_recover(driver: ModbusTcpDriver, within: float = 10.0) -> bool:
    """Poll every 0.25 s until every point reads good (True) or `within` passes."""
    for _ in range(int(within / 0.25)):
        await asyncio.sleep(0.25)
        if all(r.good for r in await driver.read()):
            return True
    return False


async def test_reads_and_decodes_every_point(meter) -> None:
    """A healthy meter gives good readings with units, decoded and scaled."""
    sim, server = meter
    driver = ModbusTcpDriver(device(server.port))
    readings = {r.point: r for r in await driver.read()}
    await driver.close()
    assert readings["power_kw"].value == pytest.approx(50.0)
    assert readings["power_kw"].unit == "kW"
    assert readings["energy_kwh"].value == pytest.approx(sim.curve.start_kwh, abs=0.01)
    assert all(r.quality is Quality.GOOD for r in readings.values())


async def test_an_exception_reply_is_a_bad_reading_with_its_coordinates(meter) -> None:
    """Illegal data address: bad quality naming device, unit, address and the exception."""
    _, server = meter
    missing = ModbusPoint(name="ghost", address=900, type="uint16")
    driver = ModbusTcpDriver(device(server.port, points=[*POINTS, missing]))
    readings = {r.point: r for r in await driver.read()}
    await driver.close()
    assert readings["ghost"].quality is Quality.BAD
    assert readings["ghost"].reason == (
        "m1 unit 1 holding @0x0384 x1 (1 points): exception 0x02 illegal data address"
    )
    assert readings["power_kw"].good  # the other requests still went through


async def test_a_meter_that_never_answers_times_out_without_stalling(meter) -> None:
    """No reply: every point bad within about one timeout, not one timeout per request."""

    points = [*POINTS, ModbusPoint(name="x", address=0, type="uint16", function="holding")]
    async with raw_server(silent) as port:
        driver = ModbusTcpDriver(device(port, timeout="300ms", points=points))
        loop = asyncio.get_running_loop()
        started = loop.time()
        readings = await driver.read()
        elapsed = loop.time() - started
        await driver.close()
    assert all(r.quality is Quality.BAD for r in readings)
    assert "no reply within 0.3s" in (readings[0].reason or "")
    assert elapsed < 1.5  # three requests planned, one timeout paid


async def test_garbage_from_the_meter_is_a_bad_reading_not_a_crash() -> None:
    """Random bytes instead of a Modbus frame give bad quality, and the next poll still runs."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1000):
            writer.write(b"\x00\x01\x00\x00\x00\x03\xff\x84" + b"\xde\xad\xbe\xef" * 4)
            await writer.drain()

    async with raw_server(garbage) as port:
        driver = ModbusTcpDriver(device(port, timeout="300ms"))
        for _ in range(2):
            readings = await driver.read()
            assert readings and all(r.quality is Quality.BAD for r in readings)
        await driver.close()


async def test_nan_in_a_float_register_is_bad_quality(meter) -> None:
    """A float32 NaN is flagged, never passed on as a number."""
    sim, server = meter
    sim.curve.base_kw = float("nan")
    driver = ModbusTcpDriver(device(server.port))
    readings = {r.point: r for r in await driver.read()}
    await driver.close()
    assert readings["power_kw"].quality is Quality.BAD
    assert "nan" in (readings["power_kw"].reason or "")


async def test_an_unreachable_meter_is_bad_then_reconnected_when_it_comes_up() -> None:
    """Nothing listening: bad readings at once; once the meter is up, polls recover alone."""
    port = free_port()
    driver = ModbusTcpDriver(device(port))
    first = await driver.read()
    assert all(r.quality is Quality.BAD for r in first)
    assert "cannot connect to 127.0.0.1" in (first[0].reason or "")
    sim = SimulatedMeter(1, POINTS, LoadCurve(base_kw=5.0, swing_kw=0.0), counter="energy_kwh")
    server = MeterServer([sim], port=port)
    await server.start()
    recovered = await polls_recover(driver)
    await driver.close()
    await server.stop()
    assert recovered


async def test_a_meter_restarted_under_the_agent_is_reconnected(meter) -> None:
    """A power-cycled meter is polled again without restarting the agent."""
    sim, server = meter
    driver = ModbusTcpDriver(device(server.port))
    assert all(r.good for r in await driver.read())
    await server.stop()
    down = await driver.read()
    assert all(r.quality is Quality.BAD for r in down)
    server = MeterServer([sim], port=server.port)
    await server.start()
    recovered = await polls_recover(driver)
    await driver.close()
    await server.stop()
    assert recovered


async def test_a_meter_that_refuses_reads_across_holes_is_read_point_by_point() -> None:
    """Exception 02 for a coalesced block: the driver splits it, in the same poll and after."""
    profile = [sourced.point for sourced in load_profile("eastron-sdm630").points]
    sim = SimulatedMeter(1, profile, LoadCurve(base_kw=50.0, swing_kw=0.0), strict=True)
    server = MeterServer([sim])
    await server.start()
    driver = ModbusTcpDriver(device(server.port, points=profile))
    planned = len(driver.requests)
    try:
        first = await driver.read()
        second = await driver.read()
    finally:
        await driver.close()
        await server.stop()
    assert all(r.good for r in first) and all(r.good for r in second)
    assert {r.point: r.value for r in second}["power_kw"] == pytest.approx(50.0)
    assert len(driver.requests) > planned


async def test_a_gateway_that_closes_after_every_reply_is_read_every_poll() -> None:
    """Cheap serial gateways drop the connection after each answer: every poll still reads."""

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readexactly(12)  # MBAP + function + address + count
        tid, _, _, unit, function, _, count = struct.unpack(">HHHBBHH", request)
        data = bytes(2 * count)  # every register 0
        writer.write(
            struct.pack(">HHHBBB", tid, 0, 3 + len(data), unit, function, len(data)) + data
        )
        await writer.drain()
        writer.close()

    async with raw_server(answer_once) as port:
        driver = ModbusTcpDriver(device(port))
        results = [all(r.good for r in await driver.read()) for _ in range(4)]
        await driver.close()
    assert results == [True, True, True, True]


async def test_exception_03_on_a_block_also_splits_it() -> None:
    """Some meters answer 'illegal data value' to a count they dislike: read smaller."""
    calls: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(12):
            tid, _, _, unit, function, _, count = struct.unpack(">HHHBBHH", request[:12])
            calls.append(count)
            if count > 2:
                reply = struct.pack(">HHHBBB", tid, 0, 3, unit, function | 0x80, 3)
            else:
                data = bytes(2 * count)
                reply = struct.pack(">HHHBBB", tid, 0, 3 + len(data), unit, function, len(data))
                reply += data
            writer.write(reply)
            await writer.drain()

    points = [ModbusPoint(name=f"p{i}", address=i, type="uint16") for i in range(4)]
    async with raw_server(answer) as port:
        driver = ModbusTcpDriver(device(port, points=points))
        readings = await driver.read()
        await driver.close()
    assert all(r.good for r in readings)
    assert calls[0] == 4 and max(calls[1:]) <= 2


async def test_a_reply_from_another_unit_is_refused() -> None:
    """A gateway answering for unit 9 when unit 1 was asked: bad, and says so."""

    async def wrong_unit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(12):
            tid, _, _, _, function, _, count = struct.unpack(">HHHBBHH", request[:12])
            data = bytes(2 * count)
            writer.write(
                struct.pack(">HHHBBB", tid, 0, 3 + len(data), 9, function, len(data)) + data
            )
            await writer.drain()

    async with raw_server(wrong_unit) as port:
        driver = ModbusTcpDriver(device(port))
        readings = await driver.read()
        await driver.close()
    assert all(r.quality is Quality.BAD for r in readings)
    assert "unit 9 answered instead: is `unit` right?" in (readings[0].reason or "")


async def test_coils_and_discrete_inputs_read_as_one_and_zero() -> None:
    """Bits come back as 1.0 and 0.0, in the order of their addresses."""

    async def bits(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(12):
            tid, _, _, unit, function, _, _ = struct.unpack(">HHHBBHH", request[:12])
            packed = bytes([0b00000101])  # bits 0 and 2 set
            writer.write(struct.pack(">HHHBBB", tid, 0, 4, unit, function, 1) + packed)
            await writer.drain()

    points = [
        ModbusPoint(name="breaker", address=0, function="coil"),
        ModbusPoint(name="door", address=1, function="coil"),
        ModbusPoint(name="alarm", address=2, function="coil"),
    ]
    async with raw_server(bits) as port:
        driver = ModbusTcpDriver(device(port, points=points))
        readings = {r.point: r.value for r in await driver.read()}
        await driver.close()
    assert readings == {"breaker": 1.0, "door": 0.0, "alarm": 1.0}


def reply(tid: int, unit: int, function: int, registers: list[int]) -> bytes:
    data = b"".join(struct.pack(">H", r) for r in registers)
    return struct.pack(">HHHBBB", tid, 0, 3 + len(data), unit, function, len(data)) + data


@pytest.mark.parametrize(
    ("kind", "answer"),
    [
        ("more registers than asked", lambda tid, u, f, c: reply(tid, u, f, list(range(c + 3)))),
        ("another function code", lambda tid, u, f, c: reply(tid, u, 4 if f == 3 else 3, [0] * c)),
    ],
)
async def test_a_reply_that_does_not_fit_its_request_is_never_a_value(kind: str, answer) -> None:
    """A reply of another size or function: bad readings (read() does not raise)."""

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(12):
            tid, _, _, unit, function, _, count = struct.unpack(">HHHBBHH", request[:12])
            writer.write(answer(tid, unit, function, count))
            await writer.drain()

    async with raw_server(peer) as port:
        driver = ModbusTcpDriver(device(port))
        readings = await driver.read()
        await driver.close()
    assert readings and all(r.quality is Quality.BAD and r.value is None for r in readings), kind
    assert "asked" in (readings[0].reason or "") or "not 3" in (readings[0].reason or "")


async def test_a_gateway_whose_meter_is_silent_costs_one_wait_per_poll() -> None:
    """Exception 0x0B after the gateway's own wait: the poll ends, not one wait per request."""

    async def gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(12):
            tid, _, _, unit, function, _, _ = struct.unpack(">HHHBBHH", request[:12])
            await asyncio.sleep(0.3)
            writer.write(struct.pack(">HHHBBB", tid, 0, 3, unit, function | 0x80, 0x0B))
            await writer.drain()

    points = [ModbusPoint(name=f"p{i}", address=100 * i, type="uint16") for i in range(4)]
    async with raw_server(gateway) as port:
        driver = ModbusTcpDriver(device(port, timeout="1s", points=points))
        loop = asyncio.get_running_loop()
        started = loop.time()
        readings = await driver.read()
        took = loop.time() - started
        await driver.close()
    assert len(driver.requests) == 4
    assert all("gateway target failed to respond" in (r.reason or "") for r in readings)
    assert took < 0.6


async def test_rtu_frames_over_tcp_for_a_transparent_converter() -> None:
    """framer: rtu reads a meter behind a serial-to-Ethernet converter in transparent mode."""
    sim = SimulatedMeter(1, POINTS, LoadCurve(base_kw=7.0, swing_kw=0.0), counter="energy_kwh")
    server = MeterServer([sim], framer="rtu")
    await server.start()
    dev = ModbusTcpDevice(
        name="m1",
        modbus_tcp={"host": "127.0.0.1", "port": server.port, "framer": "rtu", "timeout": "500ms"},
        points=POINTS,
    )
    driver = ModbusTcpDriver(dev)
    readings = {r.point: r for r in await driver.read()}
    await driver.close()
    await server.stop()
    assert readings["power_kw"].value == pytest.approx(7.0)


async def test_max_gap_decides_how_many_requests_a_device_sends() -> None:
    """The device's max_gap is the plan's: 0 reads the SDM630's two blocks as four requests."""
    from config.loader import load_profile

    profile = [s.point for s in load_profile("eastron-sdm630").points]

    def requests(gap: int) -> int:
        link = {"host": "192.0.2.1", "max_gap": gap}
        return len(
            ModbusTcpDriver(ModbusTcpDevice(name="m", modbus_tcp=link, points=profile)).requests
        )

    assert (requests(8), requests(0)) == (2, 4)


async def test_the_link_comes_back_in_the_background_between_polls() -> None:
    """After a failed connect nobody needs to poll: the reconnection keeps trying by itself."""
    port = free_port()
    driver = ModbusTcpDriver(device(port))
    assert not any(r.good for r in await driver.read())
    sim = SimulatedMeter(1, POINTS, LoadCurve(base_kw=5.0, swing_kw=0.0), counter="energy_kwh")
    server = MeterServer([sim], port=port)
    await server.start()
    for _ in range(40):
        if driver.link.client.connected:
            break
        await asyncio.sleep(0.25)
    connected = driver.link.client.connected
    await driver.close()
    await server.stop()
    assert connected


def counting_meter(framer: str = "socket") -> tuple[SimulatedMeter, MeterServer]:
    """A meter on a real pymodbus server whose energy advances 1 kWh per request answered, so
    every reply tells which request it answers (a stale one shows an older count)."""
    hours = iter(range(10_000))
    sim = SimulatedMeter(
        1, [POINTS[1]], LoadCurve(base_kw=1.0, swing_kw=0.0, t0=0.0), counter="energy_kwh",
        clock=lambda: 3600.0 * next(hours),
    )  # fmt: skip
    return sim, MeterServer([sim], framer=framer)


def energy_device(port: int, framer: str = "socket", timeout: str = "300ms") -> ModbusTcpDevice:
    link = {"host": "127.0.0.1", "port": port, "framer": framer, "timeout": timeout}
    return ModbusTcpDevice(name="m1", modbus_tcp=link, points=[POINTS[1]])


@pytest.mark.parametrize("framer", ["socket", "rtu"])
async def test_a_late_reply_is_never_taken_for_the_next_request(framer: str) -> None:
    """The meter answers after the timeout, while the next poll's request waits: the next
    poll reads that request's own value, never the late one. (pymodbus's server labels the
    late reply with the newest transaction id; RTU frames have none: neither saves it.)"""
    sim, server = counting_meter(framer)
    await server.start()
    # seconds, not tenths: a loaded CI machine (the systemd tier beside the suite) must
    # not make the in-time request late too
    driver = ModbusTcpDriver(energy_device(server.port, framer, timeout="1s"))
    try:
        sim.delay = 1.6  # past the 1 s timeout
        [first] = await driver.read()
        asked_late = sim.last_served
        sim.delay = 0.5  # in time; the late reply lands at 1.6 s, while this request waits
        await asyncio.sleep(0.3)
        [second] = await driver.read()
        asked_now = sim.last_served
    finally:
        await driver.close()
        await server.stop()
    assert first.quality is Quality.BAD and "no reply within 1s" in (first.reason or "")
    assert asked_late is not None and asked_now is not None and asked_now != asked_late
    assert second.good and second.value == pytest.approx(asked_now[1], abs=0.01)


async def test_a_reply_that_comes_while_nothing_waits_is_thrown_away_and_counted() -> None:
    """The late reply arrives between polls: thrown away, counted for the meter's unit, and
    the next poll reads a fresh value."""
    sim, server = counting_meter()
    await server.start()
    driver = ModbusTcpDriver(energy_device(server.port, timeout="1s"))
    try:
        sim.delay = 1.6
        [first] = await driver.read()
        await asyncio.sleep(1.0)  # the reply came at 1.6 s, to nobody
        late = driver.late_replies
        sim.delay = 0.0
        [second] = await driver.read()
        asked_now = sim.last_served
    finally:
        await driver.close()
        await server.stop()
    assert first.quality is Quality.BAD and late == 1
    assert asked_now is not None and second.value == pytest.approx(asked_now[1], abs=0.01)


async def test_a_reply_with_another_transaction_id_is_refused() -> None:
    """A reply carrying transaction id 0 (which pymodbus lets through for any request) is no
    answer to the request sent with another id: a bad reading that says so."""

    async def tid_zero(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(12):
            _, _, _, unit, function, _, count = struct.unpack(">HHHBBHH", request[:12])
            writer.write(reply(0, unit, function, [7] * count))
            await writer.drain()

    async with raw_server(tid_zero) as port:
        driver = ModbusTcpDriver(device(port))
        readings = await driver.read()
        await driver.close()
    assert readings and all(r.quality is Quality.BAD and r.value is None for r in readings)
    assert "reply with transaction id 0, not 1" in (readings[0].reason or "")


async def test_a_taken_reply_is_let_go_and_a_duplicate_after_it_is_still_thrown_away() -> None:
    """Once a reply is taken the link keeps nothing of it until the next request (issue 16:
    0.7 KB a meter); a second copy of that reply, arriving while nothing waits, is thrown
    away and counted as a late reply exactly as before, and the next poll reads afresh."""

    async def twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        while request := await reader.read(12):
            tid, _, _, unit, function, _, count = struct.unpack(">HHHBBHH", request[:12])
            served += 1
            data = b"".join(struct.pack(">H", served) for _ in range(count))
            reply = struct.pack(">HHHBBB", tid, 0, 3 + len(data), unit, function, len(data))
            writer.write(reply + data)
            await writer.drain()
            await asyncio.sleep(0.05)  # the copy comes after the reply was taken
            writer.write(reply + data)
            await writer.drain()

    counter = [ModbusPoint(name="n", address=0, function="holding", type="uint16")]
    async with raw_server(twice) as port:
        driver = ModbusTcpDriver(device(port, points=counter))
        try:
            [first] = await driver.read()
            ctx = driver.link.client.ctx
            kept = (ctx.last_pdu, ctx.response_future.done(), driver.link.heard)
            await asyncio.sleep(0.2)  # the copy arrives while nothing waits
            late = driver.late_replies
            [second] = await driver.read()
        finally:
            await driver.close()
    assert kept == (None, True, b"")
    assert not isinstance(ctx.response_future, asyncio.Future)  # the stand-in: no result kept
    assert late == 1
    assert (first.value, second.value) == (1.0, 2.0) and first.good and second.good
