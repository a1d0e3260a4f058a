"""The batch a gateway POSTs to the central platform: schema version 1.

The contract between the agent's uplink and a receiver, so it lives on the
bottom floor where both can import it. The agent builds batches from records
it serialised when they were computed (domain/records.py's IntervalRecord has
exactly the fields of `Interval`: a test holds them together); the reference
receiver validates incoming batches with these models and publishes their JSON
Schema at GET /api/v1/schema.

Every model forbids unknown fields, so a misspelt or unexpected field is a 422
naming its path instead of a value the platform silently drops. That makes the
version a promise: a receiver of version N refuses a field N does not declare,
so a newer agent that adds a field must send a new `schema_version` (and a
receiver must know it) rather than slip the field past an older receiver.
Forbidding did not need a new version here: it narrows what a version 1
receiver takes, and every field a version 1 agent has ever sent is declared
(`intensity_complete`, which one had sent undeclared, is now), so each batch
the agents send is accepted by old and new receivers alike. A third-party
sender that added fields of its own under version 1 is now told which ones.
"""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1

# Sequences and event ids are stored as SQLite integers on the receiver.
_INT64_MAX = 2**63 - 1


class _Record(BaseModel):
    # NaN or Infinity in one record would poison every total it is summed into.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class GatewayTags(_Record):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    enterprise_id: str = Field(pattern=r"^[0-9A-Z]{18}$", description="Unified social credit code")
    region_code: str = Field(pattern=r"^\d{6}$", description="GB/T 2260")
    industry_code: str = Field(pattern=r"^[A-T]\d{0,4}$", description="GB/T 4754-2017")
    timezone: str = Field(description="IANA time zone; the receiver's days and months are local")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Asia" is a folder
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


class Factor(_Record):
    id: str
    value: float
    unit: str = Field(description="e.g. kgCO2/kWh")
    source: str
    year: int | None = None
    verification: str | None = None


class Density(_Record):
    value: float
    unit: str = Field(description="kg/L")
    source: str


class Interval(_Record):
    device: str
    carrier: str
    start: AwareDatetime = Field(description="RFC 3339 with offset")
    end: AwareDatetime
    quantity: float = Field(description="Energy in the carrier's own unit")
    unit: str
    kwh: float | None = Field(description="Energy equivalent in kWh, where it applies")
    tce_kg: float | None = Field(description="Standard coal equivalent, kgce (GB/T 2589-2020)")
    co2_kg: float | None
    scope: Literal[1, 2] | None = Field(description="1: fuels burnt on site; 2: purchased")
    factor: Factor | None = Field(description="The CO2 factor applied")
    coverage: float = Field(ge=0, le=1, description="Share of the interval measured")
    quality: Literal["good", "estimated", "partial"]
    # optional: 15-minute electricity intervals (block demand)
    demand_kw: float | None = Field(
        default=None, description="15-minute block demand: the interval's kWh x 4"
    )
    demand_max_day_kw: float | None = Field(
        default=None, description="Largest block demand of the device so far that local day"
    )
    demand_max_month_kw: float | None = Field(
        default=None, description="Largest block demand of the device so far that month"
    )
    # optional: a liquid fuel metered by volume
    density: Density | None = Field(
        default=None, description="The density that turned the metered litres into quantity (kg)"
    )
    # optional: carrier "production" (a production counter; kwh, tce_kg, co2_kg are null)
    site_co2_kg: float | None = Field(default=None, description="The site's CO2 of the interval")
    site_tce_kg: float | None = Field(default=None, description="The site's kgce of the interval")
    co2_kg_per_unit: float | None = Field(
        default=None, description="Carbon intensity of the interval: site CO2 / units"
    )
    tce_kg_per_unit: float | None = Field(
        default=None, description="Site standard coal / units of the interval"
    )
    co2_kg_per_unit_day: float | None = Field(
        default=None, description="Site CO2 / units of the local day up to the interval's end"
    )
    tce_kg_per_unit_day: float | None = Field(
        default=None, description="Site kgce / units of the local day up to the interval's end"
    )
    intensity_complete: bool | None = Field(
        default=None,
        description="false: a production record sent before every energy meter had closed "
        "its interval (one stayed offline a day), so the site figures above are short; "
        "absent when they are complete",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Event(_Record):
    id: int = Field(
        ge=-_INT64_MAX - 1, le=_INT64_MAX, description="Sequence of the event on its gateway"
    )
    ts: AwareDatetime
    device: str | None = None
    kind: str = Field(
        description="e.g. counter_reset, alarm_raised, alarm_cleared, action_failed, "
        "device_offline, device_online, buffer_full"
    )
    severity: Literal["info", "warning", "critical"]
    message: str


class Sample(_Record):
    device: str
    point: str
    ts: AwareDatetime
    value: float | None
    unit: str
    quality: str


class Batch(_Record):
    schema_version: Literal[1]
    gateway: GatewayTags
    sequence: int = Field(
        ge=1, le=_INT64_MAX, description="Idempotency-Key is '<gateway.id>:<sequence>'"
    )
    factor_set: str
    intervals: list[Interval] = []
    events: list[Event] = []
    samples: list[Sample] = []


def batch_json_schema() -> dict[str, Any]:
    """The JSON Schema served by the receiver, with its version in the id."""
    schema = Batch.model_json_schema()
    schema["$id"] = f"https://edge-agent.invalid/schemas/batch/v{SCHEMA_VERSION}.json"
    schema["title"] = f"edge-agent batch, schema version {SCHEMA_VERSION}"
    return schema
