"""Transformer ratios and reversed wiring, applied right after the driver."""

from __future__ import annotations

import pytest

from agent.wiring import Wiring
from domain.reading import Quality, Reading
from drivers.modbus.settings import ModbusTcpDevice


def device(**kw: object) -> ModbusTcpDevice:
    points = [
        {"name": "import_kwh", "address": 0, "type": "uint32", "unit": "kWh", "kind": "counter"},
        {"name": "export_kwh", "address": 2, "type": "uint32", "unit": "kWh", "kind": "counter"},
        {"name": "power_kw", "address": 4, "type": "float32", "unit": "kW"},
        {"name": "voltage_l1_v", "address": 6, "type": "float32", "unit": "V"},
        {"name": "current_l1_a", "address": 8, "type": "float32", "unit": "A"},
        {"name": "power_factor", "address": 10, "type": "float32"},
    ]
    return ModbusTcpDevice(name="m", modbus_tcp={"host": "127.0.0.1"}, points=points, **kw)


def readings() -> list[Reading]:
    values = {"import_kwh": 10.0, "export_kwh": 2.0, "power_kw": 1.5, "voltage_l1_v": 100.0,
              "current_l1_a": 5.0, "power_factor": 0.9}  # fmt: skip
    units = {"import_kwh": "kWh", "export_kwh": "kWh", "power_kw": "kW", "voltage_l1_v": "V",
             "current_l1_a": "A", "power_factor": ""}  # fmt: skip
    return [Reading("m", name, 1.0, v, units[name]) for name, v in values.items()]


def values(out: list[Reading]) -> dict[str, float | None]:
    return {r.point: r.value for r in out}


def test_transformer_ratios_give_primary_side_values() -> None:
    """CT 200 and PT 100: currents x200, voltages x100, powers and energies x20 000."""
    out = values(Wiring.of(device(ct_ratio=200, pt_ratio=100)).apply(readings()))
    assert out == pytest.approx(
        {
            "import_kwh": 200_000.0,
            "export_kwh": 40_000.0,
            "power_kw": 30_000.0,
            "voltage_l1_v": 10_000.0,
            "current_l1_a": 1000.0,
            "power_factor": 0.9,
        }
    )


def test_a_meter_wired_backwards_swaps_import_and_export_and_flips_power() -> None:
    """reverse: import reads the export register and power changes sign; the rest stays."""
    out = values(Wiring.of(device(reverse=True)).apply(readings()))
    assert out["import_kwh"] == 2.0 and out["export_kwh"] == 10.0
    assert out["power_kw"] == -1.5
    assert out["voltage_l1_v"] == 100.0


def test_a_bad_reading_stays_bad_under_any_wiring() -> None:
    """No ratio turns a missing value into a number."""
    bad = [Reading("m", "import_kwh", 1.0, None, "kWh", Quality.BAD, "timeout")]
    (out,) = Wiring.of(device(ct_ratio=50)).apply(bad)
    assert (out.value, out.quality, out.reason) == (None, Quality.BAD, "timeout")


def test_a_plain_meter_is_passed_through_untouched() -> None:
    """Without ratios or reversal the readings are the driver's own objects."""
    given = readings()
    assert Wiring.of(device()).apply(given) is given


def test_reverse_leaves_currents_and_voltages_as_read() -> None:
    """Only signed powers flip; a current is a magnitude either way."""
    out = values(Wiring.of(device(reverse=True)).apply(readings()))
    assert (out["current_l1_a"], out["voltage_l1_v"]) == (5.0, 100.0)


def test_units_are_matched_whatever_their_case() -> None:
    """kVArh, kvarh and KVARH all take the ratio of an energy."""
    dev = ModbusTcpDevice(
        name="m",
        modbus_tcp={"host": "127.0.0.1"},
        points=[{"name": "q", "address": 0, "type": "uint32", "unit": "kVArh"}],
        ct_ratio=10,
        pt_ratio=10,
    )
    (out,) = Wiring.of(dev).apply([Reading("m", "q", 1.0, 2.0, "kVArh")])
    assert out.value == 200.0
