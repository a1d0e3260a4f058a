"""`check` of an HJ 212 destination: its own fields, and its devices, codes and intervals
against the rest of the file, each problem at its line and column."""

from __future__ import annotations

from cloud_sync.hj212.settings import Hj212Settings
from tests.fixtures.config import GATEWAY, Load, Problems

DEVICES = """\
emissions:
  intervals: [1m, 15m, 1h, 1d]
devices:
  - name: incomer
    modbus_tcp: {host: 127.0.0.1}
    points:
      - {name: energy_kwh, address: 0, type: uint32, unit: kWh, kind: counter}
      - {name: power_kw, address: 2, type: float32, unit: kW}
    energy: {carrier: electricity, counter: energy_kwh}
  - name: fan
    modbus_tcp: {host: 127.0.0.1, unit: 2}
    points:
      - {name: energy_kwh, address: 0, type: uint32, unit: kWh, kind: counter}
      - {name: power_kw, address: 2, type: float32, unit: kW}
    energy: {carrier: electricity, counter: energy_kwh}
  - name: thermo
    modbus_tcp: {host: 127.0.0.1, unit: 3}
    points:
      - {name: temp_c, address: 0, type: float32, unit: degC}
"""
"""Lines 8-26 after GATEWAY: two metered devices with the same points, one without energy."""

GOOD = """\
destinations:
  - name: epb
    hj212:
      host: 127.0.0.1
      port: 9212
      pw: "123456"
      st: "32"
      monitoring_points:
        - {mn: "88888880000001", devices: [incomer]}
        - {mn: "010000A8900016F000169DC0", devices: [fan]}
      codes:
        energy_kwh: {code: e10101, as: Cou}
        power_kw: {code: e10201, as: [Avg, Min, Max], decimals: 1}
        co2_kg: {code: a05001, as: Cou}
"""


def test_a_good_destination_loads_with_its_figures(load: Load) -> None:
    loaded = load(GATEWAY + DEVICES + GOOD)
    (entry,) = loaded.config.destinations
    settings = entry.hj212  # type: ignore[attr-defined]
    assert isinstance(settings, Hj212Settings)
    assert settings.codes["power_kw"].statistics == ("Avg", "Min", "Max")
    assert settings.data is None  # whatever emissions.intervals allow
    assert loaded.warnings == []


def test_mn_pw_st_and_codes_are_checked_where_they_are(problems: Problems) -> None:
    text = GATEWAY + DEVICES + GOOD
    text = text.replace('"88888880000001"', '"8888-88"').replace('pw: "123456"', 'pw: "12 45"')
    text = text.replace('st: "32"', 'st: "91"').replace("code: a05001", "code: a05-001")
    found = problems(text)
    assert any(p.startswith("agent.yaml:35:16: destinations[0].hj212.monitoring_points[0].mn:")
               and "14 digits" in p for p in found), found  # fmt: skip
    assert any(p.startswith("agent.yaml:32:11: destinations[0].hj212.pw:") for p in found), found
    assert any(p.startswith("agent.yaml:33:11: destinations[0].hj212.st:") for p in found), found
    assert any(
        p.startswith("agent.yaml:40:24: destinations[0].hj212.codes.co2_kg.code:") for p in found
    ), found


def test_devices_figures_and_codes_must_make_sense_together(problems: Problems) -> None:
    text = (GATEWAY + DEVICES + GOOD).replace(
        '{mn: "010000A8900016F000169DC0", devices: [fan]}',
        '{mn: "88888880000001", devices: [fan, thermo, pump]}',
    )
    text = text.replace(
        "energy_kwh: {code: e10101, as: Cou}", "energy_kwh: {code: e10101, as: Avg}"
    )
    text = text.replace("co2_kg: {code: a05001, as: Cou}", "co2_kg: {code: a05001, as: Max}\n"
                        "        thermo.temp_c: {code: t1, as: Avg}\n"
                        "        power_kw_x: {code: e9, as: Avg}")  # fmt: skip
    found = "\n".join(problems(text))
    assert "monitoring_points[1].mn: MN 88888880000001 is already monitoring point 1" in found
    assert "monitoring_points[1].devices[2]: no device named 'pump'" in found
    assert "monitoring_points[1].devices[1]: 'thermo' meters no energy" in found
    assert "codes.co2_kg.as: co2_kg is an interval total: send it as Cou" in found
    # the plain key reaches both devices of the MN: one code twice
    assert "codes.power_kw: code e10201 would be sent twice under MN 88888880000001" in found
    assert "e.g. 'fan.power_kw'" in found
    assert "codes.power_kw_x: no device of a monitoring point has 'power_kw_x'" in found


def test_cou_only_of_the_energy_counter_and_one_code_per_device(
    problems: Problems, load: Load
) -> None:
    cou_of_power = (GATEWAY + DEVICES + GOOD).replace(
        "power_kw: {code: e10201, as: [Avg, Min, Max], decimals: 1}",
        "power_kw: {code: e10201, as: [Cou, Avg]}",
    )
    found = "\n".join(problems(cou_of_power))
    assert "codes.power_kw.as: Cou of 'power_kw' on 'incomer': only an energy counter" in found
    # two devices under one MN, each with its own codes: fine
    shared = (
        (GATEWAY + DEVICES + GOOD)
        .replace('        - {mn: "010000A8900016F000169DC0", devices: [fan]}\n', "")
        .replace("[incomer]", "[incomer, fan]")
    )
    shared = shared.replace(
        "        co2_kg: {code: a05001, as: Cou}\n",
        "        fan.energy_kwh: {code: e10102, as: Cou}\n"
        "        fan.power_kw: {code: e10202, as: Avg}\n",
    )
    assert load(shared).warnings == []


def test_the_intervals_must_hold_what_is_sent(problems: Problems, load: Load) -> None:
    text = (GATEWAY + DEVICES + GOOD).replace("intervals: [1m, 15m, 1h, 1d]", "intervals: [1h]")
    (unset,) = load(text).warnings  # data unset: what the intervals allow, hour here
    assert "hj212: no minute data: the shortest interval is 1h" in str(unset)
    text = text.replace('st: "32"', 'st: "32"\n      data: [minute, hour, day]')
    found = "\n".join(problems(text))
    assert "data[0]: minute data come from the shortest interval, which is 1h" in found
    assert "data[2]: day data need 1d in emissions.intervals" in found
    assert "data[1]" not in found


def test_2025_is_refused_with_the_reason(problems: Problems) -> None:
    text = (GATEWAY + DEVICES + GOOD).replace('st: "32"', 'st: "32"\n      version: 2025')
    (found,) = [p for p in problems(text) if ".version:" in p]
    assert found.startswith("agent.yaml:34:16: destinations[0].hj212.version: HJ 212-2025")
    assert "use version: 2017" in found
