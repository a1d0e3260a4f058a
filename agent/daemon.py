"""The agent: start everything, poll and deliver on schedule, commit, stop cleanly.

One `Agent` holds the daemon's parts: the buffer, the pipeline, a driver per
device, the destinations, the scheduler. Device health is in agent/health.py,
the destinations in agent/uplinks.py, a new config in agent/reload.py, and the
process around it (signals, sd_notify, watchdog, /metrics) in agent/service.py.
A clean stop persists every counter's state (the interval in progress resumes
after a restart and closes once, whole), tries a last delivery within a
deadline, and closes the links.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from agent import actions, lifecycle, logs, rules, systemd, uplinks
from agent.health import OFFLINE_KEY, Health
from agent.lifecycle import SNAPSHOT_EVERY, Progress, snapshot_path, write_snapshot
from agent.phases import phases
from agent.pipeline import Pipeline, derive
from buffer import AsyncStore
from cloud_sync.base import Destination, SendsLive
from config.base import DeviceBase
from config.loader import LoadedConfig
from config.models import Config
from domain.errors import BufferTooNew, ConfigInvalid, DriverUnavailable
from domain.records import Commit
from drivers.base import Driver, Subscribes, subscribes
from drivers.registry import make_driver

log = logging.getLogger(__name__)

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # polls are aligned to whole periods since then
SYNCED_KEEP = 7 * 86400.0  # synced records stay this long for `status` and audits
STOP_DEADLINE = 10.0
FIRST_REPORT = 5.0  # s after start: the first polls are done, `status` has something to show


@dataclass(slots=True)
class Agent:
    loaded: LoadedConfig
    store: AsyncStore = field(init=False)
    pipeline: Pipeline = field(init=False)
    drivers: dict[str, Driver] = field(default_factory=dict)
    destinations: dict[str, Destination] = field(default_factory=dict)
    feeds: dict[str, Subscribes] = field(default_factory=dict)  # drivers told of changes
    health: Health = field(default_factory=Health)
    scheduler: AsyncIOScheduler = field(default_factory=AsyncIOScheduler)
    progress: Progress = field(default_factory=Progress)  # for the watchdog and /healthz
    backlog: dict | None = None  # refreshed every SNAPSHOT_EVERY s, not per poll
    records_dropped: int = 0  # raw samples given up because the buffer failed
    unwritten: dict[str, Commit] = field(default_factory=dict)  # work the buffer refused
    buffer_failing: str | None = None  # why the buffer refused the last write
    delivering: dict[str, asyncio.Task] = field(default_factory=dict)  # by destination
    polling: dict[str, asyncio.Task] = field(default_factory=dict)
    acting: set[asyncio.Task] = field(default_factory=set)  # rule actions under way
    _inflight: set[asyncio.Task] = field(default_factory=set)
    _outputs: actions.Locks = field(default_factory=dict)
    _committing: dict[str, asyncio.Lock] = field(default_factory=dict)  # by device

    async def start(self) -> None:
        config = self.loaded.config
        # first: a token or certificate file that cannot be used stops it here
        self.destinations = await uplinks.make_all(self.loaded)
        try:
            self.store = _open_buffer(self.loaded)
        except BaseException:
            await uplinks.close_all(self.destinations.values())
            raise
        for destination in self.destinations.values():
            destination.attach(self.store)
        states = await self.store.run(self.store.store.counters)
        self.pipeline = derive(config, states)
        for device in config.devices:
            self.health.add(device.name, states)
            self.attach(device)
        self.scheduler.add_listener(
            self._job_ran, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
        )
        self.schedule(config)
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
        others = "".join(
            f"; {name} every {d.every:g}s"
            for name, d in self.destinations.items()
            if name != uplinks.CENTRAL
        )
        log.info(
            "started: %d devices polled, buffer %s, sync to %s every %gs%s",
            len(self.drivers), config.buffer.path, config.sync.url, config.sync.every, others,
        )  # fmt: skip

    async def stop(self) -> None:
        """Stop polling, persist counter state, one last sync, close everything."""
        self.scheduler.pause()  # no new jobs; running polls finish rather than being cut
        for task in self.delivering.values():  # waiting out a backoff holds nothing: cut it
            task.cancel()
        deadline = time.monotonic() + STOP_DEADLINE / 2
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=STOP_DEADLINE / 2)
        if self.acting:  # asked for by the last polls: the outputs get their writes
            await asyncio.wait(list(self.acting), timeout=max(0.1, deadline - time.monotonic()))
        self.scheduler.shutdown(wait=False)
        events = self.health.take_all_events()  # seen by a poll that failed after seeing them
        unwritten = [*self.unwritten.values(), events, self.pipeline.flush()]
        self.unwritten.clear()
        try:
            await self.store.commit(functools.reduce(Commit.then, unwritten))
        except Exception as exc:  # the last commit stays; a restart recomputes from it
            log.error("stop: counter state not written (%s)", exc)
            self.buffer_failing = str(exc)
        else:  # what was held is in: the status file written at stop must not say otherwise
            self.buffer_failing = None
        # one try per batch now, every destination at once; the backlog waits for the next start
        await uplinks.last_runs(list(self.destinations.values()), STOP_DEADLINE / 2)
        await uplinks.close_all(self.destinations.values())
        for task in self.acting:  # past the deadline: a raised rule writes again at start
            task.cancel()
        for name, driver in self.drivers.items():
            await lifecycle.close_driver(name, driver)
        with contextlib.suppress(Exception):  # the status file written at stop shows it
            self.backlog = await self.store.backlog()
        self.store.close()
        log.info("stopped")

    # --- jobs ---------------------------------------------------------------------

    async def _poll_all(self, period: float, names: list[str]) -> None:
        """Start this turn's polls; a device whose last poll still runs skips a turn."""
        for name in names:
            if name in self.polling:
                status = self.health.devices[name]
                status.skipped += 1
                if status.skipped == 1:
                    log.warning("%s: a poll takes longer than its period; turns are skipped", name)
                continue
            task = asyncio.create_task(self._poll(name, period), name=f"poll {name}")
            self.polling[name] = task
            self._inflight.add(task)  # a stop lets it finish (`_tracked` without a generator)

    def _polled(self, name: str, task: asyncio.Task[None] | None) -> None:
        if self.polling.get(name) is (task or asyncio.current_task()):  # not a later turn's
            del self.polling[name]

    async def _poll(self, name: str, period: float) -> None:
        """One device's turn. Its task leaves `polling` and `_inflight` in `finally`, not a
        done callback: one loop callback a poll fewer (0.5 us); poll tasks are never cut."""
        task = asyncio.current_task()
        try:
            if self.health.resting(name):
                return  # an offline device is polled at its backed-off pace, not every turn
            try:
                driver = self.drivers[name]
                # a subscription's counter changes since the last poll, then the poll itself
                feed = self.feeds.get(name)
                changes = feed.drain_changes() if feed is not None else []
                readings = await driver.read()
                self.health.note(name, readings, period)
                readings = changes + readings
                work = self.pipeline.ingest(name, readings)
                self.health.take_events(name, work)
                self.start_actions()
            except Exception:  # a bug must not stop this device's polls forever
                log.exception("%s: poll failed", name)
                return
            self._polled(name, task)  # at 3,000 meters a minute's close outlasts the second
            await self.commit(name, work)
        finally:
            self._inflight.discard(task)
            self._polled(name, task)

    def start_actions(self) -> None:
        """Rule actions run beside the polls: a slow or dead output never delays a meter."""
        if not self.pipeline.actions:  # the usual poll asks for none
            return
        for action in self.pipeline.take_actions():
            task = asyncio.create_task(self._act(action), name=f"action {action.rule}")
            self.acting.add(task)
            task.add_done_callback(self.acting.discard)

    async def _act(self, action: actions.Action) -> None:
        with self._tracked():
            failed = await actions.run(action, self.drivers.get(action.device), self._outputs)
            if failed is not None:  # kept like a poll's events, also when the buffer is full
                await self.commit(action.device, Commit(events=[failed]))

    async def commit(self, name: str, work: Commit) -> None:
        """Write a poll's work; if the buffer fails, keep it and write it with the next.

        The pipeline's state has already moved on, so dropping the work would
        lose its intervals for good; kept, they are written in order later.
        Raw samples are not kept: they must never hold up intervals. A device's next turn
        may start meanwhile (its commits go one at a time): see `_poll`."""
        if not work and name not in self.unwritten:  # most polls: no close, no raw samples
            return  # nothing to write: no lock to make and wait for
        async with self._committing.setdefault(name, asyncio.Lock()):
            held = self.unwritten.get(name)  # left there until written: /healthz tells
            if not work and not held:
                return
            merged = held.then(work) if held else work
            try:
                await self.store.commit(merged)
            except Exception as exc:  # what the buffer did write (events) has left `merged`
                self.records_dropped += len(merged.samples)
                merged.samples = []
                self.unwritten.pop(name, None)
                if merged:
                    self.unwritten[name] = merged
                if not self.buffer_failing:
                    log.error("buffer write failed (%s); work kept in memory and retried", exc)
                self.buffer_failing = str(exc)
            else:
                self.unwritten.pop(name, None)
                if self.buffer_failing and not self.unwritten:
                    log.info("buffer writes recovered")
                    self.buffer_failing = None

    async def _deliver(self, name: str) -> None:
        """One destination's run, at most `every` long; its batch in flight may finish."""
        destination = self.destinations.get(name)
        if destination is None:  # removed by a reload since the job was due
            return
        with self._tracked():
            task = asyncio.current_task()
            assert task is not None
            self.delivering[name] = task
            try:
                await uplinks.run(destination, time.monotonic() + destination.every)
            except asyncio.CancelledError:  # stopping, or a reload made it afresh
                return
            finally:
                self.delivering.pop(name, None)
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

    async def _report(self) -> None:
        """Every SNAPSHOT_EVERY s: the backlog, the status file, STATUS=; a stop lets it end."""
        with self._tracked():  # (cut by the loop's end, it logged an ERROR at 3,000 meters)
            try:
                self.backlog = await self.store.backlog()
            except Exception as exc:  # the poll path logs buffer failures; keep the last ones
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

    # --- devices and jobs from the config -------------------------------------------

    def attach(self, device: DeviceBase) -> None:
        """Make the device's driver; a driver that cannot be made is logged, not fatal."""
        status = self.health.add(device.name)
        try:
            driver = make_driver(device)
        except DriverUnavailable as exc:
            log.error("%s; it will not be polled", exc)
            status.last_error = str(exc)
            return
        self.drivers[device.name] = driver
        if subscribes(driver):
            self.feeds[device.name] = driver
        log.info("%s, every %gs", driver.describe(), device.poll)

    def schedule(self, config: Config) -> None:
        """(Re)create the poll and sync jobs for `config`, and watch them for the watchdog.

        One job per slice of a period (agent/phases.py), not per device; each device
        still polls in its own task."""
        now = time.monotonic()
        for job in self.scheduler.get_jobs():
            if job.id.startswith(("poll every ", "deliver to ", "live to ")):
                job.remove()
                self.progress.forget(job.id)
        by_period: dict[float, list[str]] = {}
        for device in config.devices:
            if device.name in self.drivers:
                by_period.setdefault(device.poll, []).append(device.name)
        for period, names in by_period.items():
            for offset, chunk in phases(period, names):
                job = f"poll every {period:g}s" + (f" at +{offset:g}s" if offset else "")
                start = _EPOCH + timedelta(seconds=offset)
                trigger = IntervalTrigger(seconds=period, start_date=start)
                self.scheduler.add_job(
                    self._poll_all, trigger, args=[period, chunk], id=job, max_instances=1,
                    coalesce=True, misfire_grace_time=max(1, int(period)),
                )  # fmt: skip
                self.progress.expect(job, 3 * period + 10, now)
        for name, destination in self.destinations.items():
            job = f"deliver to {name}"
            self.scheduler.add_job(
                self._deliver, IntervalTrigger(seconds=destination.every), args=[name], id=job,
                max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
            )  # fmt: skip
            self.progress.expect(job, destination.allowance, now)
            if isinstance(destination, SendsLive):
                live = functools.partial(
                    uplinks.schedule_live, self.scheduler, name, destination, self._send_live
                )
                destination.on_live_every(live)
                live()

    async def _send_live(self, name: str) -> None:
        destination: object = self.destinations.get(name)  # None: removed by a reload
        if isinstance(destination, SendsLive):
            with self._tracked():
                await uplinks.send_live(name, destination, self.pipeline.latest)

    # --- what the watchdog, /healthz, `status` and systemd see ----------------------

    def _job_ran(self, event: JobExecutionEvent) -> None:
        self.progress.ran(event.job_id, time.monotonic())

    def stalled(self) -> list[str]:
        """The watched jobs that stopped running, in words (the watchdog's and /healthz's)."""
        return self.progress.stalled(time.monotonic())

    def problems(self) -> list[str]:
        """What is wrong, for /healthz: empty when all is well."""
        problems = self.stalled()
        if self.buffer_failing or self.unwritten:
            why = self.buffer_failing or "not writable"
            problems.append(
                f"{why}: work of {len(self.unwritten)} devices held in memory and retried"
            )
        return problems + self.health.problems(list(self.drivers))

    def open_alarms(self) -> int:
        """Rules raised and not yet cleared."""
        return sum(1 for state in self.pipeline.rule_states.values() if state.raised)

    def snapshot(self) -> dict:
        """What `edge-agent status` shows of the daemon's memory: plain JSON."""
        names = [device.name for device in self.loaded.config.devices]
        devices = {name: self.health.report(name, name in self.drivers) for name in names}
        sent = {name: d.status.as_json() for name, d in self.destinations.items()}
        return {
            "written": time.time(),
            "pid": os.getpid(),
            "buffer": self.loaded.config.buffer.path,
            "devices": devices,
            "destinations": sent,
            "backlog": self.backlog,
            "open_alarms": self.open_alarms(),
            "problems": self.problems(),
        }

    def summary(self) -> str:
        """The STATUS= line: `polling 12 devices, backlog 340, last sync 14:02 (stored)`,
        and `; NAME 14:03 (stored)` for each further destination."""
        b = self.backlog
        backlog = f", backlog {b['intervals'] + b['events']}" if b else ""
        return f"polling {len(self.drivers)} devices{backlog}" + uplinks.summary(self.destinations)


def _open_buffer(loaded: LoadedConfig) -> AsyncStore:
    """The buffer, capped at buffer.max_size; a damaged one is replaced (buffer._recover)."""
    buffer = loaded.config.buffer
    try:
        return AsyncStore(
            Path(buffer.path),
            max_size=buffer.max_size,
            drop_synced=buffer.drop_synced,
            destinations=uplinks.ages(loaded.config),
            event_state=(rules.RULE_KEY, OFFLINE_KEY),  # written with their events, even when full
        )
    except (OSError, sqlite3.Error, BufferTooNew) as exc:
        problem = loaded.problem_at(
            ("buffer", "path"), f"cannot open the buffer at {buffer.path}: {exc}"
        )
        raise ConfigInvalid([problem]) from exc
