"""kWh, tce and CO2 per group and local period, each device's energy counted once.

Each device's energy is counted once, although a gateway may report the same
energy at several interval lengths (emissions.intervals: 1m and 15m, say) and
the lengths it reports may change at a restart. Intervals are aligned to the
local clock, so they nest: a 1-minute interval lies inside a 15-minute one,
which lies inside an hour, which lies inside a local day. Per gateway, device
and carrier, an interval adds what it holds beyond the intervals nested in it:
its own value less what is counted inside it, never below zero. What is counted
inside it is the total of the largest intervals nested in it, each with its own
nested ones, so nothing is taken off twice. A span reported at 1 and 15 minutes
is counted from the 1-minute intervals; a 15-minute interval of which only the
last 8 minutes were also reported per minute adds its value less those 8; an
interval with nothing nested in it counts whole. kWh, tce and CO2 each follow
this rule on their own. Every interval's share goes to the local period of its
start; aligned intervals never cross local midnight, so a period's intervals
are counted from that period's rows alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Any

Measures = tuple[float | None, float | None, float | None]  # kwh, tce_kg, co2_kg


@dataclass(frozen=True)
class Totals:
    kwh: float | None
    tce_kg: float | None
    co2_kg: float | None


def add_up(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, str], Totals]:
    """Totals per (group, local period), in order.

    `rows` are (gateway, device, carrier, end_s, group, period, kwh, tce_kg,
    co2_kg), ordered by gateway, device and carrier, then by start and longest
    first (see _shares).
    """
    sums: dict[tuple[str, str], list[float | None]] = {}
    for _, meter in groupby(rows, key=itemgetter(0, 1, 2)):
        for place, adds in _shares(row[3:] for row in meter):
            total = sums.setdefault(place, [None, None, None])
            for n, add in enumerate(adds):
                if add is not None:
                    total[n] = (total[n] or 0.0) + add
    return {place: Totals(*sums[place]) for place in sorted(sums)}


@dataclass(slots=True)
class _Nesting:
    """An interval whose nested intervals are still being read."""

    end: float
    place: tuple[str, str]  # (group, local period)
    own: Measures
    inside: list[float]  # what the intervals nested in it count, so far


def _shares(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[tuple[str, str], Measures]]:
    """What each interval of one device and carrier adds to the total of its (group, period).

    `rows` are (end_s, group, period, kwh, tce_kg, co2_kg), ordered by start and
    then longest first, so an interval comes after every interval it is nested
    in. Those still open are a stack, each nested in the one below it. An
    interval that overlaps the top without nesting in it (not clock-aligned:
    the agent never sends one) is counted beside it, not inside it.
    """
    stack: list[_Nesting] = []
    for end, group, period, kwh, tce_kg, co2_kg in rows:
        while stack and stack[-1].end < end:
            yield _close(stack)
        stack.append(_Nesting(end, (group, period), (kwh, tce_kg, co2_kg), [0.0, 0.0, 0.0]))
    while stack:
        yield _close(stack)


def _close(stack: list[_Nesting]) -> tuple[tuple[str, str], Measures]:
    """Take the top interval off the stack: what it adds, and its total to the one it is in."""
    done = stack.pop()
    kwh, tce_kg, co2_kg = (
        None if own is None else max(0.0, own - inside)
        for own, inside in zip(done.own, done.inside, strict=True)
    )
    adds = (kwh, tce_kg, co2_kg)
    if stack:
        outer = stack[-1].inside
        for n, add in enumerate(adds):
            outer[n] += done.inside[n] + (add or 0.0)
    return done.place, adds
