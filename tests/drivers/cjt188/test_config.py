"""What a technician writes for a CJ/T 188 meter, and what `check` says of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import LoadedConfig, load_config, load_profile
from domain.errors import ConfigInvalid
from drivers.cjt188.settings import CJT188, Cjt188Device, Cjt188Point
from tests.fixtures.config import GATEWAY


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, devices: str) -> LoadedConfig:
    monkeypatch.chdir(tmp_path)
    Path("agent.yaml").write_text(GATEWAY + "devices:\n" + devices, encoding="utf-8")
    return load_config("agent.yaml")


def problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, devices: str) -> list[str]:
    with pytest.raises(ConfigInvalid) as caught:
        load(tmp_path, monkeypatch, devices)
    return [str(p) for p in caught.value.problems]


HEAT = """\
  - name: heat1
    cjt188: {port: /dev/ttyUSB2, address: "00000012345678", meter_type: heat}
    profile: cjt188-heat
    energy: {carrier: heat, counter: heat_kwh}
"""


def test_a_heat_meter_with_its_profile_loads_with_the_standards_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (device,) = load(tmp_path, monkeypatch, HEAT).config.devices
    assert isinstance(device, Cjt188Device)
    link = device.cjt188
    assert (link.baudrate, link.parity, link.timeout, link.version) == (2400, "E", 1.5, "2004")
    assert (link.type_code, link.high_first) == (0x20, True)
    assert [p.name for p in device.points][:2] == ["heat_kwh", "settlement_heat_kwh"]


def test_a_point_in_a_unit_its_field_cannot_have_is_refused_with_the_units_it_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = HEAT + "    points:\n      - {name: heat_kwh, field: heat, unit: m3, kind: counter}\n"
    assert problems(tmp_path, monkeypatch, devices) == [
        "agent.yaml:12:38: devices[0].energy.counter: 'heat_kwh' counts in 'm3', not a unit of "
        "heat (MJ, GJ, kWh, MWh): set the point's unit",
        "agent.yaml:14:45: devices[0].points[0].unit: heat is an energy: its unit must be one of "
        "J, kJ, MJ, GJ, Wh, kWh, MWh (got 'm3'); the meter's own unit code is converted into it",
    ]


def test_a_field_the_meter_type_does_not_send_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = """\
  - name: water1
    cjt188: {port: /dev/ttyUSB2, address: "00000012345678", meter_type: cold_water}
    points:
      - {name: heat_kwh, field: heat, unit: kWh, kind: counter}
"""
    assert problems(tmp_path, monkeypatch, devices) == [
        "agent.yaml:12:33: devices[0].points[0].field: a water meter (10H) has no heat in DI "
        "901F (it has: flow, settlement_flow, valve_open, valve_closed, valve_fault, "
        "battery_low)"
    ]


@pytest.mark.parametrize(
    ("link", "message"),
    [
        (
            '{port: /dev/ttyUSB2, address: "00000012345678", meter_type: 20}',
            "devices[0].cjt188.meter_type: write the meter type as a name (heat, gas, "
            'cold_water ...) or as two hex digits in quotes ("20"): a bare number is ambiguous',
        ),
        (
            '{port: /dev/ttyUSB2, address: "00000012345678", meter_type: "40"}',
            "devices[0].cjt188.meter_type: '40' is not a water, heat or gas meter type",
        ),
        (
            '{port: /dev/ttyUSB2, address: "99999999999999", meter_type: gas}',
            "devices[0].cjt188.address: 99999999999999 is the broadcast address",
        ),
    ],
)
def test_a_wrong_link_is_reported_at_its_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, link: str, message: str
) -> None:
    devices = f"  - name: gas1\n    cjt188: {link}\n    profile: cjt188-gas\n"
    (problem,) = problems(tmp_path, monkeypatch, devices)
    assert message in problem and problem.startswith("agent.yaml:10:")


def test_a_status_bit_has_no_unit_and_is_no_counter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = HEAT + (
        "    points:\n      - {name: valve_open, field: valve_open, unit: kWh, kind: counter}\n"
    )
    found = problems(tmp_path, monkeypatch, devices)
    assert "valve_open is 1 or 0 and has no unit (got 'kWh')" in found[0]
    assert "valve_open is a status bit, not a counter" in found[1]


def test_a_wildcard_meter_must_be_alone_on_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = HEAT + (
        "  - name: gas1\n"
        '    cjt188: {port: /dev/ttyUSB2, address: "AAAAAAAAAAAAAA", meter_type: gas}\n'
        "    profile: cjt188-gas\n"
    )
    (problem,) = problems(tmp_path, monkeypatch, devices)
    assert "the wildcard address answers for every meter on /dev/ttyUSB2" in problem


def test_the_heat_counter_converts_to_the_heat_carrier_and_gas_to_natural_gas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kWh is a heat unit (x 3.6 MJ); a gas meter's m3 is natural gas; a heat counter
    declared as natural gas is refused."""
    devices = HEAT.replace("carrier: heat", "carrier: natural_gas")
    (problem,) = problems(tmp_path, monkeypatch, devices)
    assert "'heat_kwh' counts in 'kWh', not a unit of natural_gas (m3, Nm3)" in problem


def test_only_working_hours_have_a_wrap_point() -> None:
    """A value sent with a unit code wraps in the meter's unit, not the point's: no modulus
    (a drop is a reset in doubt); the whole hours, in no other unit, wrap at 999999."""
    modulus = CJT188.modulus
    heat = load_profile("cjt188-heat").profile.points
    by_name = {p.name: p for p in heat if isinstance(p, Cjt188Point)}
    assert modulus(by_name["heat_kwh"]) is None
    assert modulus(by_name["volume_m3"]) is None
    assert modulus(by_name["operating_h"]) == pytest.approx(1e6)
