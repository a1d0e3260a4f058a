"""SIGHUP on a running daemon: a good config takes effect, a bad one is refused."""

from __future__ import annotations

import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from agent import reload
from agent.demo import demo_meters
from config.loader import load_config
from domain.errors import ConfigInvalid
from drivers.modbus.simulator import MeterServer
from tests.fixtures.clock import Clock, ManualScheduler
from tests.fixtures.daemon import NotifySocket, agent_yaml, start_daemon, stop_daemon, wait_until
from tests.fixtures.plant import start_agent

pytestmark = pytest.mark.timeout(90)
INTERVAL = 2.0
SHORT = 1.0  # s: the SIGHUP run's interval; it waits out a few, in real time


def intervals(tmp_path: Path, device: str, length: float = INTERVAL) -> list[float]:
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        rows = db.execute(
            "SELECT start FROM intervals WHERE device = ? AND length = ? ORDER BY start",
            [device, length],
        ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.slow
async def test_sighup_applies_a_good_config_and_refuses_a_bad_one(tmp_path: Path) -> None:
    """A device added by reload is polled; a broken file is refused with file:line and the
    old config keeps polling; the intervals of the device that stayed run on without a gap."""
    server = MeterServer(list(demo_meters().values()))
    await server.start()
    (tmp_path / "sync-token").write_text("t")
    config = tmp_path / "agent.yaml"
    config.write_text(agent_yaml(server.port, tmp_path, devices=2, interval=1))
    log = tmp_path / "agent.log"
    notify = NotifySocket()
    proc = await start_daemon(config, log, notify)
    try:
        await wait_until(lambda: "READY=1" in notify.lines(), 30)
        await wait_until(lambda: len(intervals(tmp_path, "main_incomer", SHORT)) >= 2, 30)
        assert intervals(tmp_path, "compressor", SHORT) == []

        config.write_text(agent_yaml(server.port, tmp_path, devices=3, interval=1))
        proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: len(intervals(tmp_path, "compressor", SHORT)) >= 2, 30)
        assert "RELOADING=1" in notify.lines()

        good = config.read_text()
        config.write_text(good.replace("poll: 250ms", "poll: fast", 1))
        proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: "reload refused" in log.read_text(), 30)
        before = len(intervals(tmp_path, "compressor", SHORT))
        await wait_until(lambda: len(intervals(tmp_path, "compressor", SHORT)) >= before + 2, 30)

        # press_line_2 removed, main_incomer changed (a new driver): its counter carries on
        blocks = re.split(r"(?m)^(?=  - name: )", good)
        blocks[1] = blocks[1].replace("timeout: 1s", "timeout: 2s")
        config.write_text("".join(b for b in blocks if "name: press_line_2" not in b))
        proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: "press_line_2: removed" in log.read_text(), 30)
        removed_at = time.time()
        before = len(intervals(tmp_path, "main_incomer", SHORT))
        await wait_until(lambda: len(intervals(tmp_path, "main_incomer", SHORT)) >= before + 2, 30)
        code = await stop_daemon(proc)
    finally:
        await stop_daemon(proc)
        await server.stop()
        notify.close()
    assert code == 0
    text = log.read_text()
    assert f"{config}:" in text and "poll" in text.split("reload refused")[0].rsplit("SIGHUP", 1)[1]
    assert "still running the previous config" in text
    starts = intervals(tmp_path, "main_incomer", SHORT)  # counter state carried across both reloads
    assert starts == [starts[0] + SHORT * k for k in range(len(starts))]
    assert max(intervals(tmp_path, "press_line_2", SHORT)) < removed_at
    assert notify.lines().count("READY=1") == 4


async def test_reload_in_place_keeps_state_swaps_sync_and_refuses_a_moved_buffer(
    tmp_path: Path, clock: Clock
) -> None:
    """New sync settings get a new uploader with the old one's record; counter states of the
    devices that stay are the same objects' values; a moved buffer.path is refused, unchanged."""
    server = MeterServer(list(demo_meters().values()))
    await server.start()
    text = agent_yaml(server.port, tmp_path, devices=2)
    agent = await start_agent(tmp_path, text, scheduler=ManualScheduler())
    config = tmp_path / "agent.yaml"
    try:
        await clock.run(agent, 2.0)  # time travel: tests/fixtures/clock.py
        uploader, status = agent.destinations["sync"], agent.destinations["sync"].status
        states = {k: s.to_json() for k, s in agent.pipeline.states.items()}
        config.write_text(config.read_text().replace("every: 1s", "every: 3s"))
        await reload.apply(agent, load_config(config, require_env=True))
        kept = {k: agent.pipeline.states[k].to_json() for k in states}
        swapped = (
            agent.destinations["sync"] is not uploader,
            agent.destinations["sync"].status is status,
        )
        moved = config.read_text().replace("buffer.db", "elsewhere.db")
        config.write_text(moved)
        with pytest.raises(ConfigInvalid) as refused:
            await reload.apply(agent, load_config(config, require_env=True))
        polled = set(agent.drivers)
    finally:
        await agent.stop()
        await server.stop()
    assert swapped == (True, True)
    assert set(kept) == set(states) and states  # the same counters, carried over
    assert str(refused.value.problems[0]).startswith(f"{config}:")
    assert "restart the service" in str(refused.value.problems[0])
    assert polled == {"main_incomer", "press_line_2"}
    assert agent.loaded.config.sync.every == 3.0
