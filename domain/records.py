"""What the pipeline hands to the buffer: closed intervals, events, counter state.

A `Commit` is everything one poll produced, written in one transaction, so a
crash leaves either all of it on disk or none of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EventRow:
    ts: float
    device: str | None
    kind: str
    severity: str
    message: str


@dataclass(frozen=True, slots=True)
class IntervalRow:
    device: str
    start: float
    length: float
    body: dict


@dataclass(slots=True)
class Commit:
    """Everything one poll produced, written in one transaction."""

    intervals: list[IntervalRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    counters: dict[str, dict] = field(default_factory=dict)
    samples: list[tuple] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.intervals or self.events or self.counters or self.samples)

    def then(self, later: Commit) -> Commit:
        """This work followed by `later`'s, as one: the later counter state wins."""
        return Commit(
            self.intervals + later.intervals,
            self.events + later.events,
            {**self.counters, **later.counters},
            self.samples + later.samples,
        )
