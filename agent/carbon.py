"""From an interval's energy to the record the platform receives: kWh, tce, CO2.

The factor applied travels with the record (id, value, unit, source, year), so
the central platform can check or recompute every figure.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from agent.intervals import ClosedInterval
from config.base import Density
from config.carriers import conversion, reported_unit
from config.factors import Factor, FactorSet
from domain.records import AppliedDensity, AppliedFactor, IntervalRecord

KJ_PER_KGCE = 29_307.0  # GB/T 2589: 1 kgce = 29 307 kJ
KWH_PER_KGCE = KJ_PER_KGCE / 3600.0


def rfc3339(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def interval_record(
    device: str,
    carrier: str,
    counter_unit: str,
    interval: ClosedInterval,
    factors: FactorSet,
    province: str,
    tz: ZoneInfo,
    density: Density | None = None,
) -> IntervalRecord:
    """The batch record of one closed interval (see domain/batch.py).

    `density` (kg/L, with its source), given when the meter counts litres of a liquid
    fuel, turns them into the kg its factors are per; the record carries it so the
    platform can check the mass.
    """
    scale = conversion(carrier, counter_unit, density.value if density else None)
    if scale is None:  # config checks refuse such units; never report a wrong number
        raise ValueError(f"{device}: unit {counter_unit!r} is not a unit of {carrier}")
    quantity = interval.quantity * scale
    coal = factors.standard_coal(carrier)
    tce = quantity * coal.value if coal else None
    if carrier == "electricity":
        kwh: float | None = quantity
    elif carrier == "water" or tce is None:
        kwh = None
    else:
        kwh = tce * KWH_PER_KGCE
    factor, scope = factors.co2(carrier, province)
    return IntervalRecord(
        device=device,
        carrier=carrier,
        start=rfc3339(interval.start, tz),
        end=rfc3339(interval.end, tz),
        quantity=round(quantity, 6),
        unit=reported_unit(carrier),
        kwh=None if kwh is None else round(kwh, 6),
        tce_kg=None if tce is None else round(tce, 6),
        co2_kg=round(quantity * factor.value, 6) if factor else (0.0 if scope is None else None),
        scope=scope,
        factor=_applied(factor) if factor else None,
        coverage=round(interval.coverage, 4),
        quality=interval.quality,
        density=AppliedDensity(density.value, density.source) if density is not None else None,
    )


def _applied(factor: Factor) -> AppliedFactor:
    """The factor as a record carries it (field by field: dataclasses.asdict deep-copies,
    62 us a record, 0.19 s of CPU when 3,000 meters close at once)."""
    return AppliedFactor(
        factor.id, factor.value, factor.unit, factor.source, factor.year, factor.verification
    )
