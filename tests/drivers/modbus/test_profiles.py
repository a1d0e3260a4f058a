"""Every Modbus profile in the library: planned within protocol limits, every point decodes.

A new profile needs no new test: it is picked up from drivers/modbus/profiles/.
"""

from __future__ import annotations

import re

import pytest

from config.carriers import RATES
from config.loader import load_profile
from config.profiles import list_profiles
from drivers.modbus.codec import MAX_REGISTERS, decode_registers, encode_registers, plan
from drivers.modbus.settings import ModbusPoint

MODBUS = [n for n in list_profiles() if load_profile(n).profile.protocol == "modbus"]
# names shared by every profile for the same quantity, so rules and reports never
# depend on the brand of the meter
SHARED = re.compile(
    r"^(import_kwh|export_kwh|power_kw|power_factor|frequency_hz"
    r"|voltage_l[123]_v|current_l[123]_a|[a-z0-9_]+_(kwh|kw|kvar|kva|v|a|hz)"
    r"|[a-z0-9_]+_(m3|m3h|gj|mj|t|th|c|h)"  # water, heat, gas: volume, flow, temperature
    r"|valve_(open|closed|fault)|battery_low)$"  # status bits, 1 or 0
)


@pytest.mark.parametrize("name", MODBUS)
def test_a_profile_reads_in_requests_the_protocol_allows(name: str) -> None:
    """The plan of a profile's points respects the 125-register limit and keeps every point."""
    points = [s.point for s in load_profile(name).points]
    assert all(isinstance(p, ModbusPoint) for p in points)
    requests = plan(points)  # type: ignore[arg-type]
    assert all(r.count <= MAX_REGISTERS for r in requests)
    assert sorted(p.name for r in requests for p in r.points) == sorted(p.name for p in points)


@pytest.mark.parametrize("name", MODBUS)
def test_every_point_of_a_profile_decodes_a_synthetic_frame(name: str) -> None:
    """A plausible value written as the meter would write it decodes back, for every point."""
    for sourced in load_profile(name).points:
        point = sourced.point
        assert isinstance(point, ModbusPoint)
        value = 123.0 if point.kind == "counter" else 12.0
        assert decode_registers(encode_registers(value, point), point) == pytest.approx(value)


@pytest.mark.parametrize("name", list_profiles())
def test_profiles_use_the_shared_point_names(name: str) -> None:
    """import_kwh, power_kw, voltage_l1_v ...: the same quantity has the same name everywhere."""
    loaded = load_profile(name)
    assert all(SHARED.match(s.point.name) for s in loaded.points), name
    counters = {s.point.name for s in loaded.points if s.point.kind == "counter"}
    if any(s.point.name.startswith(("voltage_", "current_")) for s in loaded.points):
        assert "import_kwh" in counters
    else:  # a water, heat or gas meter: a counter, or a rate its carrier integrates
        rates = {unit for units in RATES.values() for unit in units}
        assert counters or {s.point.unit for s in loaded.points} & rates, name
