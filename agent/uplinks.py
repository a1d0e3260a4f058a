"""The agent's destinations: made from the config, each run on its own schedule.

`sync:` is the destination named "sync"; each `destinations:` entry is one
more, of a kind from cloud_sync/registry.py. Each is made by its kind's
factory, which reads its credential files at once: one that cannot be used is
a config problem at its field (exit 78 at start, a refused reload later).
Each delivers in its own job, so one that is down or slow never holds up
another, and each keeps its own status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from cloud_sync.base import Destination, Identity, Metered, SendsLive
from cloud_sync.http.settings import SPEC as HTTP
from cloud_sync.registry import kind_of
from cloud_sync.spec import DestinationSpec
from config.base import NodePath
from config.errors import format_path
from config.loader import LoadedConfig
from config.models import Config
from domain.errors import ConfigInvalid, SettingUnusable
from domain.reading import Reading

log = logging.getLogger(__name__)

CENTRAL = "sync"  # the destination of the `sync:` section


@dataclass(frozen=True, slots=True)
class Wanted:
    """A destination as the config describes it."""

    name: str
    spec: DestinationSpec
    settings: Any  # the kind's settings model
    max_age: float | None
    at: NodePath  # where its settings are in the file: ("sync",), ("destinations", 1, "http")


def wanted(config: Config) -> dict[str, Wanted]:
    """Every destination the config asks for, the central one first."""
    found = {CENTRAL: Wanted(CENTRAL, HTTP, config.sync, None, ("sync",))}
    for i, entry in enumerate(config.destinations):
        kind = kind_of(entry)
        at = ("destinations", i, kind.key)
        found[entry.name] = Wanted(entry.name, kind, kind.settings_of(entry), entry.max_age, at)
    return found


def ages(config: Config) -> dict[str, float | None]:
    """What the buffer must know of them: each name and its age limit."""
    return {name: want.max_age for name, want in wanted(config).items()}


def make(loaded: LoadedConfig, want: Wanted) -> Destination:
    """The destination, not yet attached to the buffer; ConfigInvalid at the field of a
    file it cannot use."""
    config = loaded.config
    identity = Identity(
        config.gateway.model_dump(),
        config.emissions.factor_set,
        plant_devices(config),
        tuple(sorted(config.emissions.intervals)),
    )
    factory = want.spec.factory()
    try:
        destination: Destination = factory(
            want.name, want.settings, identity, setting=format_path(want.at)
        )
    except SettingUnusable as exc:
        raise ConfigInvalid([loaded.problem_at((*want.at, exc.field), str(exc))]) from exc
    return destination


def plant_devices(config: Config) -> dict[str, Metered]:
    """What a destination that sends per-device figures knows of each device."""
    return {
        d.name: Metered(frozenset(p.name for p in d.points), d.energy is not None)
        for d in config.devices
    }


async def make_all(loaded: LoadedConfig) -> dict[str, Destination]:
    """Every destination the config asks for; ConfigInvalid with none of them left open."""
    made: dict[str, Destination] = {}
    try:
        for name, want in wanted(loaded.config).items():
            made[name] = make(loaded, want)
    except ConfigInvalid:
        await close_all(made.values())
        raise
    return made


async def close_all(destinations: Iterable[Destination]) -> None:
    for destination in destinations:
        await destination.close()


def changed(old: Config, new: Config, name: str, destination: Destination) -> bool:
    """Whether a reload must make `name` afresh: its settings, the tags every batch
    carries, or the files it read (a rotated token or certificate) changed."""
    before, after = wanted(old).get(name), wanted(new)[name]
    if before is None or (before.spec, before.settings) != (after.spec, after.settings):
        return True
    if (old.gateway, old.emissions.factor_set) != (new.gateway, new.emissions.factor_set):
        return True
    if after.spec.statistics is not None and (
        plant_devices(old) != plant_devices(new)
        or sorted(old.emissions.intervals) != sorted(new.emissions.intervals)
    ):  # a kind that sends per-device figures: what it sends may have changed
        return True
    return destination.stale()


def schedule_live(
    scheduler: AsyncIOScheduler,
    name: str,
    destination: SendsLive,
    send: Callable[[str], Awaitable[None]],
) -> None:
    """(Re)schedule a destination's real-time data at the interval it asks for now (its
    platform may change it): `send(name)` every `live_every` seconds."""
    job = f"live to {name}"
    if scheduler.get_job(job) is not None:
        scheduler.remove_job(job)
    if destination.live_every:
        trigger = IntervalTrigger(seconds=destination.live_every)
        scheduler.add_job(send, trigger, args=[name], id=job, max_instances=1, coalesce=True)


async def send_live(
    name: str, destination: SendsLive, latest: Mapping[str, Mapping[str, Reading]]
) -> None:
    """One real-time send; never raises but for a cancel (the delivery runs reconnect)."""
    try:
        await destination.send_live(latest)
    except (OSError, ConnectionError) as exc:
        log.debug("%s: real-time data not sent: %s", name, exc)


def summary(destinations: Mapping[str, Destination]) -> str:
    """For the STATUS= line: `, last sync 14:02 (stored)`, and `; NAME 14:03 (stored)` for
    each further destination."""
    line = ""
    for name, destination in destinations.items():
        status = destination.status
        last = (
            datetime.fromtimestamp(status.last_success).strftime("%H:%M")
            if status.last_success
            else "never"
        )
        label = ", last sync" if name == CENTRAL else f"; {name}"
        line += f"{label} {last} ({status.last_result})"
    return line


async def run(destination: Destination, deadline: float) -> None:
    """One delivery run: never raises but for a cancel (the agent is stopping)."""
    started = time.monotonic()
    try:
        await destination.deliver(deadline=deadline)
    except asyncio.CancelledError:  # stopping: the batch stays pending
        raise
    except Exception:
        log.exception("%s: delivery failed", destination.name)
    destination.status.last_run_seconds = time.monotonic() - started


async def last_runs(destinations: list[Destination], timeout: float) -> None:
    """At a stop: one try per batch for every destination at once, cut at `timeout`."""

    async def one(destination: Destination) -> None:
        try:
            await destination.deliver(last=True)
        except Exception as exc:  # the drivers and the buffer must still be closed
            log.error(
                "stop: last delivery to %s failed (%s); the backlog stays buffered",
                destination.name, exc,
            )  # fmt: skip

    tasks = [asyncio.create_task(one(d), name=f"last {d.name}") for d in destinations]
    if not tasks:
        return
    _, late = await asyncio.wait(tasks, timeout=timeout)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late)
        log.warning("stop: last sync cut after %gs; the backlog stays buffered", timeout)
