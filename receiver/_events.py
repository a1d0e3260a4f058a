"""The query behind GET /api/v1/events, apart from the store that runs it.

Events are few beside intervals (alarms, devices going offline, a full
buffer) and are read the way a person on duty reads them: oldest first,
narrowed by gateway, device, kind, severity and time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime


def events_query(
    gateway: str | None,
    device: str | None,
    kind: str | None,
    severity: str | None,
    start_from: datetime | None,
    start_to: datetime | None,
) -> tuple[str, list[str | float]]:
    """SQL (with ? placeholders, the limit last) and its parameters but the limit.

    `start_from` is inclusive and `start_to` exclusive, both on the event's `ts`.
    """
    where: list[str] = []
    parameters: list[str | float] = []
    for column, value in (
        ("gateway", gateway),
        ("device", device),
        ("kind", kind),
        ("severity", severity),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            parameters.append(value)
    if start_from is not None:
        where.append("ts_s >= ?")
        parameters.append(start_from.timestamp())
    if start_to is not None:
        where.append("ts_s < ?")
        parameters.append(start_to.timestamp())
    sql = (
        "SELECT gateway, record FROM events"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY ts_s, gateway, event_id LIMIT ?"
    )
    return sql, parameters


def with_gateway(rows: Iterable[tuple[str, str]]) -> list[str]:
    """Each record as received (JSON text), with the gateway it came from put in front."""
    return ['{"gateway":' + json.dumps(gateway) + "," + record[1:] for gateway, record in rows]
