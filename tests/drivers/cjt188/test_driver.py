"""The CJ/T 188 driver against simulated meters on a pseudo-terminal, faults included."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import DeviceTimeout
from domain.reading import Quality, Reading
from drivers.bus import lock_for
from drivers.cjt188.settings import Cjt188Device, Cjt188Point
from drivers.registry import make_driver
from tests.fixtures.cjt188 import (
    GJ,
    MJ,
    MWH,
    T0,
    SimulatedBus,
    SimulatedMeter,
    device,
    driver,
    profile_points,
)

pytestmark = pytest.mark.timeout(30)

HEAT = "00000012345678"
WATER = "00000000000001"
GAS = "00000000000002"


def values(readings: list[Reading]) -> dict[str, float | None]:
    return {r.point: r.value for r in readings}


def heat_meter(**faults: object) -> SimulatedMeter:
    faults.setdefault("clock", lambda: T0)
    return SimulatedMeter(HEAT, 0x20, **faults)  # type: ignore[arg-type]


def heat_device(port: str, timeout: str = "300ms", **link: str) -> Cjt188Device:
    return device(port, HEAT, "heat", profile_points("cjt188-heat"), timeout, **link)


async def test_every_heat_profile_point_reads_good_with_its_unit() -> None:
    async with SimulatedBus([heat_meter()]) as bus, driver(heat_device(bus.port)) as d:
        readings = await d.read()
    assert {r.point: (r.value, r.unit) for r in readings} == {
        "heat_kwh": (5000.0, "kWh"),
        "settlement_heat_kwh": (4500.0, "kWh"),
        "power_kw": (12.5, "kW"),
        "flow_m3h": (1.5, "m3/h"),
        "volume_m3": (1234.56, "m3"),
        "supply_temp_c": (75.3, "°C"),
        "return_temp_c": (55.1, "°C"),
        "operating_h": (8760.0, "h"),
        "valve_open": (1.0, ""),
        "battery_low": (0.0, ""),
    }
    assert all(r.quality is Quality.GOOD for r in readings)


async def test_water_and_gas_meters_share_a_bus_and_answer_in_turn() -> None:
    water = SimulatedMeter(WATER, 0x10, clock=lambda: T0, valve=1, battery_low=True)
    gas = SimulatedMeter(GAS, 0x30, clock=lambda: T0, flow_m3=88.8)
    async with SimulatedBus([water, gas]) as bus:
        w = device(bus.port, WATER, "cold_water", profile_points("cjt188-water"), name="w")
        g = device(bus.port, GAS, "gas", profile_points("cjt188-gas"), name="g")
        async with driver(w) as dw, driver(g) as dg:
            got_w, got_g = await asyncio.gather(dw.read(), dg.read())
    assert values(got_w) == {
        "volume_m3": 1234.56,
        "settlement_volume_m3": 1111.1,
        "valve_open": 0.0,
        "valve_fault": 0.0,
        "battery_low": 1.0,
    }
    assert values(got_g)["volume_m3"] == 88.8
    assert len(water.asked) == len(gas.asked) == 1


async def test_counters_rise_with_the_meters_clock() -> None:
    """Half an hour later: 12.5 kW more than 6.25 kWh, 1.5 m3/h gives 0.75 m3."""
    now = [T0]
    async with (
        SimulatedBus([heat_meter(clock=lambda: now[0])]) as bus,
        driver(heat_device(bus.port)) as d,
    ):
        first = values(await d.read())
        now[0] += 1800
        later = values(await d.read())
    assert later["heat_kwh"] - first["heat_kwh"] == pytest.approx(6.25)  # type: ignore[operator]
    assert later["volume_m3"] - first["volume_m3"] == pytest.approx(0.75)  # type: ignore[operator]


@pytest.mark.parametrize("code", [MWH, GJ, MJ])
async def test_a_meter_reporting_in_another_unit_is_converted_not_misread(code: int) -> None:
    """The heat sent in MWh, GJ or MJ is still 5000 kWh to the nearest of its digits."""
    async with (
        SimulatedBus([heat_meter(heat_unit=code)]) as bus,
        driver(heat_device(bus.port)) as d,
    ):
        got = values(await d.read())
    resolution = {MWH: 10.0, GJ: 10 / 3.6, MJ: 0.01 / 3.6}[code]  # a hundredth of the unit
    assert got["heat_kwh"] == pytest.approx(5000.0, abs=resolution)


async def test_a_unit_code_of_another_kind_makes_the_point_bad_and_names_it() -> None:
    async with (
        SimulatedBus([heat_meter(heat_unit=0x2C)]) as bus,
        driver(heat_device(bus.port)) as d,
    ):
        readings = {r.point: r for r in await d.read()}
    heat = readings["heat_kwh"]
    assert heat.quality is Quality.BAD and heat.value is None
    assert heat.reason == (
        f"meter1 meter {HEAT} DI 901F: heat: unit code 2CH is m3, a volume unit, "
        "where an energy was expected"
    )
    assert readings["power_kw"].good


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"silent": True}, r"no reply within 0\.3s$"),
        (
            {"garbage": b"\x00\xf3\x8e\x11"},
            r"no complete reply within 0\.3s, only 4 bytes \(00 F3 8E 11\): check that the "
            r"meter is set to 2400 8N1$",
        ),
        ({"bad_checksum": True}, r"no reply within 0\.3s; heard a garbled frame: checksum"),
        ({"delay": 0.6}, r"no reply within 0\.3s$"),
        ({"reply_ser": 99}, r"heard a reply with serial number 99 \(asked 1\)$"),
        ({"abnormal": True, "valve": 1}, r"abnormal reply: valve closed$"),
        ({"reply_type": 0x10}, r"the meter answered as type 10H, not 20H: set meter_type"),
    ],
)
async def test_a_fault_makes_every_point_bad_with_its_reason(fault: dict, reason: str) -> None:
    async with SimulatedBus([heat_meter(**fault)]) as bus, driver(heat_device(bus.port)) as d:
        readings = await d.read()
    assert {r.quality for r in readings} == {Quality.BAD}
    assert {r.reason for r in readings} == {readings[0].reason}
    assert readings[0].reason is not None
    assert readings[0].reason.startswith(f"meter1 meter {HEAT} DI 901F: ")
    assert re.search(reason, readings[0].reason)


async def test_a_slow_meter_within_the_timeout_is_read() -> None:
    async with (
        SimulatedBus([heat_meter(delay=0.15)]) as bus,
        driver(heat_device(bus.port, timeout="1s")) as d,
    ):
        readings = await d.read()
    assert all(r.good for r in readings)


async def test_the_2018_edition_sends_the_identifier_low_byte_first() -> None:
    meter = heat_meter(reply_order="high")
    async with SimulatedBus([meter]) as bus:
        async with driver(heat_device(bus.port, version="2018")) as d:
            readings = await d.read()
        async with driver(heat_device(bus.port, di_order="high_first")) as d:
            await d.read()
    assert [di for _, di in meter.asked] == [b"\x1f\x90", b"\x90\x1f"]
    assert all(r.good for r in readings)  # its reply, 90 1F, accepted all the same


async def test_a_dead_meter_costs_one_timeout_per_poll() -> None:
    """The history DI is not asked once 901F went unanswered."""
    meter = heat_meter(silent=True)
    history = Cjt188Point(
        name="heat_last_month_kwh", di="D120", field="settlement_heat", unit="kWh"
    )
    async with SimulatedBus([meter]) as bus:
        dev = device(bus.port, HEAT, "heat", [*profile_points("cjt188-heat"), history])
        async with driver(dev) as d:
            readings = {r.point: r.reason for r in await d.read()}
    assert readings["heat_last_month_kwh"] == (
        f"meter1 meter {HEAT} DI D120: not asked (DI 901F: no reply within 0.3s)"
    )


async def test_the_history_of_a_settlement_date_is_read() -> None:
    """D121 is two settlement dates back: 0.9 x 0.9 of today's heat in the simulator."""
    history = Cjt188Point(
        name="heat_2_months_kwh", di="D121", field="settlement_heat", unit="kWh", kind="counter"
    )
    async with (
        SimulatedBus([heat_meter()]) as bus,
        driver(device(bus.port, HEAT, "heat", [history])) as d,
    ):
        (reading,) = await d.read()
    assert reading.value == pytest.approx(4050.0)


async def test_identify_asks_the_lone_meter_its_address_and_type() -> None:
    async with SimulatedBus([heat_meter()]) as bus:
        dev = device(bus.port, "AAAAAAAAAAAAAA", "heat", profile_points("cjt188-heat"))
        async with driver(dev) as d:
            assert await d.identify() == {"address": HEAT, "type": "20H (heat)"}
            assert "(any: the only meter on the link)" in d.describe()


async def test_identify_with_nobody_there_times_out_saying_where() -> None:
    async with SimulatedBus([]) as bus, driver(heat_device(bus.port)) as d:
        with pytest.raises(DeviceTimeout, match=r"^meter1 on /dev/pts/\d+: no reply"):
            await d.identify()


async def test_the_port_lock_is_the_one_every_serial_protocol_takes() -> None:
    """While another protocol's exchange holds the port, nothing is sent; then the read goes."""
    meter = heat_meter()
    async with SimulatedBus([meter]) as bus, driver(heat_device(bus.port)) as d:
        async with lock_for(bus.port):
            reading = asyncio.create_task(d.read())
            await asyncio.sleep(0.05)
            assert meter.asked == [] and not reading.done()
        readings = await reading
    assert all(r.good for r in readings) and len(meter.asked) == 1


async def test_the_registry_makes_the_driver_and_the_plan_names_the_di() -> None:
    async with SimulatedBus([]) as bus:
        made = make_driver(heat_device(bus.port))
        try:
            assert [str(r) for r in made.requests] == ["DI 901F"]  # type: ignore[attr-defined]
            assert made.describe() == (
                f"meter1: 1 data identifiers (10 points) on {bus.port} @2400 8N1, "
                f"20H (heat) meter {HEAT}"
            )
        finally:
            await made.close()


async def test_a_meter_switching_its_unit_mid_run_keeps_the_same_heat() -> None:
    """kWh, then MWh (as heat meters step up when the count grows): the same 5000 kWh."""
    meter = heat_meter()
    async with SimulatedBus([meter]) as bus, driver(heat_device(bus.port)) as d:
        before = values(await d.read())["heat_kwh"]
        meter.heat_unit = MWH
        after = values(await d.read())["heat_kwh"]
    assert before == 5000.0
    assert after == pytest.approx(5000.0, abs=10.0)  # 0.01 MWh, the register's last digit


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=80))
def test_garbage_on_the_line_is_never_a_value(noise: bytes) -> None:
    """Whatever a broken meter sends instead of its reply, every point reads bad with the
    device, meter and DI named, and the driver raises nothing."""

    async def poll() -> list[Reading]:
        meter = heat_meter(garbage=noise)
        async with SimulatedBus([meter]) as bus, driver(heat_device(bus.port, "100ms")) as d:
            return await d.read()

    readings = asyncio.run(poll())
    assert readings and all(r.quality is Quality.BAD and r.value is None for r in readings)
    assert all((r.reason or "").startswith(f"meter1 meter {HEAT} DI 901F: ") for r in readings)
