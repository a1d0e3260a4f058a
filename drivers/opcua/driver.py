"""OPC UA driver: one asyncua session per device, kept up by a background task.

`mode: read` sends one Read service call for all of a device's nodes per poll.
`mode: subscribe` keeps a subscription: a poll returns the latest values, and
`drain_changes()` returns every change of the counter points since the last
call, in order, so no step of a counter falls between two polls. A change is
stamped with the time the server took the value, on the agent's clock (see
`drivers.opcua._subscription`), not with the time its publish arrived.

The session lives in a supervising task: it connects (tenacity, exponential
backoff with jitter), watches the link and the subscription, and starts over
when either dies. Polls never wait for it, except the very first (and so a
probe), which waits for the first connection attempt to end, as long as that
may take (connect, and in subscribe mode the subscription). asyncua
exceptions are translated at `drivers.opcua._link`, the one seam; `read()`
never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from domain.errors import DecodeError, Disconnected, EdgeAgentError, PermanentError, TransientError
from domain.reading import Quality, Reading
from drivers.opcua import _link
from drivers.opcua._link import parse_node
from drivers.opcua._subscription import Feed
from drivers.opcua.browse import browse, table
from drivers.opcua.codec import decode
from drivers.opcua.plan import plan
from drivers.opcua.settings import OpcUaDevice, OpcUaPoint, OpcUaWrite

log = logging.getLogger(__name__)

MAX_CHANGES = 100_000  # counter changes kept for drain_changes(); the oldest go first
WATCH_EVERY = 1.0  # seconds between looks at the link (local state only, no traffic)
SUBSCRIBE_STEPS = 4  # requests to set up a subscription: create it, two item groups, one Read


class OpcUaDriver:
    """One OPC UA server's nodes as the points of one device."""

    def __init__(self, device: OpcUaDevice, *, backoff_max: float = 30.0) -> None:
        self.device = device.name
        self._model = device
        self._link = device.opcua
        self._points = list(device.points)
        self._endpoint = re.sub(r"//[^/@]*@", "//", self._link.endpoint)  # no credentials
        self._where = f"{device.name} {self._endpoint}"
        self._nodes: dict[str, ua.NodeId] = {}
        self._invalid: dict[str, str] = {}
        for point in self._points:
            try:
                self._nodes[point.name] = parse_node(point.node)
            except DecodeError as exc:
                self._invalid[point.name] = f"{self.device} {point.node}: {exc}"
        self._by_name = {p.name: p for p in self._points}
        self.requests = plan(self._points, self._link.mode)  # what `probe --plan` lists
        self._targets: dict[ua.NodeId, list[OpcUaPoint]] = {}
        for point in self._points:
            if point.name in self._nodes:
                self._targets.setdefault(self._nodes[point.name], []).append(point)
        self.publishing = self._link.publishing_interval or device.poll
        self.sampling = self._link.sampling_interval or min(1.0, self.publishing)
        steps = SUBSCRIBE_STEPS if self._link.mode == "subscribe" else 0
        # the first poll waits for the first attempt: connect, subscribe, and a timeout to spare
        self._first_wait = (
            _link.connect_budget(self._link.timeout) + (steps + 1) * self._link.timeout
        )
        self._backoff_max = backoff_max
        self._quick = wait_exponential_jitter(multiplier=0.5, max=backoff_max, jitter=1.0)
        self._client: Client | None = None
        self._feed: Feed | None = None
        self._latest: dict[str, Reading] = {}
        self._changes: deque[Reading] = deque(maxlen=MAX_CHANGES)
        self._stamped: dict[str, float] = {}  # newest timestamp given out per counter point
        self._dropped = 0
        self._failure: str | None = None  # why there is no session, while there is none
        self._failed_attempts = 0
        self._down_since: float | None = None
        self._settled = asyncio.Event()  # the first connection attempt has ended
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def describe(self) -> str:
        return (
            f"{self.device}: {len(self._points)} nodes on {self._endpoint}, "
            f"{self._link.mode}, {self._link.security}"
        )

    async def read(self) -> list[Reading]:
        """Every point once: read now (read mode) or the latest notified (subscribe mode)."""
        await self._first_attempt()
        client = self._client
        if client is None:
            return self._all_bad(self._failure or f"{self._where}: connecting")
        if self._link.mode == "subscribe":
            return self._latest_readings()
        return await self._read_all(client)

    def drain_changes(self) -> list[Reading]:
        """Every change of a counter point since the last call, oldest first (subscribe mode).

        Timestamps are when the server took each value, on the agent's clock
        (the agent's time of arrival if the server gave none), strictly increasing
        per point, after every timestamp given out before for the point and never
        later than the next `read()`; empty in read mode.
        """
        changes = list(self._changes)
        self._changes.clear()
        return changes

    async def write(self, write: OpcUaWrite, value: bool | int | float) -> None:
        """Write `write.node` in its own data type: a rule's PLC flag or stack light.

        Raises domain.errors like a read: no session or a lost link is transient
        (the caller retries), a missing or read-only node is a DeviceRejected.
        """
        node = write.node
        where = f"{self._where} write {node}"
        try:
            target = parse_node(node)
        except DecodeError as exc:
            raise PermanentError(f"{where}: {exc}") from exc
        await self._first_attempt()
        client = self._client
        if client is None:
            reason = (self._failure or "connecting").removeprefix(f"{self._where}: ")
            raise Disconnected(f"{where}: {reason}")
        try:
            kind = await _link.write_node(client, target, value, where, self._link.timeout)
        except TransientError as exc:
            self._lose(client, str(exc))
            raise
        log.debug("%s: wrote %s as %s", where, value, kind.name)

    async def browse(self, node: str | None) -> str:
        """The server's variables under `node` (default: Objects) as a table, on a session
        of its own (`probe --browse`); raises domain.errors when the server refuses."""
        variables = await browse(self._model, node)
        return table(variables) if variables else f"{self.device}: no variables under {node}"

    async def _first_attempt(self) -> None:
        """Start the session task; the first call waits for its first attempt to end."""
        self._start()
        if not self._settled.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._first_wait):
                    await self._settled.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        client, feed = self._client, self._feed
        self._client, self._feed = None, None
        if feed is not None:
            await feed.close(self._link.timeout, self._where)
        if client is not None:
            await _link.close_client(client, self._link.timeout)

    # --- polls ----------------------------------------------------------------------

    async def _read_all(self, client: Client) -> list[Reading]:
        names = list(self._nodes)
        values: list[ua.DataValue] = []
        if names:
            nodes = [client.get_node(self._nodes[name]) for name in names]
            try:
                values = await _link.call(
                    self._where, client.read_attributes(nodes), self._link.timeout
                )
            except TransientError as exc:
                self._lose(client, str(exc))
                return self._all_bad(str(exc))
            except EdgeAgentError as exc:
                return self._all_bad(str(exc))
            if len(values) != len(names):
                reason = f"{self._where}: {len(values)} values for {len(names)} nodes"
                return self._all_bad(reason)
        answered = dict(zip(names, values, strict=True))
        now = time.time()
        return [self._decoded(p, answered.get(p.name), now) for p in self._points]

    def _latest_readings(self) -> list[Reading]:
        feed = self._feed
        if feed is None:
            return self._all_bad(f"{self._where}: re-creating the subscription")
        silent = feed.silent_for()
        if feed.dead or silent > feed.limit:
            why = feed.dead or f"the subscription sent nothing for {silent:.0f}s"
            return self._all_bad(f"{self._where}: {why}; re-creating it")
        now = time.time()
        heard = feed.heard_at or 0.0
        readings = []
        for point in self._points:
            latest = self._latest.get(point.name)
            if point.name in self._invalid or latest is None:
                reason = self._invalid.get(point.name, f"{self._where}: no value notified yet")
                readings.append(self._bad(point, reason, now))
                continue
            ts = now
            if point.kind == "counter" and latest.good:
                # the value as of the server's last publish: a change it has not sent yet
                # must not fall before this reading
                ts = max(latest.ts, heard, self._stamped.get(point.name, 0.0))
                self._stamped[point.name] = ts
            readings.append(
                Reading(self.device, point.name, ts, latest.value, point.unit,
                        latest.quality, latest.reason)
            )  # fmt: skip
        return readings

    def _decoded(self, point: OpcUaPoint, data: ua.DataValue | None, now: float) -> Reading:
        if data is None:
            return self._bad(point, self._invalid[point.name], now)
        try:
            return Reading(self.device, point.name, now, decode(point, data), point.unit)
        except DecodeError as exc:
            return self._bad(point, f"{self.device} {point.node}: {exc}", now)

    def _bad(self, point: OpcUaPoint, reason: str, now: float) -> Reading:
        return Reading(self.device, point.name, now, None, point.unit, Quality.BAD, reason)

    def _all_bad(self, reason: str) -> list[Reading]:
        now = time.time()
        return [self._bad(p, self._invalid.get(p.name, reason), now) for p in self._points]

    # --- notifications (subscribe mode) ------------------------------------------------

    def _on_value(self, point: OpcUaPoint, data: ua.DataValue, taken: float | None) -> None:
        """A notified value; `taken` is when the server took it, on the agent's clock."""
        now = time.time()
        reading = self._decoded(point, data, now)
        self._latest[point.name] = reading
        if point.kind != "counter":
            return
        at = now if taken is None else min(taken, now)
        ts = max(at, self._stamped.get(point.name, 0.0) + 1e-6)
        self._stamped[point.name] = ts
        if len(self._changes) == self._changes.maxlen:
            self._dropped += 1
            if self._dropped == 1:
                log.warning(
                    "%s: %d counter changes not drained; dropping the oldest (the counter "
                    "still holds the energy)", self.device, MAX_CHANGES,
                )  # fmt: skip
        self._changes.append(
            Reading(self.device, point.name, ts, reading.value, point.unit,
                    reading.quality, reading.reason)
        )  # fmt: skip

    def _on_refused(self, point: OpcUaPoint, why: str) -> None:
        self._latest[point.name] = self._bad(point, f"{self.device} {point.node}: {why}", 0.0)

    def _on_dead(self, why: str) -> None:
        """The server ended the subscription (`why` is kept on the feed): wake the watch,
        which asks the server whether it is still there before re-creating it."""
        self._lost.set()

    # --- the session, kept up in the background ------------------------------------------

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._supervise(), name=f"opcua {self.device}")
            self._task.add_done_callback(self._supervisor_ended)

    def _supervisor_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: the OPC UA session task stopped: %r", self.device, task.exception())

    async def _supervise(self) -> None:
        while True:
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(EdgeAgentError),
                wait=self._backoff,
                before_sleep=self._attempt_failed,
                reraise=True,
            )
            client: Client = await retrying(self._open)
            await self._watch(client)
            await _link.close_client(client, self._link.timeout)

    def _backoff(self, state: RetryCallState) -> float:
        """Exponential with jitter; a refusal (password, certificate) waits the longest:
        it is fixed on the server or in the config, not by asking again soon."""
        quick = self._quick(state)
        failure = state.outcome.exception() if state.outcome else None
        return max(quick, self._backoff_max) if isinstance(failure, PermanentError) else quick

    async def _open(self) -> Client:
        client = await _link.open_client(self._link, self._where)
        try:
            if self._link.mode == "subscribe":
                await self._subscribe(client)
        except BaseException:
            if self._feed is not None:
                self._feed.closed = True
            self._feed = None
            await _link.close_client(client, self._link.timeout)
            raise
        self._client, self._failure = client, None
        self._lost.clear()
        self._settled.set()
        if self._down_since is not None:
            log.info(
                "%s: connected again after %d failed attempts (%.0fs)",
                self._where, self._failed_attempts, time.monotonic() - self._down_since,
            )  # fmt: skip
        self._down_since, self._failed_attempts = None, 0
        return client

    async def _subscribe(self, client: Client) -> None:
        """A new subscription, then one Read so the first poll has every value at once."""
        self._latest.clear()
        self._feed = await Feed.open(
            client,
            self._targets,
            publishing=self.publishing,
            sampling=self.sampling,
            timeout=self._link.timeout,
            where=self._where,
            on_value=self._on_value,
            on_refused=self._on_refused,
            on_dead=self._on_dead,
        )
        names = [n for n in self._nodes if n not in self._latest]
        if names:
            nodes = [client.get_node(self._nodes[n]) for n in names]
            values = await _link.call(
                self._where, client.read_attributes(nodes), self._link.timeout
            )
            now = time.time()
            for name, data in zip(names, values, strict=False):
                if name not in self._latest:  # a notification may have come first
                    self._latest[name] = self._decoded(self._by_name[name], data, now)

    def _attempt_failed(self, state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        self._failure = str(failure)
        self._failed_attempts += 1
        self._settled.set()
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("%s; retrying in the background", failure)

    async def _watch(self, client: Client) -> None:
        """Return once the link is lost; re-create a subscription that fell silent."""
        while True:
            feed = self._feed
            period = min(WATCH_EVERY, feed.limit / 4) if feed else WATCH_EVERY
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(period):
                    await self._lost.wait()
            if self._client is not client:  # a poll found the link dead
                return
            if client.state is not UaClientState.CONNECTED:
                self._lose(client, f"{self._where}: connection lost")
                return
            feed = self._feed
            if feed is None or not (feed.dead or feed.silent_for() > feed.limit):
                self._lost.clear()
                continue
            why = feed.dead or f"the subscription sent nothing for {feed.silent_for():.0f}s"
            try:
                await _link.call(
                    self._where, client.nodes.server_state.read_value(), self._link.timeout
                )
                log.warning("%s: %s while the server answers reads; re-creating it",
                            self._where, why)  # fmt: skip
                self._feed = None
                await feed.close(self._link.timeout, self._where)
                await self._subscribe(client)
                self._lost.clear()
            except EdgeAgentError as exc:
                self._lose(client, str(exc))
                return

    def _lose(self, client: Client, reason: str) -> None:
        """The link is gone: polls answer bad at once, the supervisor reconnects."""
        if self._client is not client:
            return
        self._client, self._failure = None, reason
        if self._feed is not None:
            self._feed.closed = True
        self._feed = None
        self._latest.clear()
        self._lost.set()
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("%s; reconnecting in the background", reason)
