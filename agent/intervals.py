"""Clock-aligned intervals and the spreading of energy over them.

Energy known for a span of time is split over the intervals the span covers,
in proportion to time; an interval closes once time has moved past its end.
Alignment is on local wall-clock time: intervals that divide an hour follow
the local quarter hour, and daily intervals run from local midnight to local
midnight (23 or 25 hours on daylight-saving days).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

DAY = 86400.0
_COMPLETE = 0.999  # share of an interval treated as all of it (float rounding, poll jitter)


@dataclass(slots=True)
class OpenInterval:
    """An interval still accumulating; `measured` and `interpolated` are seconds."""

    start: float
    end: float
    quantity: float = 0.0
    measured: float = 0.0
    interpolated: float = 0.0


@dataclass(frozen=True, slots=True)
class ClosedInterval:
    start: float
    end: float
    quantity: float
    coverage: float
    quality: str  # good | estimated | partial


def interval_start(ts: float, length: float, tz: ZoneInfo) -> float:
    """Start of the local-clock-aligned interval of `length` seconds holding `ts`."""
    local = datetime.fromtimestamp(ts, tz)
    if length == DAY:
        return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    shift = (local.utcoffset() or timedelta(0)).total_seconds()
    return math.floor((ts + shift) / length) * length - shift


def interval_end(start: float, length: float, tz: ZoneInfo) -> float:
    if length == DAY:
        day = datetime.fromtimestamp(start, tz).date() + timedelta(days=1)
        return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
    return start + length


def close(o: OpenInterval) -> ClosedInterval:
    length = o.end - o.start
    if o.measured >= length * _COMPLETE:
        quality = "good"
    elif o.measured + o.interpolated >= length * _COMPLETE:
        quality = "estimated"
    else:
        quality = "partial"
    return ClosedInterval(o.start, o.end, o.quantity, min(1.0, o.measured / length), quality)


def roll(
    opened: dict[float, OpenInterval],
    length: float,
    until: float,
    tz: ZoneInfo,
    closed: list[ClosedInterval],
) -> OpenInterval:
    """The open interval holding `until`, closing every interval that ended before it."""
    current = opened.get(length)
    if current is None:
        start = interval_start(until, length, tz)
        current = OpenInterval(start, interval_end(start, length, tz))
    while current.end <= until:
        closed.append(close(current))
        current = OpenInterval(current.end, interval_end(current.end, length, tz))
    opened[length] = current
    return current


def spread(
    opened: dict[float, OpenInterval],
    length: float,
    t0: float,
    t1: float,
    delta: float | None,
    gap: bool,
    tz: ZoneInfo,
    closed: list[ClosedInterval],
) -> None:
    """Add the energy `delta` of [t0, t1) to the intervals it spans.

    `delta` None means the energy of the span is unknown (a reset): time
    passes and intervals close, but nothing is added or counted as seen.
    `gap` marks the span as interpolated rather than measured.
    """
    current = opened.get(length)
    if current is not None and t0 < t1 < current.end:
        # the usual sample: the span ends inside the open interval, nothing closes. The
        # same sums as the loop below, without its two `roll` calls a length: 0.9 us of
        # the 4.2 us of `energy.advance` with two interval lengths (timeit, issue 16)
        if delta is not None:
            current.quantity += delta
            if gap:
                current.interpolated += t1 - t0
            else:
                current.measured += t1 - t0
        return
    added = 0.0
    a = t0
    while a < t1:
        current = roll(opened, length, a, tz, closed)
        b = min(t1, current.end)
        if delta is not None:
            share = delta - added if b >= t1 else delta * (b - a) / (t1 - t0)
            added += share
            current.quantity += share
            if gap:
                current.interpolated += b - a
            else:
                current.measured += b - a
        a = b
    roll(opened, length, t1, tz, closed)
