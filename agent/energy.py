"""Energy per interval from a cumulative counter.

Every pair of consecutive good samples carries the energy `new - old`; it is
split over the clock-aligned intervals the pair spans, in proportion to time.
An interval closes when a sample arrives after its end, so the energy across
a gap (agent down, meter offline) still lands once, in the intervals the gap
covered, flagged in their coverage and quality. The state needed to go on
(last sample and the open intervals) is small and is persisted whenever
intervals close, so a restart continues where the last commit left off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_COMPLETE = 0.999  # share of an interval treated as all of it (float rounding, poll jitter)


@dataclass(frozen=True, slots=True)
class Sample:
    ts: float
    value: float


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


@dataclass(slots=True)
class CounterState:
    last: Sample | None = None
    open: dict[float, OpenInterval] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "last": [self.last.ts, self.last.value] if self.last else None,
            "open": [
                [length, o.start, o.end, o.quantity, o.measured, o.interpolated]
                for length, o in self.open.items()
            ],
        }

    @classmethod
    def from_json(cls, data: dict) -> CounterState:
        last = Sample(*data["last"]) if data.get("last") else None
        opened = {row[0]: OpenInterval(*row[1:]) for row in data.get("open", [])}
        return cls(last, opened)


@dataclass(frozen=True, slots=True)
class Step:
    """What one sample did: intervals it closed and what happened to the counter."""

    closed: dict[float, list[ClosedInterval]]
    event: str | None = None  # e.g. "counter_reset: 1234.5 -> 0.2"


def interval_start(ts: float, length: float, tz: ZoneInfo) -> float:
    """Start of the clock-aligned interval of `length` seconds holding `ts`.

    Alignment is on local wall-clock time, so daily intervals start at local
    midnight and 15-minute ones on the local quarter hour.
    """
    offset = datetime.fromtimestamp(ts, tz).utcoffset() or timedelta(0)
    shift = offset.total_seconds()
    return math.floor((ts + shift) / length) * length - shift


def _close(o: OpenInterval) -> ClosedInterval:
    length = o.end - o.start
    if o.measured >= length * _COMPLETE:
        quality = "good"
    elif o.measured + o.interpolated >= length * _COMPLETE:
        quality = "estimated"
    else:
        quality = "partial"
    return ClosedInterval(o.start, o.end, o.quantity, min(1.0, o.measured / length), quality)


def _roll(
    state: CounterState, length: float, until: float, tz: ZoneInfo, closed: list[ClosedInterval]
) -> OpenInterval:
    """The open interval holding `until`, closing every interval that ended before it."""
    current = state.open.get(length)
    if current is None:
        start = interval_start(until, length, tz)
        current = OpenInterval(start, start + length)
    while current.end <= until:
        closed.append(_close(current))
        start = current.end
        current = OpenInterval(start, interval_start(start, length, tz) + length)
        if current.end <= start:  # a zone transition shortened the step; realign
            current.end = start + length
    state.open[length] = current
    return current


def _spread(
    state: CounterState,
    length: float,
    t0: float,
    t1: float,
    delta: float | None,
    gap: bool,
    tz: ZoneInfo,
    closed: list[ClosedInterval],
) -> None:
    """Add the energy `delta` of [t0, t1) to the intervals it spans.

    `delta` None means the energy of the span is unknown (first sample, reset):
    time passes and intervals close, but nothing is added or counted as seen.
    """
    added = 0.0
    a = t0
    while a < t1:
        current = _roll(state, length, a, tz, closed)
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
    _roll(state, length, t1, tz, closed)


def advance(
    state: CounterState,
    sample: Sample,
    lengths: tuple[float, ...],
    tz: ZoneInfo,
    gap_limit: float,
) -> Step:
    """Feed one good counter sample; returns the intervals it closed."""
    closed: dict[float, list[ClosedInterval]] = {length: [] for length in lengths}
    last = state.last
    if last is None:
        for length in lengths:
            _roll(state, length, sample.ts, tz, closed[length])
        state.last = sample
        return Step(closed)
    if sample.ts <= last.ts:  # a repeated sample, or the clock stepped back
        stepped = last.ts - sample.ts > 1.0
        return Step(closed, f"clock_backwards: {last.ts - sample.ts:.1f}s" if stepped else None)
    delta: float | None = sample.value - last.value
    event = None
    if delta is not None and delta < 0:
        event = f"counter_reset: {last.value:g} -> {sample.value:g}"
        delta = None
    gap = sample.ts - last.ts > gap_limit
    for length in lengths:
        _spread(state, length, last.ts, sample.ts, delta, gap, tz, closed[length])
    state.last = sample
    return Step(closed, event)
