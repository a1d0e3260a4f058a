"""What every driver produces: one decoded point value at one instant.

A driver never raises out of `read()`: a meter that times out or answers
garbage yields readings with a bad quality and the reason, so one faulty meter
can never stop the poll loop.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Quality(StrEnum):
    GOOD = "good"
    BAD = "bad"


class Reading(NamedTuple):
    """One decoded point value at one instant (`ts`: seconds since the epoch).

    A tuple, not a frozen dataclass: thousands are made per second on the poll
    path, and a tuple costs a fifth as much to build.
    """

    device: str
    point: str
    ts: float
    value: float | None
    unit: str
    quality: Quality = Quality.GOOD
    reason: str | None = None

    @property
    def good(self) -> bool:
        return self.quality is Quality.GOOD and self.value is not None
