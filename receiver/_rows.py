"""A batch's records as table rows, the same columns for the SQLite and PostgreSQL stores.

Each list is sorted by the record's own key (intervals by device, carrier, start, end;
events by id; samples by device, point, time), so that two receivers storing
overlapping batches at once take their row locks in the same order.
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

from domain.batch import Batch


def _json(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


Rows = list[tuple[Any, ...]]


def rows(batch: Batch, document: dict[str, Any]) -> tuple[Rows, Rows, Rows]:
    """A batch's interval, event and sample rows, in the columns of both stores and in
    the order of their natural keys (so concurrent batches lock rows in one order).

    The SQLite store inserts all three; the PostgreSQL store only events and samples
    (it takes intervals from the body, INSERT_INTERVALS_JSON), so interval_rows is
    there bench/receiver_ingest.py's, to compare."""
    return interval_rows(batch, document), event_rows(batch, document), sample_rows(batch, document)


def interval_rows(batch: Batch, document: dict[str, Any]) -> Rows:
    tags = batch.gateway
    zone = ZoneInfo(tags.timezone)
    return sorted(
        (
            (
                tags.id,
                tags.enterprise_id,
                tags.region_code,
                tags.industry_code,
                tags.timezone,
                record.device,
                record.carrier,
                raw["start"],
                raw["end"],
                record.start.timestamp(),
                record.end.timestamp(),
                (record.end - record.start).total_seconds(),
                record.start.astimezone(zone).date().isoformat(),
                record.quantity,
                record.unit,
                record.kwh,
                record.tce_kg,
                record.co2_kg,
                record.scope,
                record.factor.id if record.factor is not None else None,
                record.coverage,
                record.quality,
                _json(raw),
            )
            for record, raw in zip(batch.intervals, document.get("intervals", []), strict=True)
        ),
        key=lambda row: (row[5], row[6], row[9], row[10]),
    )


def event_rows(batch: Batch, document: dict[str, Any]) -> Rows:
    tags = batch.gateway
    return sorted(
        (
            (
                tags.id,
                record.id,
                raw["ts"],
                record.ts.timestamp(),
                record.device,
                record.kind,
                record.severity,
                record.message,
                _json(raw),
            )
            for record, raw in zip(batch.events, document.get("events", []), strict=True)
        ),
        key=lambda row: row[1],
    )


def sample_rows(batch: Batch, document: dict[str, Any]) -> Rows:
    tags = batch.gateway
    return sorted(
        (
            (
                tags.id,
                record.device,
                record.point,
                raw["ts"],
                record.ts.timestamp(),
                record.value,
                record.unit,
                record.quality,
                _json(raw),
            )
            for record, raw in zip(batch.samples, document.get("samples", []), strict=True)
        ),
        key=lambda row: (row[1], row[2], row[4]),
    )
