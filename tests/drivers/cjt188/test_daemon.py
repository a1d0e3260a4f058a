"""The agent itself polling CJ/T 188 meters on a pseudo-terminal, under time travel
(tests/fixtures/clock.py): the simulated meters count on the moved wall clock, and every
bit of heat and gas they advanced is buffered once, as heat (MJ) and natural gas (m3)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from agent.daemon import Agent
from agent.health import Health
from config.loader import load_config
from tests.fixtures.cjt188 import SimulatedBus, SimulatedMeter
from tests.fixtures.clock import Clock, ManualScheduler

pytestmark = pytest.mark.timeout(60)
INTERVAL = 2

CONFIG = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
buffer: {path: %(dir)s/buffer.db}
sync: {url: "http://127.0.0.1:9/api/v1/batches", token_file: %(dir)s/sync-token}
emissions: {factor_set: cn-mee-2022, intervals: [2s, 1m]}
devices:
  - name: substation
    cjt188: {port: %(port)s, parity: N, address: "00000012345678", meter_type: heat, timeout: 300ms}
    profile: cjt188-heat
    poll: 250ms
    energy: {carrier: heat, counter: heat_kwh}
  - name: boiler_gas
    cjt188: {port: %(port)s, parity: N, address: "00000087654321", meter_type: gas, timeout: 300ms}
    profile: cjt188-gas
    poll: 250ms
    energy: {carrier: natural_gas, counter: volume_m3}
"""


def buffered(tmp_path: Path, device: str) -> list[tuple[float, str, str, float]]:
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        return db.execute(
            "SELECT start, json_extract(body, '$.carrier'), json_extract(body, '$.unit'),"
            " json_extract(body, '$.quantity') FROM intervals WHERE device = ? AND length = ?"
            " ORDER BY start",
            [device, INTERVAL],
        ).fetchall()


async def test_heat_and_gas_meters_on_one_bus_are_buffered_whole(
    tmp_path: Path, clock: Clock
) -> None:
    """3600 kW of heat (3.6 MJ a second) and 3600 m3/h of gas (1 m3 a second), read every
    250 ms for 8 s: the buffered 2 s intervals add up to what the meters advanced from the
    first reading to the end of the last interval, within the registers' last digit."""
    start = time.time()  # the counters hold their start values now
    heat = SimulatedMeter("00000012345678", 0x20, since=start, power_kw=3600.0, heat_kwh=100.0)
    gas = SimulatedMeter("00000087654321", 0x30, since=start, flow_m3=10.0, flow_rate_m3h=3600.0)
    async with SimulatedBus([heat, gas]) as bus:
        (tmp_path / "sync-token").write_text("t")
        path = tmp_path / "agent.yaml"
        path.write_text(CONFIG % {"dir": tmp_path, "port": bus.port})
        agent = Agent(
            load_config(path), scheduler=ManualScheduler(), health=Health(clock=time.time)
        )
        await agent.start()
        try:
            await clock.run(agent, 8.0)
        finally:
            await agent.stop()
    heat_rows, gas_rows = buffered(tmp_path, "substation"), buffered(tmp_path, "boiler_gas")
    assert len(heat_rows) >= 3 and len(gas_rows) >= 3
    assert {(r[1], r[2]) for r in heat_rows} == {("heat", "MJ")}
    assert {(r[1], r[2]) for r in gas_rows} == {("natural_gas", "m3")}
    for meter, rows, per_second, digit in (
        (heat, heat_rows, 3.6, 0.036),  # 0.01 kWh, the heat register's last digit, in MJ
        (gas, gas_rows, 1.0, 0.01),
    ):
        starts = [r[0] for r in rows]
        assert starts == [starts[0] + INTERVAL * k for k in range(len(starts))]
        advanced = (starts[-1] + INTERVAL - meter.served[0]) * per_second
        assert sum(r[3] for r in rows) == pytest.approx(advanced, abs=2 * digit)
    assert len(heat.asked) >= 20 and len(gas.asked) >= 20
