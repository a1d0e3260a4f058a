"""A CJ/T 188 heat meter and gas meter, read by the real driver from simulated meters,
through the real pipeline: intervals with the right carrier, coal equivalent and CO2,
against numbers worked by hand (cn-mee-2022, config/factors/cn.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import load_config
from tests.fixtures.cjt188 import GJ, T0, SimulatedBus, SimulatedMeter, driver
from tests.fixtures.pipeline import HEAD, built

pytestmark = pytest.mark.timeout(30)

CONFIG = (
    HEAD
    + """\
devices:
  - name: substation
    cjt188: {port: %(heat)s, parity: N, address: "00000012345678", meter_type: heat}
    poll: 60s
    points:
      - {name: heat_gj, field: heat, unit: GJ, kind: counter}
    energy: {carrier: heat, counter: heat_gj}
  - name: boiler_gas
    cjt188: {port: %(gas)s, parity: N, address: "00000087654321", meter_type: gas}
    profile: cjt188-gas
    poll: 60s
    energy: {carrier: natural_gas, counter: volume_m3}
"""
)
START, END = "2027-01-15T16:00:00+08:00", "2027-01-15T16:15:00+08:00"  # T0 + 15 min


async def quarter_hour(tmp_path: Path, heat: SimulatedMeter, gas: SimulatedMeter) -> dict:
    """Each device's 16:00-16:15 interval record: both meters read by the driver every
    minute from T0 to 16:16 (which confirms the sample at the interval's end), every
    reading stamped with the meters' time, fed to the pipeline as the daemon does."""
    clock = [T0]
    heat.clock = gas.clock = lambda: clock[0]
    found = {}
    async with SimulatedBus([heat]) as heat_bus, SimulatedBus([gas]) as gas_bus:
        text = CONFIG % {"dir": tmp_path, "heat": heat_bus.port, "gas": gas_bus.port}
        pipeline = built(tmp_path, text)
        devices = load_config(tmp_path / "agent.yaml").config.devices
        for dev in devices:
            async with driver(dev) as d:  # type: ignore[arg-type]
                for t in (T0 + 60 * minute for minute in range(17)):
                    clock[0] = t
                    readings = [r._replace(ts=t) for r in await d.read()]
                    assert all(r.good for r in readings)
                    for row in pipeline.ingest(dev.name, readings).intervals:
                        if (row.body["start"], row.body["end"]) == (START, END):
                            found[dev.name] = row.body
    return found


async def test_heat_and_gas_become_intervals_with_their_carrier_coal_and_co2(
    tmp_path: Path,
) -> None:
    """Heat: the meter sends GJ (unit code 11H), 18.00 GJ at 16:00 and 19.25 GJ at 16:15
    (1388.9 kW for a quarter of an hour):

        1.25 GJ = 1250 MJ (the heat carrier's unit)
        1250 MJ x 0.03412 kgce/MJ = 42.65 kgce
        1250 MJ x 0.11 kgCO2/MJ   = 137.5 kg CO2, scope 2 (purchased heat)

    Gas: 100.00 m3 at 16:00, 112.50 m3 at 16:15 (50 m3/h, a small boiler):

        12.5 m3 x 1.2143 kgce/m3  = 15.17875 kgce
        12.5 m3 x 2.1622 kgCO2/m3 = 27.0275 kg CO2, scope 1 (burnt on site)
    """
    heat = SimulatedMeter(
        "00000012345678", 0x20, heat_kwh=5000.0, power_kw=1.25e6 / 900, heat_unit=GJ
    )
    gas = SimulatedMeter("00000087654321", 0x30, flow_m3=100.0, flow_rate_m3h=50.0)
    records = await quarter_hour(tmp_path, heat, gas)
    heat_record, gas_record = records["substation"], records["boiler_gas"]
    assert (heat_record["carrier"], heat_record["unit"]) == ("heat", "MJ")
    assert heat_record["quantity"] == pytest.approx(1250.0)
    assert heat_record["tce_kg"] == pytest.approx(42.65)
    assert heat_record["co2_kg"] == pytest.approx(137.5)
    assert heat_record["scope"] == 2
    assert (heat_record["coverage"], heat_record["quality"]) == (1.0, "good")
    assert (gas_record["carrier"], gas_record["unit"]) == ("natural_gas", "m3")
    assert gas_record["quantity"] == pytest.approx(12.5)
    assert gas_record["tce_kg"] == pytest.approx(15.17875)
    assert gas_record["co2_kg"] == pytest.approx(27.0275)
    assert gas_record["scope"] == 1
