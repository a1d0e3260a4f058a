"""mode: read: one Read service call per poll, every value a reading or a reason."""

from __future__ import annotations

import asyncio
import time

import pytest

from domain.reading import Quality
from drivers.opcua.driver import OpcUaDriver
from drivers.opcua.simulator import MeterServer, node_id
from tests.fixtures.opcua import POINTS, all_good, device, polls_until
from tests.fixtures.peers import delayed, raw_server, silent

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(30)]


async def read_once(endpoint: str, points: list | None = None, **opcua) -> dict:
    driver = OpcUaDriver(device(endpoint, points, **opcua))
    try:
        return {r.point: r for r in await driver.read()}
    finally:
        await driver.close()


async def test_reads_every_node_with_its_unit(meter: MeterServer) -> None:
    """A healthy server gives good readings, in the points' units, as the server has them."""
    readings = await read_once(meter.endpoint)
    assert readings["import_kwh"].quality is Quality.GOOD
    assert readings["import_kwh"].unit == "kWh"
    assert readings["import_kwh"].value == pytest.approx(
        meter.curve.energy_kwh(time.time()), abs=0.01
    )
    assert readings["power_kw"].value == pytest.approx(36.0)
    assert readings["power_kw"].unit == "kW"


async def test_one_read_service_call_per_poll(meter: MeterServer) -> None:
    """All of a device's nodes travel in one Read request, poll after poll."""
    driver = OpcUaDriver(device(meter.endpoint))
    await driver.read()
    before = len(meter.reads)
    for _ in range(3):
        await driver.read()
    await driver.close()
    assert meter.reads[before:] == [len(POINTS)] * 3


async def test_scale_and_offset_apply_to_the_raw_value(meter: MeterServer) -> None:
    """Decoded value = raw x scale + offset, as for every protocol."""
    points = [{"name": "power_w", "node": node_id("power_kw"), "unit": "W", "scale": 1000.0,
               "offset": 5.0}]  # fmt: skip
    readings = await read_once(meter.endpoint, points)
    assert readings["power_w"].value == pytest.approx(36_005.0)


async def test_a_node_that_does_not_exist_is_bad_and_the_others_good(meter: MeterServer) -> None:
    """BadNodeIdUnknown is a bad reading naming device, node and status; the rest reads."""
    ghost = {"name": "gas_m3", "node": "ns=2;s=Boiler.GasVolume", "unit": "m3", "kind": "counter"}
    readings = await read_once(meter.endpoint, [*POINTS, ghost])
    assert readings["gas_m3"].quality is Quality.BAD
    assert readings["gas_m3"].reason == (
        "m1 ns=2;s=Boiler.GasVolume: BadNodeIdUnknown (node does not exist)"
    )
    assert readings["import_kwh"].good and readings["power_kw"].good


async def test_a_boolean_reads_as_one_and_a_string_is_bad(meter: MeterServer) -> None:
    """true is 1.0; a String is a bad reading that says what came instead of a number."""
    points = [
        {"name": "breaker", "node": node_id("BreakerClosed")},
        {"name": "serial", "node": node_id("SerialNumber")},
    ]
    readings = await read_once(meter.endpoint, points)
    assert readings["breaker"].value == 1.0
    assert readings["serial"].reason == (
        "m1 ns=2;s=EnergyMeter.SerialNumber: not a number (got 'SIM-0001', a String)"
    )


async def test_a_malformed_node_id_is_bad_without_a_request(meter: MeterServer) -> None:
    """A node id that does not parse is reported as such; the other nodes are still read."""
    points = [*POINTS, {"name": "x", "node": "ns=2;i=abc"}]
    readings = await read_once(meter.endpoint, points)
    assert readings["x"].reason == (
        "m1 ns=2;i=abc: not a valid node id (write it like ns=2;s=Meter.Energy or ns=3;i=1001)"
    )
    assert readings["power_kw"].good


async def test_describe_names_nodes_endpoint_mode_and_security() -> None:
    """The plan line printed at start-up and by probe."""
    driver = OpcUaDriver(
        device(
            "opc.tcp://10.0.0.5:4840", mode="subscribe", security="Basic256Sha256/SignAndEncrypt"
        )
    )
    assert driver.describe() == (
        "m1: 2 nodes on opc.tcp://10.0.0.5:4840, subscribe, Basic256Sha256/SignAndEncrypt"
    )


async def test_no_server_is_bad_at_once_and_recovers_when_it_starts(meter: MeterServer) -> None:
    """Connection refused: bad readings with the reason, no exception; good once it listens."""
    sim = MeterServer(meter.curve, port=0)
    await sim.start()
    port = sim.port
    await sim.stop()  # the port is known and closed
    driver = OpcUaDriver(device(f"opc.tcp://127.0.0.1:{port}/"), backoff_max=0.5)
    try:
        readings = await driver.read()
        assert {r.reason for r in readings} == {
            f"m1 opc.tcp://127.0.0.1:{port}/: connection refused"
        }
        await sim.start()
        for _ in range(100):
            if all(r.good for r in await driver.read()):
                break
            await asyncio.sleep(0.1)
        assert all(r.good for r in await driver.read())
    finally:
        await driver.close()
        await sim.close()


async def test_a_server_restart_between_polls_is_survived(meter: MeterServer) -> None:
    """The session dies with the server; polls say so at once and read again once it is back."""
    driver = OpcUaDriver(device(meter.endpoint), backoff_max=1.0)
    try:
        assert all(r.good for r in await driver.read())
        await meter.stop()
        lost = await driver.read()
        start = time.monotonic()
        down = await driver.read()
        took = time.monotonic() - start
        await meter.start()
        back = await polls_until(driver, all_good, within=10.0)
    finally:
        await driver.close()
    assert not any(r.good for r in lost + down) and took < 0.1
    assert all(r.reason and r.reason.startswith(f"m1 {meter.endpoint}: ") for r in lost + down)
    assert back is not None, "no good poll within 10 s of the restart"


async def test_a_server_that_never_answers_costs_at_most_a_timeout_per_poll() -> None:
    """A hung peer: every poll returns bad within about one timeout, and never raises."""
    async with raw_server(silent) as port:
        driver = OpcUaDriver(device(f"opc.tcp://127.0.0.1:{port}/", timeout="300ms"))
        try:
            took = []
            for _ in range(3):
                start = time.monotonic()
                readings = await driver.read()
                took.append(time.monotonic() - start)
                assert not any(r.good for r in readings)
        finally:
            await driver.close()
    assert max(took) < 0.45
    assert readings[0].reason is not None and "m1 opc.tcp://127.0.0.1:" in readings[0].reason


@pytest.mark.parametrize("mode", ["read", "subscribe"])
async def test_the_first_read_waits_for_a_connection_that_takes_several_timeouts(
    meter: MeterServer, mode: str
) -> None:
    """150 ms each way, timeout 1 s: each request answers in time (with room for a machine
    busy with other tests), but connecting (and subscribing) takes many of them. The first
    read, all a probe does, waits and is good."""
    async with delayed(meter.port, 0.15) as port:
        endpoint = f"opc.tcp://127.0.0.1:{port}/"
        options = {"mode": mode, "publishing_interval": "200ms", "timeout": "1s"}
        driver = OpcUaDriver(device(endpoint, **options))
        try:
            start = time.monotonic()
            first = await driver.read()
            took = time.monotonic() - start
            start = time.monotonic()
            second = await driver.read()
            again = time.monotonic() - start
        finally:
            await driver.close()
    assert all_good(first), [r.reason for r in first]
    assert all_good(second)
    assert took > 1.0  # more than one timeout: the old first read gave up here
    assert again < (0.5 if mode == "read" else 0.05)  # one round trip, or none
