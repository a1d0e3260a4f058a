"""Reload and stop where the rules, the device events, the bounded buffer and the
lifecycle meet: each test here is a defect found when the three were merged."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from agent.daemon import Agent
from agent.demo import demo_meters
from config import load_config
from drivers.modbus.simulator import MeterServer
from tests.agent.daemon_proc import agent_yaml, free_port
from tests.agent.test_rule_actions import StackLight, config_text, events, wait_for
from tests.drivers.peers import raw_server

pytestmark = pytest.mark.timeout(60)


async def reload(agent: Agent, path: Path, text: str) -> None:
    path.write_text(text)
    await agent.reload(load_config(path, require_env=True), "t")


async def test_a_device_offline_and_fixed_by_a_reload_is_reported_back_online(
    tmp_path: Path,
) -> None:
    """The meter's address was wrong: it goes offline (one event); the technician fixes the
    port and reloads; the first good poll says it is back online, once."""
    server = MeterServer(list(demo_meters().values()))
    await server.start()
    (tmp_path / "sync-token").write_text("t")
    path = tmp_path / "agent.yaml"
    good = agent_yaml(server.port, tmp_path, devices=1)
    path.write_text(good.replace(f"port: {server.port}", f"port: {free_port()}"))
    agent = Agent(load_config(path, require_env=True), "t")
    await agent.start()
    try:
        await wait_for(lambda: any(e[1] == "device_offline" for e in events(tmp_path)))
        await reload(agent, path, good)
        await wait_for(lambda: any(e[1] == "device_online" for e in events(tmp_path)))
    finally:
        await agent.stop()
        await server.stop()
    kinds = [e[1] for e in events(tmp_path) if e[1].startswith("device_")]
    assert kinds == ["device_offline", "device_online"]
