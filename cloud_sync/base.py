"""What every destination is to the agent: it delivers, it says how it stands, it closes.

A destination reads what is pending for it from the buffer through its own
outbox (buffer.AsyncOutbox) and acknowledges what the far end stored, so each
has its own cursor, its own back-off and its own status, and one that is down
never holds up another: the agent runs each on its own schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from buffer import AsyncStore
    from domain.reading import Reading


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
    # a destination on a standing connection (HJ 212) says how it stands on it
    connected: bool | None = None
    resends: int = 0  # frames sent again for want of an answer
    refused: int = 0  # platform commands refused or malformed

    def as_json(self) -> dict[str, object]:
        found: dict[str, object] = {
            "last_attempt": self.last_attempt,
            "last_success": self.last_success,
            "last_result": self.last_result,
            "failures": self.failures,
            "batches_sent": self.batches_sent,
            "records_sent": self.records_sent,
        }
        if self.connected is not None:
            found |= {"connected": self.connected, "resends": self.resends,
                      "refused": self.refused}  # fmt: skip
        return found


@dataclass(frozen=True, slots=True)
class Metered:
    """What a destination that sends per-device figures knows of a device."""

    points: frozenset[str]
    energy: bool  # whether it has interval records at all


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sends: the gateway's tags and the factor set, the same for every destination;
    and the plant's devices and interval lengths, for a kind that sends per-device figures
    (cloud_sync/hj212)."""

    gateway: dict[str, str]  # id, enterprise_id, region_code, industry_code, timezone
    factor_set: str
    devices: Mapping[str, Metered] = field(default_factory=dict)
    intervals: tuple[float, ...] = ()  # emissions.intervals, shortest first


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


@runtime_checkable
class SendsLive(Protocol):
    """A destination that is also sent the latest readings on a schedule of its own (HJ 212
    real-time data), which the platform may change: the agent runs `send_live` every
    `live_every` seconds and reschedules when `on_live_every` is called."""

    @property
    def live_every(self) -> float | None: ...

    def on_live_every(self, changed: Callable[[], None]) -> None: ...

    async def send_live(self, latest: Mapping[str, Mapping[str, Reading]]) -> None: ...


@runtime_checkable
class Pings(Protocol):
    """A destination a technician can try by hand (`edge-agent ping NAME`): one harmless
    exchange with the platform, each step said through `say`; True if it answered."""

    async def ping(self, say: Callable[[str], None]) -> bool: ...
