"""Carbon intensity: the site's CO2 and standard coal per unit produced.

A `production:` counter gives interval records of its own (carrier
"production", quantity in units, no kWh/tce/CO2, so the platform's energy
totals are unchanged) with the intensity of the interval and of the local day
so far. The site's CO2 of an interval is only known once every energy meter
has closed that interval (they close one poll after its end, each on its own
poll), so a production record waits until then; a meter that stays offline
holds it back at most a day, after which the record goes with
`intensity_complete: false`. The waiting records and the site sums are
persisted under `#intensity` with the intervals that changed them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo

from agent.carbon import rfc3339
from agent.demand import local_day
from agent.intervals import DAY, ClosedInterval
from domain.records import IntervalRecord

KEY = "#intensity"
PRODUCTION = "production"  # the carrier of production records
MAX_WAIT = DAY  # a production record waits at most this long past its end
_KEEP = 2 * DAY  # site sums older than this are forgotten (nothing waits for them)


def _key(length: float, start: float) -> str:
    return f"{length:g}:{start:.3f}"


@dataclass(frozen=True, slots=True)
class Waiting:
    """A production record of the interval of `length` from `start` to `end`."""

    length: float
    start: float
    end: float
    record: IntervalRecord


@dataclass(slots=True)
class Intensity:
    sums: dict[str, list[float]] = field(default_factory=dict)  # interval -> [co2, tce]
    pending: list[Waiting] = field(default_factory=list)
    days: dict[str, list] = field(default_factory=dict)  # device -> [day, units, co2, tce]

    def to_json(self) -> dict:
        pending = [
            {"length": w.length, "start": w.start, "end": w.end, "body": w.record.to_json()}
            for w in self.pending
        ]
        return {"sums": self.sums, "pending": pending, "days": self.days}

    @classmethod
    def from_json(cls, data: dict) -> Intensity:
        pending = [
            Waiting(p["length"], p["start"], p["end"], IntervalRecord.from_json(p["body"]))
            for p in data.get("pending", [])
        ]
        return cls(dict(data.get("sums", {})), pending, dict(data.get("days", {})))


def production_record(
    device: str, unit: str, interval: ClosedInterval, tz: ZoneInfo
) -> IntervalRecord:
    """A production counter's interval: units made, and none of the energy measures."""
    return IntervalRecord(
        device=device,
        carrier=PRODUCTION,
        start=rfc3339(interval.start, tz),
        end=rfc3339(interval.end, tz),
        quantity=round(interval.quantity, 6),
        unit=unit,
        kwh=None,
        tce_kg=None,
        co2_kg=None,
        scope=None,
        factor=None,
        coverage=round(interval.coverage, 4),
        quality=interval.quality,
    )


def add_energy(state: Intensity, length: float, start: float, record: IntervalRecord) -> None:
    """An energy interval's CO2 and tce into the site's sum for that interval."""
    sums = state.sums.setdefault(_key(length, start), [0.0, 0.0])
    sums[0] += record.co2_kg or 0.0
    sums[1] += record.tce_kg or 0.0


def add_production(
    state: Intensity, length: float, start: float, end: float, record: IntervalRecord
) -> None:
    state.pending.append(Waiting(length, start, end, record))


def release(
    state: Intensity,
    ready: Callable[[float, float], bool],
    now: float,
    shortest: float,
    tz: ZoneInfo,
) -> list[Waiting]:
    """The waiting records whose interval every energy meter has closed (or that waited
    a day), with their intensity, oldest first; shorter intervals before longer ones
    ending at the same time, so a 15-minute record sees the day up to its end."""
    out, keep = [], []
    for item in sorted(state.pending, key=lambda p: (p.end, p.length)):
        complete = ready(item.length, item.end)
        if not complete and now - item.end < MAX_WAIT:
            keep.append(item)
            continue
        record = item.record
        co2, tce = state.sums.get(_key(item.length, item.start), [0.0, 0.0])
        units = record.quantity
        day = local_day(item.start, tz)
        tally = state.days.get(record.device)
        if tally is None or tally[0] != day:
            tally = state.days[record.device] = [day, 0.0, 0.0, 0.0]
        if item.length == shortest:
            tally[1] += units
            tally[2] += co2
            tally[3] += tce
        record = replace(
            record,
            site_co2_kg=round(co2, 6),
            site_tce_kg=round(tce, 6),
            co2_kg_per_unit=round(co2 / units, 6) if units > 0 else None,
            tce_kg_per_unit=round(tce / units, 6) if units > 0 else None,
            co2_kg_per_unit_day=round(tally[2] / tally[1], 6) if tally[1] > 0 else None,
            tce_kg_per_unit_day=round(tally[3] / tally[1], 6) if tally[1] > 0 else None,
            intensity_complete=None if complete else False,
        )
        out.append(replace(item, record=record))
    state.pending = keep
    return out


def forget(state: Intensity, produced: dict[float, float], now: float) -> None:
    """Drop the site sums no production record can still ask for: intervals every
    production counter has closed (`produced`: length -> where all of them are) and
    none waits for; and, whatever happens, sums older than two days."""
    waiting = {_key(p.length, p.start) for p in state.pending}
    for key in list(state.sums):
        length, start = (float(x) for x in key.split(":"))
        passed = produced.get(length)
        done = passed is not None and start + length * 1.05 <= passed and key not in waiting
        if done or now - start > _KEEP:
            del state.sums[key]
