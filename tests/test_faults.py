"""Faults on the uplink: a platform that fails often and goes away; the invariants still hold.

The agents run in process under time travel (tests/fixtures/clock.py: the test moves
the wall clock, polls run when due, the uplink works beside them in real time), except
the kill -9 and damaged-buffer runs: a process cannot be time-travelled, so those are
real-time and marked slow.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.daemon import Agent
from agent.demo import RESOLUTION_KWH, delivered, demo_meters, energy_check
from config.loader import load_config
from drivers.modbus.simulator import MeterServer
from tests.fixtures.clock import Clock, ManualScheduler
from tests.fixtures.daemon import agent_yaml, free_port
from tests.fixtures.full_buffer import fill
from tests.fixtures.plant import spawn_agent, start_plant, wait_for_async

pytestmark = pytest.mark.timeout(120)
TOKEN = "fault-token"
INTERVAL = 2


async def test_a_flaky_then_absent_platform_gets_every_interval_once(
    tmp_path: Path, clock: Clock
) -> None:
    """503s at random and a 4 s outage: in the end every interval arrives once, energy conserved."""
    meters, server, receiver, config = await start_plant(
        tmp_path, TOKEN, interval=INTERVAL, poll="250ms", every="500ms", fail_rate=0.4
    )
    agent = Agent(load_config(config, require_env=True), scheduler=ManualScheduler())
    await agent.start()
    try:
        await clock.run(agent, 6)
        receiver.stop()  # the platform is gone
        await clock.run(agent, 4)
        await clock.run_until(
            agent, failed(agent, since=agent.destinations["sync"].status.failures)
        )
        receiver.fail_rate = 0.0
        receiver.start()

        async def drained() -> bool:
            backlog = await agent.store.backlog()
            return backlog["intervals"] == 0 and agent.destinations["sync"].status.failures > 0

        await clock.run_until(agent, drained)
        assert agent.destinations["sync"].status.failures > 0  # the faults did happen
    finally:
        await agent.stop()
        await server.stop()
    stored = await delivered(receiver.url, TOKEN)
    receiver.stop()

    keys = Counter((r["device"], r["start"], r["end"]) for r in stored)
    assert max(keys.values()) == 1
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        computed = db.execute("SELECT count(*) FROM intervals").fetchone()[0]
        unsent = db.execute(
            "SELECT count(*) FROM intervals"
            " WHERE seq > (SELECT intervals_acked FROM destinations WHERE name = 'sync')"
        ).fetchone()[0]
    assert (unsent, len(stored)) == (0, computed)
    check = energy_check(stored, meters, INTERVAL)
    for name, device in check["devices"].items():
        assert device["intervals"] >= 4, name
        assert device["delivered_kwh"] == pytest.approx(
            device["metered_kwh"], abs=2 * RESOLUTION_KWH
        )


def failed(agent: Agent, since: int) -> Callable[[], Awaitable[bool]]:
    """A check for Clock.run_until: a sync run failed since the count was `since` (a sync
    runs beside the polls in real time: wall seconds of outage may pass before it tries)."""

    async def check() -> bool:
        return agent.destinations["sync"].status.failures > since

    return check


def _receiver_view(central: Path) -> tuple[list[tuple], int]:
    """The receiver's intervals in arrival order, and records it saw twice under other keys."""
    with sqlite3.connect(central) as db:
        rows = db.execute(
            "SELECT device, start_s, end_s, quantity FROM intervals ORDER BY id"
        ).fetchall()
        twice = db.execute("SELECT coalesce(sum(duplicate_records), 0) FROM batches").fetchone()[0]
    return rows, twice


def _computed(buffer: Path) -> tuple[set[tuple], int]:
    """What the agent computed (device, start, end), and how much of it is still unsent."""
    with sqlite3.connect(f"file:{buffer}?mode=ro", uri=True) as db:
        keys = {
            (device, start, start + length)
            for device, start, length in db.execute("SELECT device, start, length FROM intervals")
        }
        unsent = db.execute(
            "SELECT count(*) FROM intervals"
            " WHERE seq > (SELECT intervals_acked FROM destinations WHERE name = 'sync')"
        ).fetchone()[0]
    return keys, unsent


def _in_time_order(rows: list[tuple]) -> bool:
    last: dict[tuple, float] = {}
    for device, start, end, _ in rows:
        key = (device, end - start)
        if start <= last.get(key, float("-inf")):
            return False
        last[key] = start
    return True


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_twenty_sigkills_while_the_platform_fails_lose_nothing_and_double_nothing(
    tmp_path: Path,
) -> None:
    """kill -9 at 20 random moments (start-up, polls, commits, sends) with a receiver that
    fails 30% of POSTs: the receiver ends with exactly the intervals the agent computed,
    none twice, each device's in time order, and the energy the meters advanced.

    1-second intervals, polls every 100 ms and syncs every 200 ms put a commit and a few
    sends in every second, so waits of 0.3-1.3 s (start-up takes 0.6-1 s) land in
    start-up, polls, commits and sends as densely as longer waits did at a slower pace."""
    interval = 1
    meters, server, receiver, config = await start_plant(
        tmp_path, TOKEN, interval=interval, poll="100ms", every="200ms", fail_rate=0.3
    )
    central = tmp_path / "central.db"
    log = tmp_path / "agent.log"
    rng = random.Random(20261126)
    agent = await spawn_agent(config, log)
    kills = 0
    try:
        for _ in range(20):
            await asyncio.sleep(rng.uniform(0.3, 1.3))  # some land in start-up, some mid-send
            agent.send_signal(signal.SIGKILL)
            assert await agent.wait() == -signal.SIGKILL
            kills += 1
            agent = await spawn_agent(config, log)
        receiver.stop()
        receiver.fail_rate = 0.0
        receiver.start()

        async def drained() -> bool:
            keys, unsent = _computed(tmp_path / "buffer.db")
            return unsent == 0 and len(keys) >= 3 * 6

        await asyncio.sleep(interval + 0.5)  # at least one boundary after the last restart
        await wait_for_async(drained, 40)
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(agent.wait(), 20) == 0
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        await server.stop()
        receiver.stop()

    computed, unsent = _computed(tmp_path / "buffer.db")
    rows, twice = _receiver_view(central)
    received = [(d, s, e) for d, s, e, _ in rows]
    assert kills == 20
    assert (unsent, twice) == (0, 0)
    assert len(received) == len(set(received))  # none twice
    assert set(received) == computed  # none missing, none made up
    assert _in_time_order(rows)
    text = log.read_text()
    assert TOKEN not in text and TOKEN.encode() not in (tmp_path / "buffer.db").read_bytes()
    stored = [
        {"device": d, "start": _iso(s), "end": _iso(e), "quantity": q, "co2_kg": 0.0}
        for d, s, e, q in rows
    ]
    check = energy_check(stored, meters, interval)
    for name, device in check["devices"].items():
        assert device["intervals"] >= 6, name
        assert device["delivered_kwh"] == pytest.approx(
            device["metered_kwh"], abs=2 * RESOLUTION_KWH
        ), name


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def test_after_a_long_outage_the_backlog_drains_in_order_and_live_data_follows(
    tmp_path: Path, clock: Clock
) -> None:
    """The platform is away for 10 s (5 intervals, small batches): polling never pauses, the
    backlog arrives oldest first per device, and intervals closed after the return arrive too."""
    meters, server, receiver, config = await start_plant(
        tmp_path, TOKEN, interval=INTERVAL, poll="250ms", every="500ms"
    )
    central = tmp_path / "central.db"
    text = config.read_text()
    config.write_text(text.replace("  every: 500ms\n", "  every: 500ms\n  max_batch: 4\n"))
    agent = Agent(load_config(config, require_env=True), scheduler=ManualScheduler())
    await agent.start()
    try:
        await clock.run(agent, 3)
        receiver.stop()
        failures = agent.destinations["sync"].status.failures
        await clock.run(agent, 10)
        await clock.run_until(agent, failed(agent, since=failures))  # it tried, in vain
        assert (await agent.store.backlog())["intervals"] >= 3 * 4  # it piled up
        receiver.start()
        back = datetime.now(UTC).timestamp()

        async def caught_up() -> bool:
            rows, _ = _receiver_view(central)
            live = [r for r in rows if r[1] >= back]
            return (await agent.store.backlog())["intervals"] == 0 and len(live) >= 3 * 2

        await clock.run_until(agent, caught_up, within=40)
    finally:
        await agent.stop()
        await server.stop()
        receiver.stop()

    computed, unsent = _computed(tmp_path / "buffer.db")
    rows, twice = _receiver_view(central)
    assert (unsent, twice) == (0, 0)
    assert {(d, s, e) for d, s, e, _ in rows} == computed
    assert _in_time_order(rows)
    assert len([r for r in rows if r[1] >= back]) >= 3 * 2  # live data after the return
    for name in meters:  # no hole: polling went on through the outage
        starts = sorted(s for d, s, e, _ in rows if d == name and e - s == INTERVAL)
        assert starts == [starts[0] + INTERVAL * k for k in range(len(starts))], name


async def test_a_full_buffer_gives_up_raw_samples_and_says_so_never_intervals(
    tmp_path: Path, clock: Clock
) -> None:
    """buffer.max_size reached by raw samples: the oldest go, a buffer_full event reaches
    the platform, the loss is counted, and every interval is still delivered once."""
    _, server, receiver, config = await start_plant(
        tmp_path, TOKEN, interval=INTERVAL, poll="100ms", every="500ms"
    )
    central = tmp_path / "central.db"
    text = config.read_text()
    path_line = f"  path: {tmp_path / 'buffer.db'}\n"
    config.write_text(
        text.replace(path_line, path_line + "  max_size: 200KB\n  raw_retention: 24h\n")
    )
    agent = Agent(load_config(config, require_env=True), scheduler=ManualScheduler())
    await agent.start()
    backlog: dict = {}
    try:

        async def full_and_sent() -> bool:
            backlog.update(await agent.store.backlog())
            return bool(backlog["dropped_samples"]) and backlog["intervals"] == 0

        async def all_sent() -> bool:
            backlog.update(await agent.store.backlog())
            return backlog["intervals"] == backlog["events"] == 0

        await clock.run_until(agent, full_and_sent, step=0.1)
        await clock.run(agent, INTERVAL)
        await clock.run_until(agent, all_sent, step=0.1, within=10)
    finally:
        await agent.stop()
        await server.stop()
        receiver.stop()
    assert backlog["dropped_samples"] > 0 and backlog["dropped_synced"] == 0
    assert (tmp_path / "buffer.db").stat().st_size <= 200_000
    computed, unsent = _computed(tmp_path / "buffer.db")
    rows, twice = _receiver_view(central)
    assert (unsent, twice) == (0, 0)
    assert {(d, s, e) for d, s, e, _ in rows} == computed
    with sqlite3.connect(central) as db:
        kinds = {k for (k,) in db.execute("SELECT kind FROM events")}
    assert {"buffer_full", "buffer_near_full"} <= kinds


@pytest.mark.slow
async def test_a_damaged_buffer_at_start_is_replaced_and_the_agent_runs(tmp_path: Path) -> None:
    """Garbage where the buffer should be: moved aside, a fresh buffer, the platform hears of
    it as a buffer_replaced event, and intervals flow."""
    (tmp_path / "buffer.db").write_bytes(b"\x00garbage, not SQLite\n" * 500)
    _, server, receiver, config = await start_plant(
        tmp_path, TOKEN, interval=INTERVAL, poll="250ms", every="500ms"
    )
    central = tmp_path / "central.db"
    log = tmp_path / "agent.log"
    agent = await spawn_agent(config, log)
    try:

        async def flowing() -> bool:
            rows, _ = _receiver_view(central)
            return len(rows) >= 3

        await wait_for_async(flowing, 30)
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(agent.wait(), 20) == 0
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        await server.stop()
        receiver.stop()
    aside = list(tmp_path.glob("buffer.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"\x00garbage")
    with sqlite3.connect(central) as db:
        [(message,)] = db.execute("SELECT message FROM events WHERE kind = 'buffer_replaced'")
    assert aside[0].name in message
    assert "moved to" in log.read_text()


def _alarm_config(config: Path, meters_port: int, workdir: Path, max_size: str) -> None:
    """One meter drawing power, a rule raised by it at once, a buffer capped at `max_size`
    and a platform that is not there."""
    text = agent_yaml(meters_port, workdir, devices=1)
    config.write_text(
        text.replace("buffer:\n", f"buffer:\n  max_size: {max_size}\n", 1)
        + "rules:\n"
        + "  - {name: incomer-on, device: main_incomer, quantity: power_kw, above: 1,"
        + " severity: critical}\n"
    )


@pytest.mark.slow
async def test_an_alarm_raised_while_the_buffer_is_full_survives_a_kill_9(tmp_path: Path) -> None:
    """A buffer at its cap with nothing it may drop (a long outage): the alarm the first poll
    raises is refused with the poll's work, yet after kill -9 it is in the buffer, and so is
    the rule's raised state (a restart does not raise it again)."""
    fill(tmp_path / "buffer.db", 256_000)
    server = MeterServer(list(demo_meters().values()))
    await server.start()
    (tmp_path / "sync-token").write_text(TOKEN)
    config, log = tmp_path / "agent.yaml", tmp_path / "agent.log"
    _alarm_config(config, server.port, tmp_path, "256kB")
    agent = await spawn_agent(config, log)
    try:
        await wait_for_async(async_true(lambda: "rule incomer-on:" in log.read_text()), 30)
        await asyncio.sleep(1.0)  # four more polls: the alarm's own commit is long done
        agent.send_signal(signal.SIGKILL)
        assert await agent.wait() == -signal.SIGKILL
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        await server.stop()
    text = log.read_text()
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        alarms = db.execute("SELECT message FROM events WHERE kind = 'alarm_raised'").fetchall()
        state = db.execute("SELECT state FROM counters WHERE key = '#rule/incomer-on'").fetchone()
    assert "buffer full (max_size 0.256 MB) and nothing more may be dropped" in text  # refused
    assert len(alarms) == 1 and "rule incomer-on: power_kw of main_incomer" in alarms[0][0]
    assert state is not None and json.loads(state[0])["raised"] is True


def async_true(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked


def _device_events(buffer: Path, device: str) -> list[str]:
    try:
        with sqlite3.connect(f"file:{buffer}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT kind FROM events WHERE device = ? AND kind LIKE 'device_%' ORDER BY seq",
                [device],
            ).fetchall()
    except sqlite3.OperationalError:  # not made yet, or its schema not yet committed
        return []
    return [kind for (kind,) in rows]


def _offline_flag(buffer: Path, device: str) -> dict | None:
    with sqlite3.connect(f"file:{buffer}?mode=ro", uri=True) as db:
        row = db.execute("SELECT state FROM counters WHERE key = ?", [f"#offline/{device}"])
        found = row.fetchone()
    return json.loads(found[0]) if found else None


@pytest.mark.slow
async def test_a_device_offline_across_a_kill_9_is_reported_offline_once(tmp_path: Path) -> None:
    """The press line stops answering: device_offline, then kill -9. The flag is on disk
    with the event; the restarted agent polls the dead meter without a second
    device_offline, and says device_online once when it answers; a kill -9 after that
    leaves the flag cleared."""
    meters = demo_meters()
    server = MeterServer(list(meters.values()))
    await server.start()
    (tmp_path / "sync-token").write_text(TOKEN)
    config, log, buffer = tmp_path / "agent.yaml", tmp_path / "agent.log", tmp_path / "buffer.db"
    port = free_port()
    config.write_text(agent_yaml(server.port, tmp_path, devices=2, http_port=port))
    meters["press_line_2"].offline = True

    async def metric(name: str) -> float | None:
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                text = (await client.get("/metrics")).text
        except httpx.TransportError:  # not listening yet
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels.get("device") == "press_line_2":
                    return sample.value
        return None

    async def polled_again() -> bool:
        return (await metric("edge_agent_polls_total") or 0) >= 2

    async def killed(agent: asyncio.subprocess.Process) -> None:
        agent.send_signal(signal.SIGKILL)
        assert await agent.wait() == -signal.SIGKILL

    agent = await spawn_agent(config, log)
    try:
        await wait_for_async(async_true(lambda: bool(_device_events(buffer, "press_line_2"))), 30)
        await killed(agent)
        flag_after_first_kill = _offline_flag(buffer, "press_line_2")
        agent = await spawn_agent(config, log)
        await wait_for_async(polled_again, 30)  # polled, and still failing, by the new process
        up_while_dead = await metric("edge_agent_device_up")
        meters["press_line_2"].offline = False
        back = async_true(lambda: len(_device_events(buffer, "press_line_2")) > 1)
        await wait_for_async(back, 30)
        await killed(agent)
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        await server.stop()
    assert flag_after_first_kill == {"offline": True} and up_while_dead == 0
    assert _device_events(buffer, "press_line_2") == ["device_offline", "device_online"]
    assert _offline_flag(buffer, "press_line_2") == {"offline": False}
    assert _device_events(buffer, "main_incomer") == []
