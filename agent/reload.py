"""Applying a new config to the running agent (SIGHUP), without losing state.

Buffered data stays where it is; counter states of the devices that remain
carry over, so their interval in progress closes whole. A device whose
settings changed gets a fresh driver; the others keep theirs. A raised rule
that stays stays raised; one the reload removes is cleared (its event and its
clear write). What cannot change live (the buffer's path) is refused before
anything is changed. A rule kept under its name but judged differently now
(another device, quantity, limit, clear level or `for`) is a new rule: judged
afresh from the next figure, and if the old one was raised it is cleared first
(its event, its clear write), so the open alarm never shows a definition that
is gone and the new one raises with its own figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from agent import actions, rules, uplinks
from agent.daemon import STOP_DEADLINE, Agent
from agent.lifecycle import close_driver
from agent.pipeline import Pipeline, derive
from agent.rules import RULE_KEY, Limit, RuleState
from cloud_sync.base import Destination
from config.loader import LoadedConfig
from config.models import Config, Rule
from domain.errors import ConfigInvalid
from domain.records import Commit, EventRow

log = logging.getLogger(__name__)


async def apply(agent: Agent, loaded: LoadedConfig) -> None:
    """Apply a new, valid config in place.

    Raises ConfigInvalid, with nothing changed, for what cannot change live or a
    destination's file that cannot be used.
    """
    old, new = agent.loaded.config, loaded.config
    if new.buffer.path != old.buffer.path:
        problem = loaded.problem_at(
            ("buffer", "path"),
            f"cannot move the buffer while running (from {old.buffer.path}); "
            "restart the service to use the new path",
        )
        raise ConfigInvalid([problem])
    fresh = await _fresh_destinations(agent, loaded)  # may raise: nothing is changed yet
    agent.scheduler.pause()
    swapped = False
    try:
        if agent.polling:  # let running polls finish against the pipeline they began with
            await asyncio.wait(list(agent.polling.values()), timeout=STOP_DEADLINE / 2)
        if agent.acting:  # and rule actions against the drivers they began with
            await asyncio.wait(list(agent.acting), timeout=STOP_DEADLINE / 2)
        wanted = {device.name: device for device in new.devices}
        redefined = _redefined(old, new)
        afresh = {RULE_KEY + name for name in redefined}
        states = {  # counters of the devices that stay; rules and tallies sort themselves
            key: state
            for key, state in agent.pipeline.flush().counters.items()
            if (key.startswith("#") or key.split("/", 1)[0] in wanted) and key not in afresh
        }
        pipeline = derive(new, states)  # may raise: nothing is changed yet
        pipeline.latest = {k: v for k, v in agent.pipeline.latest.items() if k in wanted}
        cleared = _clear_removed_rules(agent, new, pipeline, redefined)
        await agent.store.register(uplinks.ages(new))  # may raise: nothing is changed yet
        if (new.buffer.max_size, new.buffer.drop_synced) != (
            old.buffer.max_size, old.buffer.drop_synced
        ):  # fmt: skip
            await _resize_buffer(agent, new)
        agent.pipeline = pipeline
        await _swap_destinations(agent, new, fresh)
        swapped = True
        for device in old.devices:
            if wanted.get(device.name) != device:
                await _detach(agent, device.name, gone=device.name not in wanted)
        agent.loaded = loaded
        for device in new.devices:
            if device.name not in agent.drivers:
                agent.attach(device)
        agent.schedule(new)
        if cleared:
            try:
                await agent.store.commit(cleared)
            except Exception as exc:  # logged above; a restart ignores the rule anyway
                log.error("alarm_cleared of removed rules not buffered (%s)", exc)
        agent.start_actions()
    except BaseException:
        if not swapped:  # made for nothing: the running destinations stay
            await uplinks.close_all(fresh.values())
        raise
    finally:
        agent.scheduler.resume()
    log.info(
        "reloaded %s: %d devices polled, sync to %s every %gs, %d destinations",
        loaded.path, len(agent.drivers), new.sync.url, new.sync.every, len(agent.destinations),
    )  # fmt: skip


def _redefined(old: Config, new: Config) -> set[str]:
    """The rules kept under their name whose judging changed: a device, a quantity, a
    limit, a clear level or a `for` (severity and action are not judging)."""

    def judging(rule: Rule) -> tuple[str | None, str, Limit]:
        return rule.device, rule.quantity, Limit.of(rule)

    before = {rule.name: judging(rule) for rule in old.rules}
    return {r.name for r in new.rules if r.name in before and before[r.name] != judging(r)}


def _clear_removed_rules(
    agent: Agent, new: Config, pipeline: Pipeline, redefined: set[str]
) -> Commit:
    """A raised rule that a reload removes or redefines is cleared, once: its event, its
    state and its clear write (the stack light goes off); else the alarm stays open for
    good, or open under a definition that is gone. A raised rule that stays but writes
    elsewhere now switches its old output off."""
    kept = {rule.name: rule for rule in new.rules}
    work = Commit()
    for rule in agent.loaded.config.rules:
        state = agent.pipeline.rule_states.get(rule.name)
        if rule.name in redefined:  # on disk too: a restart must not judge with the old state
            work.counters[RULE_KEY + rule.name] = RuleState().to_json()
        if state is None or not state.raised:
            continue
        if rule.name in kept and rule.name not in redefined:
            old, now = (
                rules.action_for(rule, "cleared"),
                rules.action_for(kept[rule.name], "cleared"),
            )
            if old is not None and (now is None or actions.target(old) != actions.target(now)):
                pipeline.actions.append(old)
            continue
        why = "redefined" if rule.name in kept else "removed from the config"
        message = f"rule {rule.name} cleared: {why} by a reload"
        log.info("%s", message)
        work.events.append(EventRow(time.time(), rule.device, "alarm_cleared", "info", message))
        work.counters[RULE_KEY + rule.name] = RuleState().to_json()
        action = rules.action_for(rule, "cleared")
        if action is not None:
            pipeline.actions.append(action)
    return work


async def _resize_buffer(agent: Agent, config: Config) -> None:
    """buffer.max_size and drop_synced apply from the next write, without a restart."""
    buffer = config.buffer
    await agent.store.run(agent.store.store.resize, buffer.max_size, buffer.drop_synced)
    log.info(
        "buffer: max_size %s, drop_synced %s from now on",
        f"{buffer.max_size / 1e6:g} MB", buffer.drop_synced,
    )  # fmt: skip


async def _detach(agent: Agent, name: str, *, gone: bool) -> None:
    driver = agent.drivers.pop(name, None)
    agent.feeds.pop(name, None)
    if driver is not None:
        await close_driver(name, driver)
    if gone:
        agent.health.forget(name)
        if name in agent.unwritten:  # its held work is still written, in order
            await agent.commit(name, Commit())
        log.info("%s: removed", name)
    elif name in agent.health.devices:  # the new driver is tried at once; an offline device
        agent.health.devices[name].offline_until = 0.0  # stays offline until it answers (one event)


async def _fresh_destinations(agent: Agent, loaded: LoadedConfig) -> dict[str, Destination]:
    """The destinations to make afresh: new ones, and those whose settings or files
    changed. Made before anything changes, so a file that cannot be used refuses the
    reload (ConfigInvalid) with the old destinations still running."""
    old, new = agent.loaded.config, loaded.config
    fresh: dict[str, Destination] = {}
    try:
        for name, want in uplinks.wanted(new).items():
            running = agent.destinations.get(name)
            if running is None or uplinks.changed(old, new, name, running):
                fresh[name] = uplinks.make(loaded, want)
    except ConfigInvalid:
        await uplinks.close_all(fresh.values())
        raise
    return fresh


async def _swap_destinations(agent: Agent, new: Config, fresh: dict[str, Destination]) -> None:
    """Cut the runs of what is replaced or removed (their batches stay pending in the
    buffer), and put the fresh ones in place.
    A replaced destination keeps its status: its figures go on."""
    names = set(uplinks.wanted(new))
    for name in [n for n in agent.destinations if n in fresh or n not in names]:
        task = agent.delivering.get(name)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        old = agent.destinations.pop(name)
        if name in fresh:
            fresh[name].status = old.status
        else:
            log.info("%s: removed; its cursor stays in the buffer", name)
        await old.close()
    for destination in fresh.values():
        destination.attach(agent.store)
    agent.destinations.update(fresh)
