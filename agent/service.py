"""The process around the agent: signals, sd_notify, the watchdog, /metrics, reload.

`run` is what `edge-agent run` starts. Signal handlers only set an event;
SIGTERM/SIGINT stop the agent cleanly, SIGHUP reads the config again and
applies it (agent/reload.py), or logs its problems and keeps the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

# the central sync is always HTTP: its client (httpx and its kin, 0.1 s) comes with the
# service, which `run` imports while its loader child reads the file (agent/cli.py)
import cloud_sync.http.uploader  # noqa: F401
from agent import garbage, reload, systemd
from agent.daemon import Agent
from agent.lifecycle import snapshot_path, watchdog, write_snapshot
from agent.logs import EVERY_TIME
from agent.metrics import serve_http
from config.loader import LoadedConfig, load_config
from domain.errors import ConfigInvalid

log = logging.getLogger(__name__)


async def reload_from(agent: Agent) -> None:
    """SIGHUP: read the config file again; a bad one is logged and the running one kept."""
    path = agent.loaded.path
    systemd.notify("RELOADING=1", f"STATUS=reloading {path}")
    log.info("SIGHUP: reloading %s", path)
    try:
        loaded = load_config(path, require_env=True)
        for warning in loaded.warnings:
            log.warning("%s", warning)
        await reload.apply(agent, loaded)
        garbage.settle()
    except ConfigInvalid as exc:  # said in full at every reload, even the same file again
        for problem in exc.problems:
            log.error("%s", problem, extra=EVERY_TIME)
        log.error(
            "reload refused: %s has problems; still running the previous config", path,
            extra=EVERY_TIME,
        )  # fmt: skip
    except Exception:  # a reload must never take the daemon down
        log.exception("reload failed; still running (restart the service if in doubt)")
    systemd.notify("READY=1", f"STATUS={agent.summary()}")


async def run(loaded: LoadedConfig, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set); SIGHUP reloads. Returns the exit code."""
    stop = stop or asyncio.Event()
    hup = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hup.set)
    agent = Agent(loaded)
    with garbage.held():  # start-up keeps what it makes: a collection would find little
        await agent.start()
        http = await serve_http(agent, loaded.config.http)
    tasks = []
    timeout = systemd.watchdog_seconds()
    if timeout:
        tasks.append(asyncio.create_task(watchdog(timeout / 2, agent.stalled), name="watchdog"))
        log.info("watchdog: a ping every %gs while jobs run (timeout %gs)", timeout / 2, timeout)
    systemd.notify("READY=1", f"STATUS={agent.summary()}")
    # after READY, before the first poll: it makes later collections cheap, and it walks
    # all that start-up made (0.1 s at 5,000 meters), which READY need not wait for
    garbage.settle()
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
