"""The summary behind the government platform's heat map.

Totals per group and local period, each beside the period before it
(month-on-month, day-on-day) and the same period a year earlier
(year-on-year). A comparison period with nothing stored is null, never zero:
zero would read as "consumption fell to nothing".
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from receiver._backends import AnyStore
from receiver._queries import GroupBy, Period
from receiver._totals import Totals


def label(period: Period, day: date) -> str:
    """The period holding `day`: '2026-11-26' for a day, '2026-11' for a month."""
    return day.isoformat() if period == "day" else day.isoformat()[:7]


def previous(period: Period, current: str) -> str | None:
    """The period just before `current`; None before year 1."""
    try:
        if period == "day":
            return (date.fromisoformat(current) - timedelta(days=1)).isoformat()
        year, month = (int(part) for part in current.split("-"))
        return (date(year, month, 1) - timedelta(days=1)).isoformat()[:7]
    except (ValueError, OverflowError):
        return None


def year_ago(period: Period, current: str) -> str | None:
    """The same period one year earlier; 29 February maps to 28 February."""
    try:
        if period == "month":
            year, month = (int(part) for part in current.split("-"))
            return date(year - 1, month, 1).isoformat()[:7]
        day = date.fromisoformat(current)
        if (day.month, day.day) == (2, 29):
            day = day.replace(day=28)
        return day.replace(year=day.year - 1).isoformat()
    except (ValueError, OverflowError):
        return None


def _dates(period: Period, current: str) -> tuple[str, str]:
    """The inclusive range of local dates a period covers, as stored text."""
    return (current, current) if period == "day" else (f"{current}-01", f"{current}-31")


def _entry(
    totals: dict[tuple[str, str], Totals], key: str, when: str | None
) -> dict[str, Any] | None:
    found = totals.get((key, when)) if when is not None else None
    if found is None:
        return None
    return {"period": when, "kwh": found.kwh, "tce_kg": found.tce_kg, "co2_kg": found.co2_kg}


def summarize(store: AnyStore, by: GroupBy, period: Period, day: date | None) -> dict[str, Any]:
    """Every stored period per group, or only the period holding `day`."""
    if day is None:
        totals = store.totals(by, period)
        current = sorted(totals)
    else:
        wanted = label(period, day)
        periods = [p for p in (wanted, previous(period, wanted), year_ago(period, wanted)) if p]
        totals = store.totals(by, period, [_dates(period, p) for p in periods])
        current = sorted(key for key in totals if key[1] == wanted)
    groups = [
        {
            "key": key,
            **(_entry(totals, key, when) or {}),
            "previous": _entry(totals, key, previous(period, when)),
            "year_ago": _entry(totals, key, year_ago(period, when)),
        }
        for key, when in current
    ]
    return {
        "by": by,
        "period": period,
        "date": day.isoformat() if day is not None else None,
        "groups": groups,
    }
