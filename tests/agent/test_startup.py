"""Start-up: the agent is ready before it has spoken to any meter (bench/startup.py times
READY=1 at 5,000 meters), and says what it polls, a line per device."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agent.daemon import Agent
from config.loader import load_config
from tests.fixtures.clock import Clock, ManualScheduler
from tests.fixtures.daemon import NotifySocket, start_daemon, stop_daemon, wait_until

pytestmark = pytest.mark.timeout(60)
METERS = 40


def _config(tmp_path: Path, port: int) -> Path:
    devices = "".join(
        f"  - name: m{n}\n    modbus_tcp: {{host: 127.0.0.1, port: {port}, unit: {n + 1}}}\n"
        "    poll: 1s\n    points:\n"
        "      - {name: import_kwh, address: 0, type: float32, unit: kWh, kind: counter}\n"
        "      - {name: power_kw, address: 2, type: float32, unit: kW}\n"
        "    energy: {carrier: electricity, counter: import_kwh}\n"
        for n in range(METERS)
    )
    path = tmp_path / "agent.yaml"
    path.write_text(
        "gateway: {id: gw1, enterprise_id: 91510100MA6123456W, region_code: '510100',"
        " industry_code: C3011}\n"
        f"buffer: {{path: {tmp_path / 'buffer.db'}}}\n"
        "sync: {url: 'http://127.0.0.1:9/api/v1/batches'}\n"
        f"devices:\n{devices}"
    )
    return path


async def test_start_connects_to_no_meter_and_names_each_device(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """`start` (and READY=1 after it) does not wait for a single connect: the meters'
    server has accepted nothing when it returns, and something at the first poll."""
    accepted: list[object] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("peername"))
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    agent = Agent(load_config(_config(tmp_path, port)), scheduler=ManualScheduler())
    clock.shift(0.5)  # between two polls (started on a poll's second, it polls at once)
    try:
        with caplog.at_level(logging.INFO, logger="agent.daemon"):
            await agent.start()
        for _ in range(20):  # whatever start set going has had turns of the loop
            await asyncio.sleep(0)
        assert accepted == []
        await clock.run(agent, 1.0)
        await wait_until(lambda: accepted, 10)
    finally:
        await agent.stop()
        server.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().endswith(", every 1s")]
    assert [line.split(":")[0] for line in lines] == [f"m{n}" for n in range(METERS)]


async def test_the_daemon_reads_no_yaml_itself(tmp_path: Path) -> None:
    """Its loader child reads the config and the factor file and hands both over: the
    running daemon has not loaded PyYAML (0.9 MiB; libyaml's extension is the sign)."""
    config = _config(tmp_path, 9)  # meters nobody listens for: start-up connects to none
    notify = NotifySocket()
    daemon = await start_daemon(config, tmp_path / "agent.log", notify)
    try:
        await wait_until(lambda: "READY=1" in notify.lines(), 30)
        maps = Path(f"/proc/{daemon.pid}/maps").read_text()
        assert "/yaml/_yaml." not in maps  # (this test's own directory is named yaml)
        assert "/pydantic_core/_pydantic_core." in maps  # what a loaded one looks like
    finally:
        assert await stop_daemon(daemon) == 0
        notify.close()
