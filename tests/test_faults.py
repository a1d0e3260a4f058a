"""Faults on the uplink: a platform that fails often and goes away; the invariants still hold."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from agent.daemon import Agent
from agent.demo import RESOLUTION_KWH, delivered, demo_config, demo_meters, energy_check
from cloud_sync.receiver import Receiver
from config import load_config
from drivers.modbus.simulator import MeterServer

pytestmark = pytest.mark.timeout(120)
TOKEN = "fault-token"
INTERVAL = 2


async def test_a_flaky_then_absent_platform_gets_every_interval_once(tmp_path: Path) -> None:
    """503s at random and a 4 s outage: in the end every interval arrives once, energy conserved."""
    (tmp_path / "sync-token").write_text(TOKEN)
    meters = demo_meters()
    server = MeterServer(list(meters.values()))
    await server.start()
    receiver = Receiver(tmp_path / "central.db", TOKEN, fail_rate=0.4)
    receiver.start()
    config = tmp_path / "agent.yaml"
    config.write_text(
        demo_config(
            server.port, receiver.url, tmp_path, interval=INTERVAL, poll="250ms", every="500ms"
        )
    )
    agent = Agent(load_config(config, require_env=True), TOKEN)
    await agent.start()
    try:
        await asyncio.sleep(6)
        receiver.stop()  # the platform is gone
        await asyncio.sleep(4)
        receiver.fail_rate = 0.0
        receiver.start()
        for _ in range(120):
            await asyncio.sleep(0.25)
            backlog = await agent.store.backlog()
            if backlog["intervals"] == 0 and agent.uploader.status.failures:
                break
        assert agent.uploader.status.failures > 0  # the faults did happen
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
            "SELECT count(*) FROM intervals WHERE seq > (SELECT intervals_acked FROM sync_state)"
        ).fetchone()[0]
    assert (unsent, len(stored)) == (0, computed)
    check = energy_check(stored, meters, INTERVAL)
    for name, device in check["devices"].items():
        assert device["intervals"] >= 4, name
        assert device["delivered_kwh"] == pytest.approx(
            device["metered_kwh"], abs=2 * RESOLUTION_KWH
        )
