"""What the pipeline hands to the buffer: closed intervals, events, counter state.

An `IntervalRecord` is one closed interval as the platform receives it (the
`Interval` of domain/batch.py: a test holds the two to the same fields); the
pipeline stores its `to_json()` as an `IntervalRow`'s body, so the buffer and
the uploader only ever see JSON. A `Commit` is everything one poll produced,
written in one transaction, so a crash leaves either all of it on disk or none
of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class AppliedFactor:
    """The CO2 factor a record applied and where it comes from, so the platform can
    check or recompute the figure."""

    id: str
    value: float
    unit: str
    source: str
    year: int | None = None
    verification: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "value": self.value,
            "unit": self.unit,
            "source": self.source,
            "year": self.year,
            "verification": self.verification,
        }


@dataclass(frozen=True, slots=True)
class AppliedDensity:
    """The density (kg/L) that turned a liquid fuel's metered litres into kg."""

    value: float
    source: str
    unit: str = "kg/L"

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "source": self.source}


@dataclass(frozen=True, slots=True)
class IntervalRecord:
    """One closed interval of one device, as the platform receives it.

    The fields without a default are always written (null where they do not apply:
    a production counter has no kWh). The optional ones come in groups, each written
    only when the record has it, so a record costs no more bytes than it says:
    `density` (a liquid fuel metered by volume), the demand group (with `demand_kw`:
    a 15-minute electricity record), the intensity group (with `site_co2_kg`: a
    production record once released; its per-unit figures are null when no unit was
    made) and `intensity_complete` (only ever written false: released without every
    meter's interval).
    """

    device: str
    carrier: str
    start: str  # RFC 3339 with the gateway's offset
    end: str
    quantity: float  # in the carrier's own unit
    unit: str
    kwh: float | None
    tce_kg: float | None
    co2_kg: float | None
    scope: int | None  # 1: fuels burnt on site; 2: purchased
    factor: AppliedFactor | None
    coverage: float
    quality: str  # good, estimated, partial
    density: AppliedDensity | None = None
    demand_kw: float | None = None
    demand_max_day_kw: float | None = None
    demand_max_month_kw: float | None = None
    site_co2_kg: float | None = None
    site_tce_kg: float | None = None
    co2_kg_per_unit: float | None = None
    tce_kg_per_unit: float | None = None
    co2_kg_per_unit_day: float | None = None
    tce_kg_per_unit_day: float | None = None
    intensity_complete: bool | None = None
    # point -> [avg, min, max, readings] of the interval, for destinations that send them
    # (agent/statistics.py); HTTP batches (schema version 1) leave it out
    stats: dict[str, list[float]] | None = None

    def to_json(self) -> dict[str, Any]:
        """The record's JSON, as the buffer keeps it and a batch carries it."""
        out: dict[str, Any] = {
            "device": self.device,
            "carrier": self.carrier,
            "start": self.start,
            "end": self.end,
            "quantity": self.quantity,
            "unit": self.unit,
            "kwh": self.kwh,
            "tce_kg": self.tce_kg,
            "co2_kg": self.co2_kg,
            "scope": self.scope,
            "factor": None if self.factor is None else self.factor.to_json(),
            "coverage": self.coverage,
            "quality": self.quality,
        }
        if self.density is not None:
            out["density"] = self.density.to_json()
        if self.demand_kw is not None:
            out["demand_kw"] = self.demand_kw
            out["demand_max_day_kw"] = self.demand_max_day_kw
            out["demand_max_month_kw"] = self.demand_max_month_kw
        if self.site_co2_kg is not None:
            out["site_co2_kg"] = self.site_co2_kg
            out["site_tce_kg"] = self.site_tce_kg
            out["co2_kg_per_unit"] = self.co2_kg_per_unit
            out["tce_kg_per_unit"] = self.tce_kg_per_unit
            out["co2_kg_per_unit_day"] = self.co2_kg_per_unit_day
            out["tce_kg_per_unit_day"] = self.tce_kg_per_unit_day
        if self.intensity_complete is not None:
            out["intensity_complete"] = self.intensity_complete
        if self.stats is not None:
            out["stats"] = self.stats  # last: see cloud_sync/http/uploader.py
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IntervalRecord:
        """A record back from its JSON (a production record waiting in persisted state);
        keys this version does not know are left out, like the other states' from_json."""
        values = {k: v for k, v in data.items() if k in _RECORD_FIELDS}
        if values.get("factor") is not None:
            values["factor"] = AppliedFactor(**values["factor"])
        if values.get("density") is not None:
            values["density"] = AppliedDensity(**values["density"])
        return cls(**values)


_RECORD_FIELDS = frozenset(f.name for f in fields(IntervalRecord))


@dataclass(frozen=True, slots=True)
class EventRow:
    ts: float
    device: str | None
    kind: str
    severity: str
    message: str


SampleRow = tuple[str, str, float, float | None, str, str]
"""A raw sample as the buffer stores it: device, point, ts, value, unit, quality."""


@dataclass(frozen=True, slots=True)
class IntervalRow:
    device: str
    start: float
    length: float
    body: dict[str, Any]  # the record's JSON (IntervalRecord.to_json() for the pipeline's records)


@dataclass(slots=True)
class Commit:
    """Everything one poll produced, written in one transaction."""

    intervals: list[IntervalRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: list[SampleRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.intervals or self.events or self.counters or self.samples)

    def then(self, later: Commit) -> Commit:
        """This work followed by `later`'s, as one: the later counter state wins."""
        return Commit(
            self.intervals + later.intervals,
            self.events + later.events,
            {**self.counters, **later.counters},
            self.samples + later.samples,
        )
