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
    """`last`: the confirmed sample energy is counted from; `pending`: the newest
    sample, waiting for the next one to confirm it."""

    last: Sample | None = None
    pending: Sample | None = None
    open: dict[float, OpenInterval] = field(default_factory=dict)
    doubt: Sample | None = None  # before the first baseline: a value the next one contradicted

    def to_json(self) -> dict:
        return {
            "last": [self.last.ts, self.last.value] if self.last else None,
            "pending": [self.pending.ts, self.pending.value] if self.pending else None,
            "doubt": [self.doubt.ts, self.doubt.value] if self.doubt else None,
            "open": [
                [length, o.start, o.end, o.quantity, o.measured, o.interpolated]
                for length, o in self.open.items()
            ],
        }

    @classmethod
    def from_json(cls, data: dict) -> CounterState:
        last = Sample(*data["last"]) if data.get("last") else None
        pending = Sample(*data["pending"]) if data.get("pending") else None
        opened = {row[0]: OpenInterval(*row[1:]) for row in data.get("open", [])}
        doubt = Sample(*data["doubt"]) if data.get("doubt") else None
        return cls(last, pending, opened, doubt)


@dataclass(frozen=True, slots=True)
class Step:
    """What one sample did: intervals it closed and what happened to the counter."""

    closed: dict[float, list[ClosedInterval]]
    events: list[str] = field(default_factory=list)  # e.g. "counter_reset: 1234.5 -> 0.2"


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


def _apply(
    state: CounterState,
    to: Sample,
    delta: float | None,
    lengths: tuple[float, ...],
    tz: ZoneInfo,
    gap_limit: float,
    closed: dict[float, list[ClosedInterval]],
) -> None:
    """Move the confirmed counter from `state.last` to `to`, spreading `delta`."""
    last = state.last
    if last is None:
        for length in lengths:
            _roll(state, length, to.ts, tz, closed[length])
    else:
        gap = to.ts - last.ts > gap_limit
        for length in lengths:
            _spread(state, length, last.ts, to.ts, delta, gap, tz, closed[length])
    state.last = to


def _choose_baseline(
    state: CounterState,
    s: Sample,
    c: Sample,
    lengths: tuple[float, ...],
    tz: ZoneInfo,
    gap_limit: float,
    closed: dict[float, list[ClosedInterval]],
) -> None:
    """The first confirmed value: a sample the next one agrees with.

    When the second value falls below the first, one of them is wrong; the
    third tells which (`doubt` holds the first meanwhile).
    """
    d, state.doubt = state.doubt, None
    if d is not None and c.value >= d.value:  # `s` was the odd one out
        _apply(state, d, None, lengths, tz, gap_limit, closed)
    elif c.value >= s.value or _noise(s.value - c.value, s.value):
        _apply(state, s, None, lengths, tz, gap_limit, closed)
    else:
        state.doubt = s


def _noise(drop: float, level: float) -> bool:
    """A drop too small to be anything but register rounding (float32, scaling)."""
    return drop <= max(1e-9, abs(level) * 1e-6)


def advance(
    state: CounterState,
    sample: Sample,
    lengths: tuple[float, ...],
    tz: ZoneInfo,
    gap_limit: float,
) -> Step:
    """Feed one good counter sample; returns the intervals it closed and what it found.

    Each sample is judged by the one after it, so one bad value can never add
    energy: a value out of line with both neighbours (a dip to 0, a spike) is
    a glitch and is dropped; a drop that the next sample confirms is a reset
    (meter cleared or replaced) and starts a new baseline. Energy is applied
    one sample late, so intervals close one poll after their end.
    """
    closed: dict[float, list[ClosedInterval]] = {length: [] for length in lengths}
    events: list[str] = []
    a, s, c = state.last, state.pending, sample
    if s is not None and c.ts <= s.ts:  # a repeated sample, or the clock stepped back
        if s.ts - c.ts > 1.0:
            events.append(f"clock_backwards: {s.ts - c.ts:.1f}s")
        return Step(closed, events)
    state.pending = c
    if s is None:
        return Step(closed, events)
    if a is None:
        _choose_baseline(state, s, c, lengths, tz, gap_limit, closed)
        return Step(closed, events)
    if s.value >= a.value:  # `s` looks like progress, unless `c` falls back below it
        if a.value <= c.value < s.value and not _noise(s.value - c.value, s.value):
            events.append(f"counter_glitch: {a.value:g} {s.value:g} {c.value:g}, spike dropped")
        else:
            _apply(state, s, s.value - a.value, lengths, tz, gap_limit, closed)
    elif _noise(a.value - s.value, a.value):
        pass  # rounding below the confirmed value: nothing to count, nothing to say
    elif c.value >= a.value:
        events.append(f"counter_glitch: {a.value:g} {s.value:g} {c.value:g}, dip dropped")
    else:
        events.append(f"counter_reset: {a.value:g} -> {s.value:g}")
        _apply(state, s, None, lengths, tz, gap_limit, closed)
    return Step(closed, events)
