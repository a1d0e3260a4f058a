"""What every destination is to the agent: it delivers, it says how it stands, it closes.

A destination reads what is pending for it from the buffer through its own
outbox (buffer.AsyncOutbox) and acknowledges what the far end stored, so each
has its own cursor, its own back-off and its own status, and one that is down
never holds up another: the agent runs each on its own schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from buffer import AsyncStore


@dataclass(slots=True)
class DestinationStatus:
    """How a destination stands: `status`, /metrics and systemd's STATUS= line read it."""

    last_attempt: float | None = None
    last_success: float | None = None
    last_result: str = "not yet"
    batches_sent: int = 0
    records_sent: int = 0
    failures: int = 0
    last_run_seconds: float | None = None  # how long the last delivery run took

    def as_json(self) -> dict[str, object]:
        return {
            "last_attempt": self.last_attempt,
            "last_success": self.last_success,
            "last_result": self.last_result,
            "failures": self.failures,
            "batches_sent": self.batches_sent,
            "records_sent": self.records_sent,
        }


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sends: the gateway's tags and the factor set, the same for every destination."""

    gateway: dict[str, str]  # id, enterprise_id, region_code, industry_code, timezone
    factor_set: str


class Destination(Protocol):
    """One uplink. `deliver` never raises for a network or platform failure: what was not
    acknowledged stays pending for its next run."""

    name: str
    status: DestinationStatus

    @property
    def every(self) -> float:
        """Seconds between the starts of two delivery runs."""
        ...

    @property
    def allowance(self) -> float:
        """The longest a healthy run may take: the watchdog's patience with this job."""
        ...

    def attach(self, store: AsyncStore) -> None:
        """Its outbox in the buffer: a destination is made from its settings first (its
        files read, so a bad one stops the start before anything is opened), then given
        the buffer."""
        ...

    async def deliver(self, *, deadline: float | None = None, last: bool = False) -> int:
        """Send what is pending until done, a send fails, or `deadline` (monotonic) passes;
        `last`: the agent is stopping, one try per batch. Returns records acknowledged."""
        ...

    def stale(self) -> bool:
        """Whether the files it read when made (a token, certificates) may have changed:
        a reload then makes it afresh even if its settings did not change."""
        ...

    async def close(self) -> None: ...
