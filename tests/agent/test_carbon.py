"""From an interval's quantity to kWh, kgce and CO2, per carrier."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from agent.carbon import interval_record
from agent.intervals import ClosedInterval
from config import load_factor_set

TZ = ZoneInfo("Asia/Shanghai")
FACTORS = load_factor_set("cn-mee-2022")
KWH_PER_KGCE = 29_307 / 3_600  # GB/T 2589: 1 kgce = 29 307 kJ


def record(carrier: str, unit: str, quantity: float, province: str = "sichuan") -> dict:
    interval = ClosedInterval(1_789_999_200.0, 1_789_999_260.0, quantity, 1.0, "good")
    return interval_record("d", carrier, unit, interval, FACTORS, province, TZ)


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
