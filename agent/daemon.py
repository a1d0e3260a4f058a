"""The daemon's lifecycle: start everything, poll and sync on schedule, stop cleanly.

Signal handlers only set an event. A clean stop persists every counter's
state (so the interval in progress resumes after a restart and closes once,
whole), tries one last sync within a deadline, and closes the links.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import signal
import sqlite3
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from tenacity import wait_exponential_jitter

from agent import actions, systemd
from agent.pipeline import Pipeline
from buffer import AsyncStore, Commit, EventRow
from cloud_sync.tls import TlsSetupError, client_tls
from cloud_sync.uploader import Uploader
from config import ConfigInvalid, LoadedConfig, load_factor_set, province_for
from drivers import Driver, DriverUnavailable, make_driver
from drivers.base import Quality

log = logging.getLogger(__name__)
GOOD = Quality.GOOD

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # polls are aligned to whole periods since then
SYNCED_KEEP = 7 * 86400.0  # synced records stay this long for `status` and audits
STOP_DEADLINE = 10.0
OFFLINE_AFTER = 3  # failed polls in a row before a device is polled at a backed-off pace
MAX_OFFLINE_WAIT = 300.0
OFFLINE_KEY = "#offline/"  # counters key: the device was offline at its last event


@dataclass(slots=True)
class DeviceStatus:
    polls: int = 0
    failed_polls: int = 0
    failing_since: int = 0  # consecutive failed polls
    last_poll: float | None = None
    last_good: float | None = None
    last_error: str | None = None
    points: int = 0
    good_points: int = 0
    skipped: int = 0  # turns missed because the previous poll was still running
    offline_until: float = 0.0  # monotonic time before which a dead device is not polled


@dataclass(slots=True)
class Agent:
    loaded: LoadedConfig
    token: str | None
    store: AsyncStore = field(init=False)
    pipeline: Pipeline = field(init=False)
    uploader: Uploader = field(init=False)
    drivers: dict[str, Driver] = field(default_factory=dict)
    status: dict[str, DeviceStatus] = field(default_factory=dict)
    scheduler: AsyncIOScheduler = field(default_factory=AsyncIOScheduler)
    _inflight: set[asyncio.Task] = field(default_factory=set)
    _unwritten: dict[str, list[Commit]] = field(default_factory=dict)  # work the buffer refused
    _buffer_failing: bool = False
    _syncing: asyncio.Task | None = None
    _index: dict[str, int] = field(default_factory=dict)
    _polling: dict[str, asyncio.Task] = field(default_factory=dict)
    _events: dict[str, list[EventRow]] = field(default_factory=dict)  # device transitions
    _acting: set[asyncio.Task] = field(default_factory=set)  # rule actions under way
    _outputs: actions.Locks = field(default_factory=dict)

    async def start(self) -> None:
        config = self.loaded.config
        factors = load_factor_set(config.emissions.factor_set)
        province = config.emissions.grid or province_for(config.gateway.region_code)
        assert province is not None  # config checks refuse a region without a factor
        grid = factors.grid(province)
        log.info(
            "factor set %s: grid factor %s %g %s (%s)",
            factors.name, province, grid.value, grid.unit, grid.verification,
        )  # fmt: skip
        verify = _sync_tls(self.loaded)  # before anything is opened: a bad file stops here
        self.store = _open_buffer(self.loaded)
        states = await self.store.run(self.store.store.counters)
        self.pipeline = Pipeline(config, factors, province, states)
        self.uploader = Uploader(
            self.store,
            url=config.sync.url,
            token=self.token,
            gateway=config.gateway.model_dump(),
            factor_set=config.emissions.factor_set,
            max_batch=config.sync.max_batch,
            timeout=config.sync.timeout,
            budget=config.sync.every,
            verify=verify,
        )
        by_period: dict[float, list[str]] = {}
        for i, device in enumerate(config.devices):
            self._index[device.name] = i
            self.status[device.name] = DeviceStatus(failing_since=_was_offline(states, device.name))
            try:
                driver = make_driver(device)
            except DriverUnavailable as exc:
                log.error("%s; it will not be polled", exc)
                self.status[device.name].last_error = str(exc)
                continue
            self.drivers[device.name] = driver
            describe = getattr(driver, "describe", None)
            log.info("%s, every %gs", describe() if describe else device.name, device.poll)
            by_period.setdefault(device.poll, []).append(device.name)
        # one job per polling period, not per device: 200 meters at 1 s cost the
        # scheduler one wake-up a second; each device still polls in its own task
        for period, names in by_period.items():
            self.scheduler.add_job(
                self._poll_all,
                IntervalTrigger(seconds=period, start_date=_EPOCH),
                args=[names],
                id=f"poll every {period:g}s",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(period)),
            )
        self.scheduler.add_job(
            self._sync,
            IntervalTrigger(seconds=config.sync.every),
            id="sync",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_job(self._housekeeping, IntervalTrigger(minutes=10), id="housekeeping")
        self.scheduler.start()
        log.info(
            "started: %d devices polled, buffer %s, sync to %s every %gs",
            len(self.drivers),
            config.buffer.path,
            config.sync.url,
            config.sync.every,
        )

    async def stop(self) -> None:
        """Stop polling, persist counter state, one last sync, close everything."""
        self.scheduler.pause()  # no new jobs; running polls finish rather than being cut
        if self._syncing is not None:  # a sync waiting out a backoff holds nothing: cut it
            self._syncing.cancel()
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=STOP_DEADLINE / 2)
        self.scheduler.shutdown(wait=False)
        unwritten = [*itertools.chain(*self._unwritten.values()), self.pipeline.flush()]
        self._unwritten.clear()
        try:
            await self.store.commit(functools.reduce(Commit.then, unwritten))
        except Exception as exc:  # the last commit stays; a restart recomputes from it
            log.error("stop: counter state not written (%s)", exc)
        self.uploader.attempts = 1  # one try per batch now; the backlog waits for the next start
        try:
            await asyncio.wait_for(self.uploader.sync(), timeout=STOP_DEADLINE / 2)
        except TimeoutError:
            log.warning(
                "stop: last sync cut after %gs; the backlog stays buffered", STOP_DEADLINE / 2
            )
        await self.uploader.close()
        for driver in self.drivers.values():
            await driver.close()
        self.store.close()
        log.info("stopped")

    # --- jobs ---------------------------------------------------------------------

    async def _poll_all(self, names: list[str]) -> None:
        """Start this turn's polls; a device whose last poll still runs skips a turn."""
        for name in names:
            if name in self._polling:
                status = self.status[name]
                status.skipped += 1
                if status.skipped == 1:
                    log.warning("%s: a poll takes longer than its period; turns are skipped", name)
                continue
            task = asyncio.create_task(self._poll(name), name=f"poll {name}")
            self._polling[name] = task
            task.add_done_callback(lambda _, name=name: self._polling.pop(name, None))

    async def _poll(self, name: str) -> None:
        if self.status[name].offline_until > time.monotonic():
            return  # an offline device is polled at its backed-off pace, not every turn
        with self._tracked():
            try:
                driver = self.drivers[name]
                # a subscription's counter changes since the last poll, then the poll itself
                drain = getattr(driver, "drain_changes", None)
                changes = drain() if drain else []
                readings = await driver.read()
                self._note(name, readings)
                readings = changes + readings
                work = self.pipeline.ingest(name, readings)
                self._add_device_events(name, work)
                self._start_actions()
            except Exception:  # a bug must not stop this device's polls forever
                log.exception("%s: poll failed", name)
                return
            await self._commit(name, work)

    # --- events and rule actions (agent/rules.py, agent/actions.py) -----------------

    def _device_event(self, name: str, kind: str, severity: str, message: str) -> None:
        """A device's transition, committed with the work of the poll that saw it."""
        self._events.setdefault(name, []).append(
            EventRow(time.time(), name, kind, severity, message)
        )

    def _add_device_events(self, name: str, work: Commit) -> None:
        """A device's transitions go first in its poll's commit, with the flag saying it is
        offline, in the same transaction: a restart neither repeats nor loses the event."""
        events = self._events.pop(name, [])
        work.events[:0] = events
        for event in events:
            if event.kind in ("device_offline", "device_online"):
                work.counters[OFFLINE_KEY + name] = {"offline": event.kind == "device_offline"}

    def _start_actions(self) -> None:
        """Rule actions run beside the polls: a slow or dead output never delays a meter."""
        for action in self.pipeline.take_actions():
            task = asyncio.create_task(self._act(action), name=f"action {action.rule}")
            self._acting.add(task)
            task.add_done_callback(self._acting.discard)

    async def _act(self, action: actions.Action) -> None:
        with self._tracked():
            failed = await actions.run(action, self.drivers.get(action.device), self._outputs)
            if failed is not None:
                try:
                    await self.store.add_events([failed])
                except Exception as exc:  # the failure is logged already; never fatal
                    log.error("action_failed event not buffered (%s)", exc)

    async def _commit(self, name: str, work: Commit) -> None:
        """Write a poll's work; if the buffer fails, keep it and write it with the next.

        The pipeline's state has already moved on, so dropping the work would
        lose its intervals for good; kept, they are written in order later.
        Raw samples are not kept: they must never hold up intervals.
        """
        held = self._unwritten.pop(name, [])
        if not work and not held:
            return
        merged = functools.reduce(Commit.then, [*held, work])
        try:
            await self.store.commit(merged)
        except Exception as exc:
            merged.samples = []
            self._unwritten[name] = [merged]  # one item: a long outage costs O(n) per poll
            if not self._buffer_failing:
                log.error("buffer write failed (%s); work kept in memory and retried", exc)
            self._buffer_failing = True
        else:
            if self._buffer_failing and not self._unwritten:
                log.info("buffer writes recovered")
                self._buffer_failing = False

    async def _sync(self) -> None:
        with self._tracked():
            self._syncing = asyncio.current_task()
            try:
                deadline = time.monotonic() + self.loaded.config.sync.every
                await self.uploader.sync(deadline=deadline)
            except asyncio.CancelledError:  # stopping: the batch stays pending
                return
            except Exception:
                log.exception("sync failed")
            finally:
                self._syncing = None
            systemd.notify(f"STATUS={self.summary()}")

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        """Register the running job so a stop can let it finish."""
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            yield
        finally:
            self._inflight.discard(task)

    async def _housekeeping(self) -> None:
        config = self.loaded.config
        now = time.time()
        raw_before = now - config.buffer.raw_retention
        removed = await self.store.prune(raw_before=raw_before, synced_before=now - SYNCED_KEEP)
        if removed:
            log.info("housekeeping: %d old records removed", removed)

    def _note(self, name: str, readings: list) -> None:
        """Count the poll; log a device's failures on transitions, not on every poll."""
        status = self.status[name]
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
        if first_bad is not None and not good:
            status.failed_polls += 1
            status.failing_since += 1
            status.last_error = first_bad.reason
            if status.failing_since == 1:
                log.warning("%s", status.last_error)
            if status.failing_since >= OFFLINE_AFTER:
                self._back_off(name, status)
            return
        status.last_good = status.last_poll
        if status.failing_since:
            log.info("%s: recovered after %d failed polls", name, status.failing_since)
            if status.failing_since >= OFFLINE_AFTER:
                message = f"{name}: back online after {status.failing_since} failed polls"
                self._device_event(name, "device_online", "info", message)
            status.failing_since = 0
            status.offline_until = 0.0
        if first_bad is not None:
            status.last_error = first_bad.reason

    def _back_off(self, name: str, status: DeviceStatus) -> None:
        """A device that keeps failing is polled less and less often (up to 5 min), so a
        dead meter on a shared bus stops costing its neighbours a timeout every turn."""
        poll = self.loaded.config.devices[self._index[name]].poll
        wait = wait_exponential_jitter(multiplier=poll, max=MAX_OFFLINE_WAIT, jitter=poll)
        attempt = SimpleNamespace(attempt_number=status.failing_since - OFFLINE_AFTER + 1)
        status.offline_until = time.monotonic() + wait(attempt)  # type: ignore[arg-type]
        if status.failing_since == OFFLINE_AFTER:
            log.warning(
                "%s: offline after %d failed polls; polled less often until it answers",
                name, OFFLINE_AFTER,
            )  # fmt: skip
            message = f"{name}: offline after {OFFLINE_AFTER} failed polls: {status.last_error}"
            self._device_event(name, "device_offline", "warning", message)

    def summary(self) -> str:
        sync = self.uploader.status
        last = (
            datetime.fromtimestamp(sync.last_success).strftime("%H:%M")
            if sync.last_success
            else "never"
        )
        return f"polling {len(self.drivers)} devices, last sync {last} ({sync.last_result})"


def _open_buffer(loaded: LoadedConfig) -> AsyncStore:
    """The buffer, capped at buffer.max_size; a damaged one is replaced (buffer._recover)."""
    buffer = loaded.config.buffer
    try:
        return AsyncStore(
            Path(buffer.path), max_size=buffer.max_size, drop_synced=buffer.drop_synced
        )
    except (OSError, sqlite3.Error) as exc:
        problem = loaded.problem_at(
            ("buffer", "path"), f"cannot open the buffer at {buffer.path}: {exc}"
        )
        raise ConfigInvalid([problem]) from exc


def _sync_tls(loaded: LoadedConfig) -> ssl.SSLContext | bool:
    """TLS settings of the uplink; a file that cannot be used is a config error at its field."""
    sync = loaded.config.sync
    try:
        return client_tls(sync.ca_file, sync.client_cert, sync.client_key)
    except TlsSetupError as exc:
        raise ConfigInvalid([loaded.problem_at(("sync", exc.field), str(exc))]) from exc


def _was_offline(states: dict[str, dict], name: str) -> int:
    """Failed polls to start from: a device offline when the agent stopped starts offline,
    so its failed polls do not report it offline again and a good one reports it back."""
    return OFFLINE_AFTER if states.get(OFFLINE_KEY + name, {}).get("offline") else 0


async def run(loaded: LoadedConfig, token: str | None, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set). Returns the exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP would end the process without a flush; reloading comes with its own issue
    loop.add_signal_handler(
        signal.SIGHUP, log.warning, "SIGHUP: reloading is not supported yet; restart to apply"
    )
    agent = Agent(loaded, token)
    await agent.start()
    systemd.notify("READY=1", f"STATUS={agent.summary()}")
    try:
        await stop.wait()
    finally:
        systemd.notify("STOPPING=1")
        await agent.stop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return 0
