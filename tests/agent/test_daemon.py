"""The daemon around the pipeline: a clean restart mid-interval, a buffer that fails a while.

The first two run under time travel (tests/fixtures/clock.py): wall time moves in the
test's hands and the agent's jobs run when due, so 2 s intervals close without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from agent.daemon import Agent
from agent.demo import RESOLUTION_KWH, demo_config, demo_meters
from config.loader import load_config
from domain.records import EventRow
from drivers.modbus.simulator import MeterServer, SimulatedMeter
from tests.fixtures.clock import Clock, ManualScheduler
from tests.fixtures.daemon import wait_until

pytestmark = pytest.mark.timeout(90)
INTERVAL = 2


@contextlib.asynccontextmanager
async def served() -> AsyncIterator[tuple[dict[str, SimulatedMeter], MeterServer]]:
    """The demo's meters on a Modbus server, stopped however the test ends."""
    meters = demo_meters()
    server = MeterServer(list(meters.values()))
    await server.start()
    try:
        yield meters, server
    finally:
        await server.stop()


async def start(tmp_path: Path, server: MeterServer) -> Agent:
    (tmp_path / "sync-token").write_text("t")
    config = tmp_path / "agent.yaml"
    # the platform is unreachable: these tests read what the agent buffered
    text = demo_config(server.port, "http://127.0.0.1:9", tmp_path, interval=INTERVAL, poll="250ms")
    config.write_text(text)
    agent = Agent(load_config(config, require_env=True), scheduler=ManualScheduler())
    await agent.start()
    return agent


def buffered(tmp_path: Path, device: str) -> list[tuple[float, float, float, str]]:
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        rows = db.execute(
            "SELECT start, json_extract(body, '$.quantity'), json_extract(body, '$.coverage'),"
            " json_extract(body, '$.quality') FROM intervals WHERE device = ? AND length = ?"
            " ORDER BY start",
            [device, INTERVAL],
        ).fetchall()
    return rows


def check_conserved(tmp_path: Path, meters: dict) -> None:
    for name, meter in meters.items():
        rows = buffered(tmp_path, name)
        starts = [r[0] for r in rows]
        assert starts == [starts[0] + INTERVAL * k for k in range(len(starts))], name
        end = starts[-1] + INTERVAL
        metered = meter.curve.energy_kwh(end) - meter.curve.energy_kwh(meter.first_served[0])
        assert sum(r[1] for r in rows) == pytest.approx(metered, abs=2 * RESOLUTION_KWH), name


async def test_a_clean_restart_mid_interval_closes_that_interval_once_and_whole(
    tmp_path: Path, clock: Clock
) -> None:
    """Stop at mid-interval, start again: the interval across the stop closes once, whole."""
    async with served() as (meters, server):
        agent = await start(tmp_path, server)
        await clock.run(agent, 5.0)  # from a whole minute: the middle of an interval
        stopped = datetime.now().timestamp()
        await agent.stop()
        clock.shift(0.75)  # the restart takes a moment: three polls missed, a gap
        agent = await start(tmp_path, server)
        await clock.run(agent, 5.0)
        await agent.stop()
    check_conserved(tmp_path, meters)
    across = [r for r in buffered(tmp_path, "main_incomer") if r[0] < stopped < r[0] + INTERVAL]
    assert len(across) == 1
    # whole: all its energy (the restart's second is interpolated), most of it measured
    assert across[0][3] in ("good", "estimated") and across[0][2] > 0.5


async def test_a_buffer_that_fails_for_a_while_loses_no_interval(
    tmp_path: Path, clock: Clock
) -> None:
    """'database or disk is full' for two seconds: the work is kept and written after."""
    async with served() as (meters, server):
        agent = await start(tmp_path, server)
        await clock.run(agent, 3.0)
        real = agent.store.store.commit_all

        def full(works: list) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        agent.store.store.commit_all = full  # type: ignore[method-assign]
        agent.store.store.commit = full  # type: ignore[method-assign]
        await clock.run(agent, 2.5)
        assert agent.unwritten  # the work of these seconds was held
        agent.store.store.commit_all = real  # type: ignore[method-assign]
        del agent.store.store.commit
        await clock.run(agent, 3.0)
        await agent.stop()
    check_conserved(tmp_path, meters)


@pytest.mark.slow  # the stop's last sync is cut after its real 5 s
async def test_stop_does_not_wait_for_a_platform_that_never_answers(tmp_path: Path) -> None:
    """A sync stuck on a silent platform is cut at once: stop takes seconds, not minutes."""
    heard: list[asyncio.StreamWriter] = []  # the platform accepts, reads, never answers
    silent = await asyncio.start_server(lambda r, w: heard.append(w), "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    (tmp_path / "sync-token").write_text("t")
    config = tmp_path / "agent.yaml"
    try:
        async with served() as (_, server):
            text = demo_config(server.port, f"http://127.0.0.1:{port}", tmp_path, every="1s")
            config.write_text(text)
            agent = Agent(load_config(config, require_env=True))
            await agent.start()
            # something to send at once, before the first interval closes
            await agent.store.add_events([EventRow(time.time(), None, "test", "info", "to send")])
            # a sync is now waiting on the silent platform (it took the batch and never hears)
            await wait_until(lambda: heard and "sync" in agent.delivering, 10)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await agent.stop()
            took = loop.time() - started
    finally:
        silent.close()
        for writer in heard:
            writer.close()
    assert took < 8.0  # the in-flight sync is cancelled; the last one is cut at 5 s


async def test_a_stop_lets_the_status_report_in_flight_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report writing the status file when the stop comes (slow at 3,000 meters) ends
    before the buffer closes, not cut by the loop's end (an ERROR traceback before)."""
    import agent.daemon as daemon

    write = daemon.write_snapshot

    def slow(path: Path, snapshot: dict) -> None:
        time.sleep(0.5)  # the executor thread, as a large status file takes
        write(path, snapshot)

    async with served() as (_, server):
        agent = await start(tmp_path, server)
        monkeypatch.setattr(daemon, "write_snapshot", slow)
        report = asyncio.create_task(agent._report())
        await asyncio.sleep(0.1)  # it is writing
        await agent.stop()
        assert report.done() and report.exception() is None


async def test_a_commit_still_on_its_way_to_disk_does_not_hold_the_next_turn(
    tmp_path: Path, clock: Clock
) -> None:
    """The buffer's thread is stuck in a write (as when 3,000 meters close their minute
    at once): the polls' turns end anyway and the next ones come; once the write goes
    through, every interval is there, once, in order."""
    stuck = threading.Event()
    async with served() as (meters, server):
        agent = await start(tmp_path, server)
        await clock.run(agent, 1.0)
        real = agent.store.store.commit_all

        def slow(works: list) -> None:
            stuck.wait(30)  # on the buffer's thread, as a long write and fsync
            real(works)

        agent.store.store.commit_all = slow  # type: ignore[method-assign]
        try:
            await clock.run(agent, 2.5)  # an interval closes: its commit cannot finish
            turns_ended = not agent.polling
            waiting = len(agent._inflight)
            polls = {name: status.polls for name, status in agent.health.devices.items()}
        finally:
            stuck.set()  # the buffer's thread is let go however the test ends
        await clock.run(agent, 2.0)
        agent.store.store.commit_all = real  # type: ignore[method-assign]
        await agent.stop()
    assert turns_ended and waiting > 0  # the commits waited; the turns did not
    assert all(n >= 4 * 3 for n in polls.values()), polls  # 250 ms polls in 3.5 s
    assert all(s.skipped == 0 for s in agent.health.devices.values())
    check_conserved(tmp_path, meters)
