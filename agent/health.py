"""Device health: how each device's polls go, and the back-off of a dead one.

A device is `failing` after a poll that read no good value and `offline`
after OFFLINE_AFTER of them in a row: then it is polled less and less often
(up to every MAX_OFFLINE_WAIT), so a dead meter on a shared RS-485 bus stops
costing its neighbours a timeout every turn. Going offline and coming back
are events, committed with the work of the poll that saw them together with
the flag under OFFLINE_KEY, so a restart neither repeats nor loses them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

from tenacity import wait_exponential_jitter

from domain.reading import Quality, Reading
from domain.records import Commit, EventRow

log = logging.getLogger(__name__)
GOOD = Quality.GOOD

OFFLINE_AFTER = 3  # failed polls in a row before a device is polled at a backed-off pace
MAX_OFFLINE_WAIT = 300.0
OFFLINE_KEY = "#offline/"  # counters key: the device was offline at its last event


@dataclass(slots=True)
class DeviceStatus:
    polls: int = 0
    failed_polls: int = 0
    failing_since: int = 0  # consecutive failed polls
    values_read: int = 0  # good values, all polls together (metrics)
    last_poll: float | None = None
    last_good: float | None = None
    last_error: str | None = None
    points: int = 0
    good_points: int = 0
    skipped: int = 0  # turns missed because the previous poll was still running
    offline_until: float = 0.0  # Health.clock time before which a dead device is not polled

    def state(self, polled: bool) -> str:
        """The word `status` shows: not polled, offline, failing, ok or waiting."""
        if not polled:
            return "not polled"
        if self.failing_since >= OFFLINE_AFTER:
            return "offline"
        if self.failing_since:
            return "failing"
        return "ok" if self.last_good else "waiting"


@dataclass(slots=True)
class Health:
    """Every device's status, and the transitions waiting for their poll's commit.

    `clock` measures the back-off: monotonic, so a wall clock set back or forward
    never keeps a dead meter waiting; a test moving the wall clock instead of
    waiting (tests/fixtures/clock.py) passes time.time so the back-off moves with it.
    """

    devices: dict[str, DeviceStatus] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    _events: dict[str, list[EventRow]] = field(default_factory=dict)

    def add(self, name: str, states: dict[str, dict] | None = None) -> DeviceStatus:
        """A device to watch; one that was offline when the agent stopped starts offline,
        so its failed polls do not report it offline again and a good one reports it back."""
        offline = bool((states or {}).get(OFFLINE_KEY + name, {}).get("offline"))
        status = self.devices.setdefault(name, DeviceStatus())
        if offline:
            status.failing_since = OFFLINE_AFTER
        return status

    def forget(self, name: str) -> None:
        self.devices.pop(name, None)

    def resting(self, name: str) -> bool:
        """An offline device waits out its back-off instead of being polled this turn."""
        return self.devices[name].offline_until > self.clock()

    def note(self, name: str, readings: list[Reading], poll: float) -> None:
        """Count the poll; log a device's failures on transitions, not on every poll."""
        status = self.devices[name]
        status.polls += 1
        status.last_poll = time.time()
        status.points = len(readings)
        good, first_bad = 0, None
        for r in readings:  # one pass: this runs for every device on every poll
            if r.value is not None and r.quality is GOOD:
                good += 1
            elif first_bad is None:
                first_bad = r
        status.good_points = good
        status.values_read += good
        if first_bad is not None and not good:
            status.failed_polls += 1
            status.failing_since += 1
            status.last_error = first_bad.reason
            if status.failing_since == 1:
                log.warning("%s", status.last_error)
            if status.failing_since >= OFFLINE_AFTER:
                self._back_off(name, status, poll)
            return
        status.last_good = status.last_poll
        if status.failing_since:
            log.info("%s: recovered after %d failed polls", name, status.failing_since)
            if status.failing_since >= OFFLINE_AFTER:
                message = f"{name}: back online after {status.failing_since} failed polls"
                self.event(name, "device_online", "info", message)
            status.failing_since = 0
            status.offline_until = 0.0
        if first_bad is not None:
            status.last_error = first_bad.reason

    def _back_off(self, name: str, status: DeviceStatus, poll: float) -> None:
        """Polled less and less often (up to 5 min): only a device already offline gets
        here, at its backed-off pace, never per poll."""
        wait = wait_exponential_jitter(multiplier=poll, max=MAX_OFFLINE_WAIT, jitter=poll)
        attempt = SimpleNamespace(attempt_number=status.failing_since - OFFLINE_AFTER + 1)
        status.offline_until = self.clock() + wait(attempt)  # type: ignore[arg-type]
        if status.failing_since == OFFLINE_AFTER:
            log.warning(
                "%s: offline after %d failed polls; polled less often until it answers",
                name, OFFLINE_AFTER,
            )  # fmt: skip
            message = f"{name}: offline after {OFFLINE_AFTER} failed polls: {status.last_error}"
            self.event(name, "device_offline", "warning", message)

    def event(self, name: str, kind: str, severity: str, message: str) -> None:
        """A device's transition, committed with the work of the poll that saw it."""
        self._events.setdefault(name, []).append(
            EventRow(time.time(), name, kind, severity, message)
        )

    def take_events(self, name: str, work: Commit) -> None:
        """A device's transitions go first in its poll's commit, with the flag saying it is
        offline, in the same transaction: a restart neither repeats nor loses the event."""
        events = self._events.pop(name, None)
        if events is None:  # the usual poll: no transition
            return
        work.events[:0] = events
        for event in events:
            if event.kind in ("device_offline", "device_online"):
                work.counters[OFFLINE_KEY + name] = {"offline": event.kind == "device_offline"}

    def take_all_events(self) -> Commit:
        """Transitions seen by a poll that failed after seeing them (at a stop)."""
        work = Commit()
        for name in list(self._events):
            self.take_events(name, work)
        return work

    def report(self, name: str, polled: bool) -> dict[str, object]:
        """A device's figures as `edge-agent status` shows them (plain JSON)."""
        s = self.devices.get(name) or self.add(name)
        return {
            "state": s.state(polled),
            "polls": s.polls,
            "failed_polls": s.failed_polls,
            "skipped": s.skipped,
            "last_poll": s.last_poll,
            "last_good": s.last_good,
            "good_points": s.good_points,
            "points": s.points,
            "last_error": s.last_error,
        }

    def problems(self, polled: list[str]) -> list[str]:
        """For /healthz: every polled device failing is worth a look."""
        failing = [self.devices[name] for name in polled if self.devices[name].failing_since]
        if polled and len(failing) == len(polled):
            return [f"all {len(failing)} devices failing (first: {failing[0].last_error})"]
        return []
