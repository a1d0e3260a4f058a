"""The shapes of the receiver's answers, for its OpenAPI document.

The routes write their answers themselves (records are spliced in as stored,
not parsed and dumped again), so these models only describe them: a client
generated from /api/v1/openapi.json reads what the receiver really sends, and
tests/receiver/test_http_openapi.py holds the two together.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class StoredAnswer(BaseModel):
    status: Literal["stored"]
    key: str = Field(description="The Idempotency-Key, '<gateway id>:<sequence>'")
    intervals: int = Field(description="Interval records new to the receiver")
    events: int
    samples: int
    duplicate_records: int = Field(description="Records already held from another batch")


class DuplicateAnswer(BaseModel):
    status: Literal["duplicate"]
    key: str


class FieldError(BaseModel):
    path: str = Field(description="e.g. intervals[3].co2_kg; '$' is the batch itself")
    message: str


class Refusal(BaseModel):
    """Every error answer, 4xx and 5xx alike, is this JSON."""

    status: Literal["rejected", "unavailable", "error"]
    reason: str
    errors: list[FieldError] | None = Field(
        default=None, description="Only on 422: what does not match the batch schema"
    )


class IntervalsAnswer(BaseModel):
    intervals: list[dict[str, Any]] = Field(
        description="Interval records as the gateway sent them, each with its `gateway` in front"
    )
    truncated: bool = Field(description="More records matched than `limit`")


class EventsAnswer(BaseModel):
    events: list[dict[str, Any]] = Field(
        description="Event records as the gateway sent them (id, ts, device, kind, severity,"
        " message), each with its `gateway` in front, oldest first"
    )
    truncated: bool = Field(description="More records matched than `limit`")


class Totals(BaseModel):
    period: str
    kwh: float
    tce_kg: float
    co2_kg: float


class Group(BaseModel):
    key: str = Field(description="The region, industry, enterprise or gateway")
    period: str = Field(description="YYYY-MM-DD or YYYY-MM, the gateway's local calendar")
    kwh: float
    tce_kg: float
    co2_kg: float
    previous: Totals | None = Field(description="The period before; null where none is stored")
    year_ago: Totals | None = Field(description="The same period a year earlier, or null")


class SummaryAnswer(BaseModel):
    by: Literal["region", "industry", "enterprise", "gateway"]
    period: Literal["day", "month"]
    date: str | None = Field(description="The date asked for, or null for every period")
    groups: list[Group]


class HealthAnswer(BaseModel):
    status: Literal["ok"]
