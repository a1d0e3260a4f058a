"""Each device's latest reading per point, kept as two arrays of floats, not as readings.

`Pipeline.latest` is read by rules (a device's `power_kw`), HJ 212's real-time
data and the demo's table; it is written by every poll. Holding the poll's
`Reading` tuples there kept 20 tuples and 20 floats a meter alive for a second
(about 2.6 KB a meter, and the tuples lived long enough for the collector to
promote and walk them, agent/garbage.py). Here a device keeps its points' times
and values in two `array('d')` (320 bytes for 20 points) and builds a `Reading`
only when one is asked for; the layout (point names, their slots and units) is
shared by every device with the same points. Tracemalloc, running agent, 200 vs
1,000 meters: 3.1 KB a meter before, 0.5 KB after.

A reading that does not fit the arrays (bad quality, a reason, a value that is
not a float or is NaN, a unit other than the layout's, a point the layout lacks,
another device's name) is kept as it is, beside them; it is as rare as a meter
in trouble.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping

from domain.reading import Quality, Reading

_UNSET = float("nan")  # a slot no reading has filled yet (a time is never NaN)
GOOD = Quality.GOOD


class Layout:
    """Point names in the order a device's polls deliver them, their slots and units."""

    __slots__ = ("names", "slots", "units")

    def __init__(self, names: tuple[str, ...], units: tuple[str, ...]) -> None:
        self.names = names
        self.units = units
        self.slots = {name: i for i, name in enumerate(names)}


class Layouts:
    """One `Layout` per distinct (names, units): 5,000 meters of one model share one."""

    def __init__(self) -> None:
        self._known: dict[tuple[tuple[str, ...], tuple[str, ...]], Layout] = {}

    def of(self, readings: list[Reading]) -> Layout:
        key = (tuple(r.point for r in readings), tuple(r.unit for r in readings))
        layout = self._known.get(key)
        if layout is None:
            layout = self._known[key] = Layout(*key)
        return layout


class Latest(Mapping[str, Reading]):
    """One device's latest reading per point (a read-only mapping of point -> Reading)."""

    __slots__ = ("device", "layout", "numbers", "odd", "times")

    def __init__(self, device: str, layout: Layout) -> None:
        self.device = device
        self.layout = layout
        size = len(layout.names)
        self.times = array("d", [_UNSET]) * size
        self.numbers = array("d", [_UNSET]) * size
        self.odd: dict[str, Reading] | None = None  # readings the arrays cannot hold

    def update(self, readings: Iterable[Reading]) -> None:
        """Take a poll's readings (or a subscription's changes): the newest per point wins."""
        slots, units, times, numbers = (
            self.layout.slots, self.layout.units, self.times, self.numbers
        )  # fmt: skip
        for reading in readings:
            device, point, ts, value, unit, quality, reason = reading  # faster than 6 lookups
            i = slots.get(point)
            if (
                i is not None
                and device == self.device
                and type(value) is float
                and value == value  # not NaN: NaN marks an empty slot
                and quality is GOOD
                and reason is None
                and unit == units[i]
            ):
                times[i] = ts
                numbers[i] = value
                if self.odd is not None:  # a point back to normal: its odd reading goes
                    self.odd.pop(point, None)
                continue
            if self.odd is None:
                self.odd = {}
            self.odd[point] = reading
            if i is not None:
                times[i] = _UNSET

    def __getitem__(self, point: str) -> Reading:
        odd = self.odd
        if odd is not None and point in odd:
            return odd[point]
        i = self.layout.slots[point]  # KeyError: a point never read
        ts = self.times[i]
        if ts != ts:
            raise KeyError(point)
        return Reading(self.device, point, ts, self.numbers[i], self.layout.units[i])

    def __iter__(self) -> Iterator[str]:
        times = self.times
        for i, name in enumerate(self.layout.names):
            if times[i] == times[i]:
                yield name
        if self.odd is not None:
            yield from self.odd

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"Latest({self.device!r}, {dict(self)!r})"


def remember(
    latest: dict[str, Latest], layouts: Layouts, device: str, readings: list[Reading]
) -> None:
    """`readings` into the device's entry of `latest`, made on its first poll."""
    entry = latest.get(device)
    if entry is None:
        if not readings:
            return
        entry = latest[device] = Latest(device, layouts.of(readings))
    entry.update(readings)
