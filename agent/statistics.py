"""Average, minimum and maximum of a point's readings per interval, for the destinations
that send them (an HJ 212 platform's Avg/Min/Max).

Only the points a destination asks for are kept, one running window per
device and interval length. A window closes when a reading falls past its
end; its figures wait there until the device's interval record for the same
span is made (energy closes one poll late) and travel inside that record, so
the buffer can send or resend any interval with them. Averages are of the
readings, as the platforms' minute and hour averages are.

The windows are saved with the counters whenever the device closes an interval,
and whole at a clean stop. A window restored after a crash lacks the readings
since its last save: it is marked partial (a fifth figure, 0), and a platform
is told so (HJ 212: flag B) rather than sent an average of part of the interval
as if it were all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from agent.intervals import interval_end, interval_start
from domain.reading import Reading

KEY = "#stats/"  # + device: its windows, persisted with the counter states
KEPT = 4  # closed windows kept per device and length, waiting for their record


@dataclass(slots=True)
class Window:
    start: float
    end: float
    figures: dict[str, list[float]] = field(default_factory=dict)  # point -> sum, n, min, max
    partial: bool = False  # restored after a crash: readings since its last save are lost

    def add(self, point: str, value: float) -> None:
        figure = self.figures.get(point)
        if figure is None:
            self.figures[point] = [value, 1, value, value]
            return
        figure[0] += value
        figure[1] += 1
        figure[2] = min(figure[2], value)
        figure[3] = max(figure[3], value)

    def summary(self) -> dict[str, list[float]]:
        """point -> [avg, min, max, readings], as the interval record carries it, and a
        fifth figure, 0, when the window is partial."""
        return {
            point: [round(total / n, 6), low, high, n] + ([0] if self.partial else [])
            for point, (total, n, low, high) in self.figures.items()
        }


@dataclass(slots=True)
class Windows:
    """One device's windows: the open one per length, and closed ones by start."""

    open: dict[float, Window] = field(default_factory=dict)
    closed: dict[float, dict[float, Window]] = field(default_factory=dict)

    def to_json(self, clean: bool) -> dict:
        """`clean`: saved at a stop, with every reading so far (else at an interval's close)."""

        def rows(windows: list[Window]) -> list:  # copies: the windows go on counting
            return [
                [w.start, w.end, {p: list(f) for p, f in w.figures.items()}, w.partial]
                for w in windows
            ]

        return {
            "open": {str(k): rows([w])[0] for k, w in self.open.items()},
            "closed": {str(k): rows(list(c.values())) for k, c in self.closed.items()},
            "clean": clean,
        }

    @classmethod
    def from_json(cls, data: dict) -> Windows:
        """A window once partial stays so (rows of three, from before the mark was saved,
        were whole); the open ones are partial too after a crash (they miss the readings
        since the save)."""
        crashed = not data.get("clean", True)

        def window(row: list, lost: bool = False) -> Window:
            return Window(row[0], row[1], row[2], lost or (len(row) > 3 and bool(row[3])))

        return cls(
            open={float(k): window(row, crashed) for k, row in data.get("open", {}).items()},
            closed={
                float(k): {row[0]: window(row) for row in rows}
                for k, rows in data.get("closed", {}).items()
            },
        )


class Statistics:
    """The windows of every watched point: `watched` is device -> point names."""

    def __init__(
        self,
        watched: dict[str, frozenset[str]],
        lengths: tuple[float, ...],
        tz: ZoneInfo,
        states: dict[str, dict],
    ) -> None:
        self.watched = watched
        self.lengths = lengths
        self.tz = tz
        self.windows = {
            device: Windows.from_json(states.get(KEY + device, {})) for device in watched
        }
        for windows in self.windows.values():  # lengths no longer configured
            windows.open = {k: w for k, w in windows.open.items() if k in lengths}
            windows.closed = {k: c for k, c in windows.closed.items() if k in lengths}

    def add(self, device: str, readings: list[Reading]) -> None:
        points = self.watched.get(device)
        if not points:
            return
        windows = self.windows[device]
        for reading in readings:
            if reading.point not in points or not reading.good or reading.value is None:
                continue
            for length in self.lengths:
                window = windows.open.get(length)
                if window is None or not window.start <= reading.ts < window.end:
                    window = self._roll(windows, length, reading.ts)
                window.add(reading.point, reading.value)

    def _roll(self, windows: Windows, length: float, ts: float) -> Window:
        old = windows.open.get(length)
        if old is not None and old.figures:
            closed = windows.closed.setdefault(length, {})
            closed[old.start] = old
            for start in sorted(closed)[:-KEPT]:
                del closed[start]
        start = interval_start(ts, length, self.tz)
        window = windows.open[length] = Window(start, interval_end(start, length, self.tz))
        return window

    def take(self, device: str, length: float, start: float) -> dict[str, list[float]] | None:
        """The figures of the window [start, ...) of `device`, once its record is made."""
        windows = self.windows.get(device)
        if windows is None:
            return None
        window = windows.closed.get(length, {}).pop(start, None)
        if window is None:  # the record closed before a reading past its end came
            current = windows.open.get(length)
            if current is not None and current.start == start:
                window = windows.open.pop(length)
        return window.summary() if window is not None and window.figures else None

    def to_json(self) -> dict[str, dict]:
        """Every device's windows, for a clean stop."""
        return {KEY + device: w.to_json(clean=True) for device, w in self.windows.items()}

    def saved(self, device: str) -> dict[str, dict]:
        """One device's windows as they stand, to save with its counter at an interval's
        close (a crash then loses only the readings since)."""
        windows = self.windows.get(device)
        return {} if windows is None else {KEY + device: windows.to_json(clean=False)}
