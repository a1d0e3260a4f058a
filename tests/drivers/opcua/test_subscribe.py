"""mode: subscribe: the latest values per poll, every counter change in order, and a
subscription that survives server restarts and servers that forget it."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from asyncua import ua

from domain.reading import Quality
from drivers.opcua._subscription import Feed
from drivers.opcua.driver import OpcUaDriver
from drivers.opcua.simulator import MeterServer
from tests.fixtures.opcua import POINTS, all_good, device, polls_until, until

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(30)]


def subscriber(meter: MeterServer, points: list | None = None, **opcua) -> OpcUaDriver:
    return OpcUaDriver(device(meter.endpoint, points, mode="subscribe", **opcua), backoff_max=1.0)


async def test_a_poll_returns_the_latest_notified_values(meter: MeterServer) -> None:
    """Values arrive without Read calls, and a later poll sees the counter further on."""
    driver = subscriber(meter)
    try:
        first = {r.point: r for r in await driver.read()}
        reads = len(meter.reads)
        await asyncio.sleep(0.5)
        later = {r.point: r for r in await driver.read()}
    finally:
        await driver.close()
    assert first["import_kwh"].good and first["power_kw"].value == pytest.approx(36.0)
    assert later["import_kwh"].value > first["import_kwh"].value
    assert later["import_kwh"].unit == "kWh"
    assert len(meter.reads) == reads  # polls answer from the subscription


async def test_every_counter_change_is_drained_in_order(meter: MeterServer) -> None:
    """Several changes between two polls all come out of drain_changes, oldest first."""
    meter.paused = True
    driver = subscriber(meter, publishing_interval="200ms", sampling_interval="20ms")
    try:
        await driver.read()
        assert await until(driver.drain_changes)  # the value at subscription time
        steps = [2000.0 + 0.25 * i for i in range(12)]
        for value in steps:
            await meter.write("import_kwh", value)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.4)
        changes = driver.drain_changes()
    finally:
        meter.paused = False
        await driver.close()
    assert [c.value for c in changes] == steps
    assert {c.point for c in changes} == {"import_kwh"}  # gauges are not changes
    assert all(a.ts < b.ts for a, b in pairwise(changes))


@pytest.mark.parametrize("skew", [0.0, -600.0, 600.0], ids=["right", "behind", "ahead"])
async def test_changes_carry_when_the_server_took_them(meter: MeterServer, skew: float) -> None:
    """Changes written between two polls come out spaced as written, between the polls'
    counter readings, whether the server's clock is right or off by ten minutes."""
    meter.paused = True
    driver = subscriber(meter, publishing_interval="1s", sampling_interval="20ms")
    gaps = [0.1, 0.2, 0.05, 0.15, 0.1]  # 0.6 s in all: within one publishing interval
    try:
        await driver.read()
        assert await until(driver.drain_changes)  # the value at subscription time
        # one change on the skewed clock, just notified: the next publish is 1 s away
        await meter.write("import_kwh", 4999.0, source_time=time.time() + skew)
        assert await until(driver.drain_changes, every=0.01)
        before = {r.point: r for r in await driver.read()}["import_kwh"]
        written = []
        for i, gap in enumerate([*gaps, 0.0]):
            now = time.time()
            await meter.write("import_kwh", 5000.0 + i, source_time=now + skew)
            written.append(now)
            await asyncio.sleep(gap)
        changes: list = []
        assert await until(lambda: changes.extend(driver.drain_changes()) or len(changes) > 5)
        after = {r.point: r for r in await driver.read()}["import_kwh"]
    finally:
        meter.paused = False
        await driver.close()
    assert [c.value for c in changes] == [5000.0 + i for i in range(6)]
    for change, at in zip(changes, written, strict=True):
        assert change.ts - changes[0].ts == pytest.approx(at - written[0], abs=0.05)
        assert at - 0.01 <= change.ts <= at + 1.0 + 0.2  # at most a publishing interval late
    assert before.ts < changes[0].ts and changes[-1].ts <= after.ts
    assert after.value == changes[-1].value


def publish(*items: tuple[int, float | None, float | None]) -> ua.PublishResult:
    """A publish response of (client handle, source time, server time) values."""

    def stamp(t: float | None) -> datetime | None:
        return None if t is None else datetime.fromtimestamp(t, UTC)

    notification = ua.DataChangeNotification(
        MonitoredItems=[
            ua.MonitoredItemNotification(
                ClientHandle=handle,
                Value=ua.DataValue(
                    ua.Variant(1.0), SourceTimestamp=stamp(source), ServerTimestamp=stamp(server)
                ),
            )
            for handle, source, server in items
        ]
    )
    return ua.PublishResult(
        NotificationMessage=ua.NotificationMessage(NotificationData=[notification])
    )


async def test_server_times_fall_back_and_follow_a_clock_step() -> None:
    """SourceTimestamp, else ServerTimestamp, else none; each item keeps its own offset,
    the smallest seen, until its clock steps back."""
    feed = Feed({}, lambda *_: None, lambda _: None)
    feed.since = 0.0
    now = time.time()
    result = publish(
        (1, now - 600.2, None), (1, now - 600.5, None), (2, None, now - 0.1), (3, None, None)
    )
    feed.arrived(result)
    items = result.NotificationMessage.NotificationData[0].MonitoredItems
    assert feed.taken_at(items[0]) == pytest.approx(now, abs=0.05)  # the newest: at arrival
    assert feed.taken_at(items[1]) == pytest.approx(now - 0.3, abs=0.05)
    assert feed.taken_at(items[2]) == pytest.approx(now, abs=0.05)
    assert feed.taken_at(items[3]) is None
    feed.arrived(publish((1, time.time() - 601.0, None)))  # a slower publish: offset kept
    assert feed.taken_at(items[0]) == pytest.approx(now, abs=0.05)
    feed.arrived(publish((1, time.time() - 630.0, None)))  # the clock stepped back 30 s
    assert feed.taken_at(items[0]) == pytest.approx(now + 30.0 - 0.2, abs=0.05)


async def test_a_missing_node_is_bad_in_subscribe_mode_too(meter: MeterServer) -> None:
    """The server refuses the monitored item: a bad reading with the status; others good."""
    ghost = {"name": "gas_m3", "node": "ns=2;s=Boiler.GasVolume", "unit": "m3", "kind": "counter"}
    driver = subscriber(meter, [*POINTS, ghost])
    try:
        readings = {r.point: r for r in await driver.read()}
    finally:
        await driver.close()
    assert readings["gas_m3"].quality is Quality.BAD
    assert readings["gas_m3"].reason == (
        "m1 ns=2;s=Boiler.GasVolume: BadNodeIdUnknown (node does not exist)"
    )
    assert readings["import_kwh"].good and readings["power_kw"].good


async def test_a_silent_subscription_is_detected_and_recreated(
    meter: MeterServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The server forgets the subscription but answers reads: the driver re-creates it."""
    driver = subscriber(meter)
    try:
        assert all_good(await driver.read())
        assert await meter.forget_subscriptions() == 1
        forgotten = time.time()
        driver.drain_changes()
        resumed = await until(
            lambda: [c for c in driver.drain_changes() if c.ts > forgotten + 0.5], within=6.0
        )
        readings = await driver.read()
    finally:
        await driver.close()
    assert resumed, "no counter change after the subscription was forgotten"
    assert all_good(readings)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "while the server answers reads; re-creating it" in warnings[0]


async def test_a_server_restart_is_survived(meter: MeterServer) -> None:
    """Down: polls are bad at once and never raise; back up: session and subscription return."""
    driver = subscriber(meter)
    try:
        assert all_good(await driver.read())
        await meter.stop()
        down = await polls_until(driver, lambda rs: not any(r.good for r in rs), within=3.0)
        start = time.monotonic()
        during = await driver.read()
        took = time.monotonic() - start
        await meter.start()
        restarted = time.time()
        driver.drain_changes()
        back = await polls_until(driver, all_good, within=10.0)
        flowing = await until(lambda: [c for c in driver.drain_changes() if c.ts > restarted])
    finally:
        await driver.close()
    assert down is not None and took < 0.1
    assert all(r.reason and r.reason.startswith("m1 opc.tcp://127.0.0.1:") for r in during)
    assert back is not None, "no good poll within 10 s of the restart"
    assert flowing, "no counter change after the restart"
