"""From an interval's quantity to kWh, kgce and CO2, per carrier."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from agent.carbon import interval_record
from agent.intervals import ClosedInterval
from config.base import Density
from config.factors import load_factor_set
from domain.batch import Interval

TZ = ZoneInfo("Asia/Shanghai")
FACTORS = load_factor_set("cn-mee-2022")
KWH_PER_KGCE = 29_307 / 3_600  # GB/T 2589: 1 kgce = 29 307 kJ


def record(carrier: str, unit: str, quantity: float, province: str = "sichuan") -> dict:
    interval = ClosedInterval(1_789_999_200.0, 1_789_999_260.0, quantity, 1.0, "good")
    return interval_record("d", carrier, unit, interval, FACTORS, province, TZ).to_json()


@pytest.mark.parametrize(
    ("carrier", "unit", "quantity", "expected"),
    [
        # carrier, counter unit, counted, (quantity, unit, kwh, tce_kg, co2_kg, scope)
        ("electricity", "MWh", 0.01, (10.0, "kWh", 10.0, 1.229, 1.404, 2)),
        ("natural_gas", "m3", 100.0, (100.0, "m3", 121.43 * KWH_PER_KGCE, 121.43, 216.22, 1)),
        ("diesel", "t", 0.5, (500.0, "kg", 728.55 * KWH_PER_KGCE, 728.55, 1547.95, 1)),
        ("heat", "GJ", 2.0, (2000.0, "MJ", 68.24 * KWH_PER_KGCE, 68.24, 220.0, 2)),
        ("water", "m3", 3.0, (3.0, "t", None, 0.2571, 0.0, None)),
    ],
)
def test_each_carrier_gets_its_coal_and_co2(
    carrier: str, unit: str, quantity: float, expected: tuple
) -> None:
    """Units convert to the carrier's own, then GB/T 2589 and the factor set apply."""
    r = record(carrier, unit, quantity)
    got = (r["quantity"], r["unit"], r["kwh"], r["tce_kg"], r["co2_kg"], r["scope"])
    assert got == pytest.approx(expected)


def test_chongqing_electricity_uses_chongqings_factor() -> None:
    """The province decides the grid factor: Chongqing's 2022 value is 0.5227."""
    r = record("electricity", "kWh", 10.0, province="chongqing")
    assert (r["co2_kg"], r["factor"]["id"]) == (pytest.approx(5.227), "cn_chongqing_2022")


# --- worked examples, checked by hand against shared/reference/factors.yaml -------------


@pytest.mark.parametrize(
    ("factor_set", "grid", "co2_kg"),
    [
        # 1 000 kWh x 0.1255 kgCO2/kWh (MEE/NBS 2021, Sichuan) = 125.5 kg
        ("cn-mee-2021", "cn_sichuan_2021", 125.5),
        # 1 000 kWh x 0.1404 kgCO2/kWh (MEE/NBS 2022, Sichuan) = 140.4 kg
        ("cn-mee-2022", "cn_sichuan_2022", 140.4),
        # 1 000 kWh x 0.1564 kgCO2/kWh (MEE/NBS 2023, Sichuan) = 156.4 kg
        ("cn-mee-2023", "cn_sichuan_2023", 156.4),
    ],
)
def test_worked_example_1000_kwh_of_sichuan_grid_electricity(
    factor_set: str, grid: str, co2_kg: float
) -> None:
    """1 000 kWh of Sichuan grid electricity:
    tce = 1 000 kWh x 0.1229 kgce/kWh (GB/T 2589-2020 equivalent value) = 122.9 kgce;
    CO2 = 1 000 kWh x the Sichuan factor of the data year; scope 2.
    Chongqing's 2022 factor would give 522.7 kg: 3.7 times as much, never a fallback."""
    interval = ClosedInterval(1_789_999_200.0, 1_790_002_800.0, 1000.0, 1.0, "good")
    factors = load_factor_set(factor_set)
    r = interval_record("incomer", "electricity", "kWh", interval, factors, "sichuan", TZ).to_json()
    assert r["quantity"] == 1000.0 and r["kwh"] == 1000.0
    assert r["tce_kg"] == pytest.approx(122.9, abs=1e-9)
    assert r["co2_kg"] == pytest.approx(co2_kg, abs=1e-9)
    assert (r["scope"], r["factor"]["id"], r["factor"]["unit"]) == (2, grid, "kgCO2/kWh")


def test_worked_example_1000_m3_of_natural_gas() -> None:
    """1 000 m3 of natural gas burnt on site:
    tce = 1 000 m3 x 1.2143 kgce/m3 (GB/T 2589-2020, gas-field gas, 35 544 kJ/m3) = 1 214.3 kgce;
    kWh equivalent = 1 214.3 kgce x 29 307 kJ/kgce / 3 600 kJ/kWh = 9 885.41 kWh;
    CO2 = 1 000 m3 x 2.1622 kgCO2/m3 = 2 162.2 kg, where 2.1622 = NCV 389.31 GJ/10^4 m3
    x CC 0.0153 tC/GJ x OF 0.99 x 44/12 / 10 (NDRC guideline defaults) = 2.16208; scope 1."""
    ncv_gj_per_m3, cc, oxidation = 389.31 / 10_000, 0.0153, 0.99
    assert ncv_gj_per_m3 * cc * oxidation * 44 / 12 * 1000 == pytest.approx(2.1622, abs=1e-4)
    interval = ClosedInterval(1_789_999_200.0, 1_790_002_800.0, 1000.0, 1.0, "good")
    r = interval_record("boiler", "natural_gas", "m3", interval, FACTORS, "sichuan", TZ).to_json()
    assert (r["quantity"], r["unit"], r["scope"]) == (1000.0, "m3", 1)
    assert r["tce_kg"] == pytest.approx(1214.3, abs=1e-9)
    assert r["kwh"] == pytest.approx(1214.3 * 29_307 / 3_600, abs=1e-6)
    assert r["kwh"] == pytest.approx(9885.41, abs=0.01)
    assert r["co2_kg"] == pytest.approx(2162.2, abs=1e-9)
    assert r["factor"]["id"] == "ndrc_natural_gas"


def test_worked_example_1000_litres_of_diesel_at_a_sourced_density() -> None:
    """1 000 L of diesel at the supplier's 0.84 kg/L (the reference's illustrative figure):
    mass = 1 000 L x 0.84 kg/L = 840 kg; tce = 840 kg x 1.4571 kgce/kg = 1 223.964 kgce;
    CO2 = 840 kg x 3.0959 kgCO2/kg = 2 600.556 kg (about 2.60 kgCO2/L, as the reference's
    note says); the density and its source travel in the record."""
    density = Density(value=0.84, source="supplier delivery note 2026-11")
    interval = ClosedInterval(1_789_999_200.0, 1_790_002_800.0, 1000.0, 1.0, "good")
    r = interval_record(
        "genset", "diesel", "L", interval, FACTORS, "sichuan", TZ, density
    ).to_json()
    assert (r["quantity"], r["unit"], r["scope"]) == (840.0, "kg", 1)
    assert r["tce_kg"] == pytest.approx(1223.964, abs=1e-9)
    assert r["co2_kg"] == pytest.approx(2600.556, abs=1e-9)
    assert r["density"] == {
        "value": 0.84,
        "unit": "kg/L",
        "source": "supplier delivery note 2026-11",
    }
    assert Interval.model_validate(r).density is not None  # the batch schema knows the field
    m3 = interval_record("genset", "diesel", "m3", interval, FACTORS, "sichuan", TZ, density)
    assert m3.quantity == pytest.approx(840_000.0)  # 1 000 m3 = 10^6 L
