"""The daemon's lifecycle: start everything, poll and sync on schedule, stop cleanly.

Signal handlers only set an event. A clean stop persists every counter's
state (so the interval in progress resumes after a restart and closes once,
whole), tries one last sync within a deadline, and closes the links.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import sqlite3
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from tenacity import wait_exponential_jitter

from agent import actions, logs, rules, systemd
from agent.lifecycle import SNAPSHOT_EVERY, Progress, snapshot_path, watchdog, write_snapshot
from agent.pipeline import Pipeline
from agent.rules import RULE_KEY, RuleState
from buffer import AsyncStore
from cloud_sync.tls import TlsSetupError, client_tls
from cloud_sync.uploader import Uploader
from config import LoadedConfig, load_config, load_factor_set, province_for
from config.base import DeviceBase
from config.models import Config
from domain.errors import ConfigInvalid, DriverUnavailable
from domain.reading import Quality
from domain.records import Commit, EventRow
from drivers.base import Driver, Subscribes
from drivers.registry import make_driver

log = logging.getLogger(__name__)
GOOD = Quality.GOOD

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # polls are aligned to whole periods since then
SYNCED_KEEP = 7 * 86400.0  # synced records stay this long for `status` and audits
STOP_DEADLINE = 10.0
OFFLINE_AFTER = 3  # failed polls in a row before a device is polled at a backed-off pace
MAX_OFFLINE_WAIT = 300.0
OFFLINE_KEY = "#offline/"  # counters key: the device was offline at its last event
FIRST_REPORT = 5.0  # s after start: the first polls are done, `status` has something to show


def derive(config: Config, states: dict[str, dict]) -> Pipeline:
    """Everything computed from the config, built in one place for start and reload.

    `states` are the counters' saved states (device/counter -> JSON); a reload
    passes what the running pipeline would persist (counters of the devices that
    remain, rule states, tallies), so a reload neither re-raises nor loses them.
    """
    factors = load_factor_set(config.emissions.factor_set)
    province = config.emissions.grid or province_for(config.gateway.region_code)
    assert province is not None  # config checks refuse a region without a factor
    grid = factors.grid(province)
    log.info(
        "factor set %s: grid factor %s %g %s (%s)",
        factors.name, province, grid.value, grid.unit, grid.verification,
    )  # fmt: skip
    return Pipeline(config, factors, province, states)


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
    _unwritten: dict[str, Commit] = field(default_factory=dict)  # work the buffer refused
    _buffer_failing: str | None = None  # why the buffer refused the last write
    _syncing: asyncio.Task | None = None
    _polling: dict[str, asyncio.Task] = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)  # for the watchdog and /healthz
    backlog: dict | None = None  # refreshed every SNAPSHOT_EVERY s, not per poll
    records_dropped: int = 0  # raw samples given up because the buffer failed
    last_sync_seconds: float | None = None  # how long the last sync run took
    _events: dict[str, list[EventRow]] = field(default_factory=dict)  # device transitions
    _acting: set[asyncio.Task] = field(default_factory=set)  # rule actions under way
    _outputs: actions.Locks = field(default_factory=dict)

    async def start(self) -> None:
        config = self.loaded.config
        verify = _sync_tls(self.loaded)  # before anything is opened: a bad file stops here
        self.store = _open_buffer(self.loaded)
        states = await self.store.run(self.store.store.counters)
        self.pipeline = derive(config, states)
        self.uploader = self._uploader(config, self.token, verify)
        for device in config.devices:
            self.status[device.name] = DeviceStatus(failing_since=_was_offline(states, device.name))
            self._attach(device)
        self.scheduler.add_listener(
            self._job_ran, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
        )
        self._schedule(config)
        self.scheduler.add_job(self._housekeeping, IntervalTrigger(minutes=10), id="housekeeping")
        first_report = datetime.now(UTC) + timedelta(seconds=FIRST_REPORT)
        self.scheduler.add_job(
            self._report,
            IntervalTrigger(seconds=SNAPSHOT_EVERY),
            id="report",
            coalesce=True,
            next_run_time=first_report,
        )
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
        deadline = time.monotonic() + STOP_DEADLINE / 2
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=STOP_DEADLINE / 2)
        if self._acting:  # asked for by the last polls: the outputs get their writes
            await asyncio.wait(list(self._acting), timeout=max(0.1, deadline - time.monotonic()))
        self.scheduler.shutdown(wait=False)
        events = Commit()  # transitions seen by a poll that failed after seeing them
        for name in list(self._events):
            self._add_device_events(name, events)
        unwritten = [*self._unwritten.values(), events, self.pipeline.flush()]
        self._unwritten.clear()
        try:
            await self.store.commit(functools.reduce(Commit.then, unwritten))
        except Exception as exc:  # the last commit stays; a restart recomputes from it
            log.error("stop: counter state not written (%s)", exc)
            self._buffer_failing = str(exc)
        else:  # what was held is in: the status file written at stop must not say otherwise
            self._buffer_failing = None
        self.uploader.attempts = 1  # one try per batch now; the backlog waits for the next start
        try:
            await asyncio.wait_for(self.uploader.sync(), timeout=STOP_DEADLINE / 2)
        except TimeoutError:
            log.warning(
                "stop: last sync cut after %gs; the backlog stays buffered", STOP_DEADLINE / 2
            )
        except Exception as exc:  # the drivers and the buffer must still be closed
            log.error("stop: last sync failed (%s); the backlog stays buffered", exc)
        await self.uploader.close()
        for task in self._acting:  # past the deadline: a raised rule writes again at start
            task.cancel()
        for driver in self.drivers.values():
            await driver.close()
        with contextlib.suppress(Exception):  # the status file written at stop shows it
            self.backlog = await self.store.backlog()
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
                changes = driver.drain_changes() if isinstance(driver, Subscribes) else []
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
        events = self._events.pop(name, None)
        if events is None:  # the usual poll: no transition
            return
        work.events[:0] = events
        for event in events:
            if event.kind in ("device_offline", "device_online"):
                work.counters[OFFLINE_KEY + name] = {"offline": event.kind == "device_offline"}

    def _start_actions(self) -> None:
        """Rule actions run beside the polls: a slow or dead output never delays a meter."""
        if not self.pipeline.actions:  # the usual poll asks for none
            return
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
        held = self._unwritten.pop(name, None)
        if not work and not held:
            return
        merged = held.then(work) if held else work
        try:
            await self.store.commit(merged)
        except Exception as exc:
            self.records_dropped += len(merged.samples)
            merged.samples = []
            self._unwritten[name] = merged
            if not self._buffer_failing:
                log.error("buffer write failed (%s); work kept in memory and retried", exc)
            self._buffer_failing = str(exc)
        else:
            if self._buffer_failing and not self._unwritten:
                log.info("buffer writes recovered")
                self._buffer_failing = None

    async def _sync(self) -> None:
        with self._tracked():
            self._syncing = asyncio.current_task()
            try:
                started = time.monotonic()
                deadline = started + self.loaded.config.sync.every
                await self.uploader.sync(deadline=deadline)
                self.last_sync_seconds = time.monotonic() - started
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
        status.values_read += good
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
        # not per poll: only a device already offline gets here, at its backed-off pace
        poll = next(d.poll for d in self.loaded.config.devices if d.name == name)
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

    # --- lifecycle: devices and jobs from the config, reload, watchdog, status --------

    def _uploader(
        self, config: Config, token: str | None, verify: ssl.SSLContext | bool
    ) -> Uploader:
        return Uploader(
            self.store,
            url=config.sync.url,
            token=token,
            gateway=config.gateway.model_dump(),
            factor_set=config.emissions.factor_set,
            max_batch=config.sync.max_batch,
            timeout=config.sync.timeout,
            budget=config.sync.every,
            verify=verify,
        )

    def _attach(self, device: DeviceBase) -> None:
        """Make the device's driver; a driver that cannot be made is logged, not fatal."""
        self.status.setdefault(device.name, DeviceStatus())
        try:
            driver = make_driver(device)
        except DriverUnavailable as exc:
            log.error("%s; it will not be polled", exc)
            self.status[device.name].last_error = str(exc)
            return
        self.drivers[device.name] = driver
        log.info("%s, every %gs", driver.describe(), device.poll)

    def _schedule(self, config: Config) -> None:
        """(Re)create the poll and sync jobs for `config`, and watch them for the watchdog.

        One job per polling period, not per device: 200 meters at 1 s cost the
        scheduler one wake-up a second; each device still polls in its own task.
        """
        now = time.monotonic()
        for job in self.scheduler.get_jobs():
            if job.id.startswith("poll every ") or job.id == "sync":
                job.remove()
                self.progress.forget(job.id)
        by_period: dict[float, list[str]] = {}
        for device in config.devices:
            if device.name in self.drivers:
                by_period.setdefault(device.poll, []).append(device.name)
        for period, names in by_period.items():
            job = f"poll every {period:g}s"
            self.scheduler.add_job(
                self._poll_all,
                IntervalTrigger(seconds=period, start_date=_EPOCH),
                args=[names],
                id=job,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(period)),
            )
            self.progress.expect(job, 3 * period + 10, now)
        self.scheduler.add_job(
            self._sync,
            IntervalTrigger(seconds=config.sync.every),
            id="sync",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        # a sync run stops sending at `every`, but the batch in flight may use its
        # retry budget (`every`) and a request's timeout on top
        allowance = 2 * config.sync.every + 2 * config.sync.timeout + 30
        self.progress.expect("sync", allowance, now)

    def _job_ran(self, event: JobExecutionEvent) -> None:
        self.progress.ran(event.job_id, time.monotonic())

    def stalled(self) -> list[str]:
        """The watched jobs that stopped running, in words (the watchdog's and /healthz's)."""
        return self.progress.stalled(time.monotonic())

    def health(self) -> list[str]:
        """What is wrong, for /healthz: empty when all is well."""
        problems = self.stalled()
        if self._buffer_failing or self._unwritten:
            why = self._buffer_failing or "not writable"
            problems.append(
                f"{why}: work of {len(self._unwritten)} devices held in memory and retried"
            )
        failing = [self.status[name] for name in self.drivers if self.status[name].failing_since]
        if self.drivers and len(failing) == len(self.drivers):
            problems.append(f"all {len(failing)} devices failing (first: {failing[0].last_error})")
        return problems

    def open_alarms(self) -> int:
        """Rules raised and not yet cleared."""
        return sum(1 for state in self.pipeline.rule_states.values() if state.raised)

    async def reload(self, loaded: LoadedConfig, token: str | None) -> None:
        """Apply a new, valid config in place (SIGHUP).

        Buffered data stays where it is; counter states of the devices that
        remain carry over, so their interval in progress closes whole. A device
        whose settings changed gets a fresh driver; the others keep theirs.
        Raises ConfigInvalid, with nothing changed, for what cannot change live.
        """
        old, new = self.loaded.config, loaded.config
        if new.buffer.path != old.buffer.path:
            problem = loaded.problem_at(
                ("buffer", "path"),
                f"cannot move the buffer while running (from {old.buffer.path}); "
                "restart the service to use the new path",
            )
            raise ConfigInvalid([problem])
        verify = _sync_tls(loaded)
        self.scheduler.pause()
        try:
            if self._polling:  # let running polls finish against the pipeline they began with
                await asyncio.wait(list(self._polling.values()), timeout=STOP_DEADLINE / 2)
            if self._acting:  # and rule actions against the drivers they began with
                await asyncio.wait(list(self._acting), timeout=STOP_DEADLINE / 2)
            wanted = {device.name: device for device in new.devices}
            states = {  # counters of the devices that stay; rules and tallies sort themselves
                key: state
                for key, state in self.pipeline.flush().counters.items()
                if key.startswith("#") or key.split("/", 1)[0] in wanted
            }
            pipeline = derive(new, states)  # may raise: nothing is changed yet
            pipeline.latest = {k: v for k, v in self.pipeline.latest.items() if k in wanted}
            cleared = self._clear_removed_rules(new, pipeline)
            if (new.buffer.max_size, new.buffer.drop_synced) != (
                old.buffer.max_size, old.buffer.drop_synced
            ):  # fmt: skip
                await self._resize_buffer(new)
            self.pipeline = pipeline
            rotated = new.sync.ca_file or new.sync.client_cert  # new files at the same paths
            if rotated or (new.sync, new.gateway, new.emissions.factor_set, token) != (
                old.sync, old.gateway, old.emissions.factor_set, self.token
            ):  # fmt: skip
                await self._new_uploader(new, token, verify)
            for device in old.devices:
                if wanted.get(device.name) != device:
                    await self._detach(device.name, gone=device.name not in wanted)
            self.loaded, self.token = loaded, token
            for device in new.devices:
                if device.name not in self.drivers:
                    self._attach(device)
            self._schedule(new)
            if cleared:
                try:
                    await self.store.commit(cleared)
                except Exception as exc:  # logged above; a restart ignores the rule anyway
                    log.error("alarm_cleared of removed rules not buffered (%s)", exc)
            self._start_actions()
        finally:
            self.scheduler.resume()
        log.info(
            "reloaded %s: %d devices polled, sync to %s every %gs",
            loaded.path, len(self.drivers), new.sync.url, new.sync.every,
        )  # fmt: skip

    def _clear_removed_rules(self, new: Config, pipeline: Pipeline) -> Commit:
        """A raised rule that a reload removes is cleared, once: its event, its state and
        its clear write (the stack light goes off); else the alarm stays open for good.
        A raised rule that stays but writes elsewhere now switches its old output off."""
        kept = {rule.name: rule for rule in new.rules}
        work = Commit()
        for rule in self.loaded.config.rules:
            state = self.pipeline.rule_states.get(rule.name)
            if state is None or not state.raised:
                continue
            if rule.name in kept:
                old, now = (
                    rules.action_for(rule, "cleared"),
                    rules.action_for(kept[rule.name], "cleared"),
                )
                if old is not None and (now is None or actions.target(old) != actions.target(now)):
                    pipeline.actions.append(old)
                continue
            message = f"rule {rule.name} cleared: removed from the config by a reload"
            log.info("%s", message)
            work.events.append(EventRow(time.time(), rule.device, "alarm_cleared", "info", message))
            work.counters[RULE_KEY + rule.name] = RuleState().to_json()
            action = rules.action_for(rule, "cleared")
            if action is not None:
                pipeline.actions.append(action)
        return work

    async def _resize_buffer(self, config: Config) -> None:
        """buffer.max_size and drop_synced apply from the next write, without a restart."""
        buffer = config.buffer
        await self.store.run(self.store.store.resize, buffer.max_size, buffer.drop_synced)
        log.info(
            "buffer: max_size %s, drop_synced %s from now on",
            f"{buffer.max_size / 1e6:g} MB", buffer.drop_synced,
        )  # fmt: skip

    async def _detach(self, name: str, *, gone: bool) -> None:
        driver = self.drivers.pop(name, None)
        if driver is not None:
            await driver.close()
        if gone:
            self.status.pop(name, None)
            if name in self._unwritten:  # its held work is still written, in order
                await self._commit(name, Commit())
            log.info("%s: removed", name)
        elif name in self.status:  # the new driver is tried at once; an offline device
            self.status[name].offline_until = 0.0  # stays offline until it answers (one event)

    async def _new_uploader(
        self, config: Config, token: str | None, verify: ssl.SSLContext | bool
    ) -> None:
        """Sync settings changed: cut a running sync (its batch stays pending) and start afresh."""
        if self._syncing is not None:
            self._syncing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._syncing
        old = self.uploader
        self.uploader = self._uploader(config, token, verify)
        self.uploader.status = old.status
        await old.close()

    async def _report(self) -> None:
        """Every SNAPSHOT_EVERY s: the backlog figures, the status file, systemd's STATUS=."""
        try:
            self.backlog = await self.store.backlog()
        except Exception as exc:  # the poll path logs buffer failures; keep the last figures
            log.debug("backlog not read: %s", exc)
        path = snapshot_path(self.loaded.config.buffer.path)
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, write_snapshot, path, self.snapshot()
            )
        except OSError as exc:
            log.warning("status file %s not written: %s", path, exc)
        logs.flush_repeats()
        systemd.notify(f"STATUS={self.summary()}")

    def snapshot(self) -> dict:
        """What `edge-agent status` shows of the daemon's memory: plain JSON."""
        devices = {}
        for device in self.loaded.config.devices:
            s = self.status.get(device.name, DeviceStatus())
            state = (
                "not polled" if device.name not in self.drivers
                else "offline" if s.failing_since >= OFFLINE_AFTER
                else "failing" if s.failing_since
                else "ok" if s.last_good
                else "waiting"
            )  # fmt: skip
            devices[device.name] = {
                "state": state,
                "polls": s.polls,
                "failed_polls": s.failed_polls,
                "skipped": s.skipped,
                "last_poll": s.last_poll,
                "last_good": s.last_good,
                "good_points": s.good_points,
                "points": s.points,
                "last_error": s.last_error,
            }
        sync = self.uploader.status
        return {
            "written": time.time(),
            "pid": os.getpid(),
            "buffer": self.loaded.config.buffer.path,
            "devices": devices,
            "sync": {
                "last_attempt": sync.last_attempt,
                "last_success": sync.last_success,
                "last_result": sync.last_result,
                "failures": sync.failures,
            },
            "backlog": self.backlog,
            "open_alarms": self.open_alarms(),
            "problems": self.health(),
        }

    def summary(self) -> str:
        """The STATUS= line: `polling 12 devices, backlog 340, last sync 14:02 (stored)`."""
        sync = self.uploader.status
        last = (
            datetime.fromtimestamp(sync.last_success).strftime("%H:%M")
            if sync.last_success
            else "never"
        )
        backlog = (
            f", backlog {self.backlog['intervals'] + self.backlog['events']}"
            if self.backlog
            else ""
        )
        polling = f"polling {len(self.drivers)} devices{backlog}"
        return f"{polling}, last sync {last} ({sync.last_result})"


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


async def reload_from(agent: Agent) -> None:
    """SIGHUP: read the config file again; a bad one is logged and the running one kept."""
    from agent.cli import read_token  # the same token rules as at start

    path = agent.loaded.path
    systemd.notify("RELOADING=1", f"STATUS=reloading {path}")
    log.info("SIGHUP: reloading %s", path)
    try:
        loaded = load_config(path, require_env=True)
        for warning in loaded.warnings:
            log.warning("%s", warning)
        await agent.reload(loaded, read_token(loaded))
    except ConfigInvalid as exc:
        for problem in exc.problems:
            log.error("%s", problem)
        log.error("reload refused: %s has problems; still running the previous config", path)
    except Exception:  # a reload must never take the daemon down
        log.exception("reload failed; still running (restart the service if in doubt)")
    systemd.notify("READY=1", f"STATUS={agent.summary()}")


async def run(loaded: LoadedConfig, token: str | None, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set); SIGHUP reloads. Returns the exit code."""
    from agent.metrics import serve_http

    stop = stop or asyncio.Event()
    hup = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hup.set)
    agent = Agent(loaded, token)
    await agent.start()
    http = await serve_http(agent, loaded.config.http)
    tasks = []
    timeout = systemd.watchdog_seconds()
    if timeout:
        tasks.append(asyncio.create_task(watchdog(timeout / 2, agent.stalled), name="watchdog"))
        log.info("watchdog: a ping every %gs while jobs run (timeout %gs)", timeout / 2, timeout)
    systemd.notify("READY=1", f"STATUS={agent.summary()}")
    try:
        while not stop.is_set():
            waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(hup.wait())]
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in pending:
                waiter.cancel()
            if hup.is_set() and not stop.is_set():
                hup.clear()
                before = agent.loaded.config.http
                await reload_from(agent)
                if agent.loaded.config.http != before:
                    if http is not None:
                        http.close()
                    http = await serve_http(agent, agent.loaded.config.http)
    finally:
        systemd.notify("STOPPING=1")
        for task in tasks:
            task.cancel()
        if http is not None:
            http.close()
        await agent.stop()
        final = {**agent.snapshot(), "stopped": time.time()}
        with contextlib.suppress(OSError):  # `status` shows how it stood when it stopped
            write_snapshot(snapshot_path(agent.loaded.config.buffer.path), final)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return 0
