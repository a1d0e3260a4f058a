"""The read queries of the two stores (SQLite and PostgreSQL), written once.

Both stores hold the same tables and columns (receiver._rows fills them), so
the SQL behind GET /api/v1/intervals, /api/v1/events and the summary's totals
differs only in the parameter mark: '?' for sqlite3, '%s' for psycopg.

`StoreReads` holds the three read methods both stores share: each store
gives only its `_MARK` and how it runs a query (`_read`, `_rows`).

Events are few beside intervals (alarms, devices going offline, a full
buffer) and are read the way a person on duty reads them: oldest first,
narrowed by gateway, device, kind, severity and time.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

from receiver._totals import Totals, add_up

GroupBy = Literal["region", "industry", "enterprise", "gateway"]
Period = Literal["day", "month"]

_GROUP_COLUMN: dict[str, str] = {
    "region": "region_code",
    "industry": "industry_code",
    "enterprise": "enterprise_id",
    "gateway": "gateway",
}
_PERIOD_EXPR: dict[str, str] = {"day": "i.local_date", "month": "substr(i.local_date, 1, 7)"}


def _filtered(
    select: str, conditions: Iterable[tuple[str, str | float | None]], order: str, mark: str
) -> tuple[str, list[str | float]]:
    """`select` narrowed by each condition whose value is not None, ordered, the limit last."""
    where: list[str] = []
    parameters: list[str | float] = []
    for condition, value in conditions:
        if value is not None:
            where.append(f"{condition} {mark}")
            parameters.append(value)
    sql = (
        select
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY {order} LIMIT {mark}"
    )
    return sql, parameters


def _seconds(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def intervals_query(
    gateway: str | None,
    device: str | None,
    start_from: datetime | None,
    start_to: datetime | None,
    mark: str = "?",
) -> tuple[str, list[str | float]]:
    """SQL (with `mark` placeholders, the limit last) and its parameters but the limit.

    `start_from` is inclusive and `start_to` exclusive, both on the interval's start.
    """
    return _filtered(
        "SELECT gateway, record FROM intervals",
        (
            ("gateway =", gateway),
            ("device =", device),
            ("start_s >=", _seconds(start_from)),
            ("start_s <", _seconds(start_to)),
        ),
        "gateway, device, start_s, end_s",
        mark,
    )


def events_query(
    gateway: str | None,
    device: str | None,
    kind: str | None,
    severity: str | None,
    start_from: datetime | None,
    start_to: datetime | None,
    mark: str = "?",
) -> tuple[str, list[str | float]]:
    """SQL (with `mark` placeholders, the limit last) and its parameters but the limit.

    `start_from` is inclusive and `start_to` exclusive, both on the event's `ts`.
    """
    return _filtered(
        "SELECT gateway, record FROM events",
        (
            ("gateway =", gateway),
            ("device =", device),
            ("kind =", kind),
            ("severity =", severity),
            ("ts_s >=", _seconds(start_from)),
            ("ts_s <", _seconds(start_to)),
        ),
        "ts_s, gateway, event_id",
        mark,
    )


def totals_query(
    by: GroupBy, period: Period, dates: Sequence[tuple[str, str]] | None, mark: str = "?"
) -> tuple[str, list[str]]:
    """SQL and parameters for the rows receiver._totals.add_up counts.

    `dates` limits the answer to intervals whose local date lies in one of
    the inclusive ('YYYY-MM-DD', 'YYYY-MM-DD') ranges.
    """
    column, expression = _GROUP_COLUMN[by], _PERIOD_EXPR[period]
    where = ""
    parameters: list[str] = []
    if dates is not None:
        where = "WHERE " + " OR ".join(f"i.local_date BETWEEN {mark} AND {mark}" for _ in dates)
        parameters.extend(bound for pair in dates for bound in pair)
    sql = (
        f"SELECT i.gateway, i.device, i.carrier, i.end_s, i.{column}, {expression},"
        f" i.kwh, i.tce_kg, i.co2_kg FROM intervals AS i {where}"
        " ORDER BY i.gateway, i.device, i.carrier, i.start_s, i.end_s DESC"
    )
    return sql, parameters


def with_gateway(rows: Iterable[tuple[str, str]]) -> list[str]:
    """Each record as received (JSON text), with the gateway it came from put in front."""
    return ['{"gateway":' + json.dumps(gateway) + "," + record[1:] for gateway, record in rows]


class StoreReads(ABC):
    """GET /api/v1/intervals, /api/v1/events and the summary's totals, for either store."""

    _MARK = "?"  # the parameter mark of the store's driver

    @abstractmethod
    def _read(self, sql: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The whole answer of one query."""

    @abstractmethod
    def _rows(self, sql: str, parameters: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        """The answer of one query row by row, for answers too long to hold at once."""

    def _page(self, sql: str, parameters: list[str | float], limit: int) -> tuple[list[str], bool]:
        """Up to `limit` records with their gateway, and whether there were more."""
        rows = self._read(sql, [*parameters, limit + 1])
        return with_gateway(rows[:limit]), len(rows) > limit

    def intervals(
        self,
        *,
        gateway: str | None,
        device: str | None,
        start_from: datetime | None,
        start_to: datetime | None,
        limit: int,
    ) -> tuple[list[str], bool]:
        """Interval records as received (JSON text) with their `gateway`, and whether `limit`
        cut the list short."""
        sql, parameters = intervals_query(gateway, device, start_from, start_to, self._MARK)
        return self._page(sql, parameters, limit)

    def events(
        self,
        *,
        gateway: str | None,
        device: str | None,
        kind: str | None,
        severity: str | None,
        start_from: datetime | None,
        start_to: datetime | None,
        limit: int,
    ) -> tuple[list[str], bool]:
        """Event records as received (JSON text) with their `gateway`, oldest first, and
        whether `limit` cut the list short; `start_from` inclusive, `start_to` exclusive."""
        sql, parameters = events_query(
            gateway, device, kind, severity, start_from, start_to, self._MARK
        )
        return self._page(sql, parameters, limit)

    def totals(
        self, by: GroupBy, period: Period, dates: Sequence[tuple[str, str]] | None = None
    ) -> dict[tuple[str, str], Totals]:
        """kWh, tce and CO2 per (group, local period), each device's energy counted once
        (receiver._totals); `dates` as in `totals_query`."""
        sql, parameters = totals_query(by, period, dates, self._MARK)
        return add_up(self._rows(sql, parameters))
