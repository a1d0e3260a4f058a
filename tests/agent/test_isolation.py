"""A dead meter on a shared RS-485 bus is isolated; its neighbours keep their pace.

Under time travel (tests/fixtures/clock.py): the test moves the wall clock a turn at a
time and the turn's polls run over a real null-modem; the dead meter's back-off is
measured on the same moved clock (Health(clock=time.time)), its timeouts in real time.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.daemon import Agent
from agent.health import OFFLINE_AFTER, Health
from config.loader import load_config
from drivers.modbus.settings import ModbusPoint
from drivers.modbus.simulator import LoadCurve, SerialMeterServer, SimulatedMeter
from tests.fixtures.clock import Clock, ManualScheduler
from tests.fixtures.serial import NullModem

pytestmark = pytest.mark.timeout(60)

POINTS = [
    ModbusPoint(name="import_kwh", address=0, type="uint32", scale=0.01, unit="kWh", kind="counter")
]
CONFIG = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
buffer: {path: %(dir)s/buffer.db}
sync: {url: "http://127.0.0.1:9/api/v1/batches"}
devices:
%(devices)s"""
DEVICE = """\
  - name: meter%(unit)d
    modbus_rtu: {port: %(port)s, baudrate: 9600, parity: N, unit: %(unit)d, timeout: 300ms}
    poll: 500ms
    points: [{name: import_kwh, address: 0, type: uint32, scale: 0.01, unit: kWh, kind: counter}]
    energy: {carrier: electricity, counter: import_kwh}
"""


def travelling(path: Path) -> Agent:
    """The agent on `path` with its jobs and the devices' back-off on the test's clock."""
    (path.parent / "sync-token").write_text("t")
    return Agent(load_config(path), scheduler=ManualScheduler(), health=Health(clock=time.time))


async def test_a_dead_meter_is_polled_less_and_its_neighbours_on_time(
    tmp_path: Path, clock: Clock
) -> None:
    """After a few failed polls meter 3 is polled at a backed-off pace; 1 and 2 every turn."""
    modem = NullModem()
    modem.start()
    modem.silent_units.add(3)
    meters = [
        SimulatedMeter(u, POINTS, LoadCurve(10.0, 0.0), counter="import_kwh") for u in (1, 2, 3)
    ]
    server = SerialMeterServer(meters, modem.b)
    await server.start()
    devices = "".join(DEVICE % {"unit": u, "port": modem.a} for u in (1, 2, 3))
    (tmp_path / "agent.yaml").write_text(CONFIG % {"dir": tmp_path, "devices": devices})
    agent = travelling(tmp_path / "agent.yaml")
    await agent.start()
    try:
        await clock.run(agent, 8.0)
    finally:
        await agent.stop()
        await server.stop()
        modem.close()
    turns = 8.0 / 0.5
    assert modem.requests[1] >= turns - 3 and modem.requests[2] >= turns - 3
    assert OFFLINE_AFTER <= modem.requests[3] <= turns / 2
    assert agent.health.devices["meter1"].failing_since == 0
    assert agent.health.devices["meter3"].failing_since >= OFFLINE_AFTER


async def test_an_offline_meter_that_answers_again_is_polled_every_turn(
    tmp_path: Path, clock: Clock
) -> None:
    """Dead for a while, then back: once it answers, it is polled at its own pace again."""
    modem = NullModem()
    modem.start()
    modem.silent_units.add(3)
    meters = [SimulatedMeter(3, POINTS, LoadCurve(10.0, 0.0), counter="import_kwh")]
    server = SerialMeterServer(meters, modem.b)
    await server.start()
    (tmp_path / "agent.yaml").write_text(
        CONFIG % {"dir": tmp_path, "devices": DEVICE % {"unit": 3, "port": modem.a}}
    )
    agent = travelling(tmp_path / "agent.yaml")
    await agent.start()
    try:
        await clock.run(agent, 3.0)
        assert agent.health.devices["meter3"].failing_since >= OFFLINE_AFTER
        modem.silent_units.clear()  # the meter is back
        await clock.run(agent, 6.0)
        before = modem.requests[3]
        await clock.run(agent, 2.0)
        after = modem.requests[3]
    finally:
        await agent.stop()
        await server.stop()
        modem.close()
    assert agent.health.devices["meter3"].failing_since == 0
    assert agent.health.devices["meter3"].offline_until == 0.0
    assert after - before >= 3  # every 500 ms turn again
