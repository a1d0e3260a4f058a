"""The notify protocol and the watchdog, against real AF_UNIX datagram sockets."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import tempfile
import time
from pathlib import Path

import pytest

from agent import systemd
from agent.daemon import Agent
from agent.demo import demo_meters
from agent.lifecycle import watchdog
from config.loader import load_config
from drivers.modbus.simulator import MeterServer
from tests.fixtures.daemon import (
    NotifySocket,
    agent_yaml,
    free_port,
    start_daemon,
    stop_daemon,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


def test_notify_sends_its_lines_as_one_datagram(monkeypatch: pytest.MonkeyPatch) -> None:
    """READY=1 and STATUS= arrive together, in one datagram, on a socket bound to a path."""
    with tempfile.TemporaryDirectory(dir="/tmp") as short:  # sun_path holds 108 bytes
        path = os.path.join(short, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            monkeypatch.setenv("NOTIFY_SOCKET", path)
            assert systemd.notify("READY=1", "STATUS=polling 2 devices")
            assert sock.recv(4096) == b"READY=1\nSTATUS=polling 2 devices"


def test_notify_without_systemd_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not under systemd (no NOTIFY_SOCKET), notify sends nothing and says so."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_watchdog_timeout_comes_from_watchdog_usec_for_this_pid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """WATCHDOG_USEC sets the timeout; a WATCHDOG_PID of another process turns it off."""
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_seconds() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_seconds() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_seconds() is None
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    monkeypatch.delenv("WATCHDOG_PID")
    assert systemd.watchdog_seconds() is None


@pytest.mark.slow
async def test_the_daemon_says_ready_status_watchdog_and_stopping(tmp_path: Path) -> None:
    """Under a NOTIFY_SOCKET the daemon says READY=1 with a STATUS=, pings the watchdog,
    updates STATUS= after syncs, and says STOPPING=1 on SIGTERM, then exits 0; with
    JOURNAL_STREAM set every log line carries its syslog priority."""
    server = MeterServer(list(demo_meters().values()))
    await server.start()
    (tmp_path / "sync-token").write_text("t")
    config = tmp_path / "agent.yaml"
    config.write_text(agent_yaml(server.port, tmp_path))
    notify = NotifySocket()
    log = tmp_path / "agent.log"
    log.touch()
    stream = f"{log.stat().st_dev}:{log.stat().st_ino}"  # as systemd names the journal's stream
    proc = await start_daemon(config, log, notify, WATCHDOG_USEC="1000000", JOURNAL_STREAM=stream)
    try:
        await wait_until(lambda: len(notify.pings()) >= 4, 30)
        code = await stop_daemon(proc)
    finally:
        await stop_daemon(proc)
        await server.stop()
        notify.close()
    assert code == 0
    lines = notify.lines()
    assert lines.index("READY=1") < lines.index("STOPPING=1")
    statuses = [line for line in lines if line.startswith("STATUS=")]
    assert statuses[0].startswith("STATUS=polling 3 devices")
    assert any("last sync" in line for line in statuses)
    assert "WATCHDOG=1" not in lines[: lines.index("READY=1")]
    logged = log.read_text().splitlines()
    assert "<6>agent.service: watchdog: a ping every 0.5s while jobs run (timeout 1s)" in logged
    assert all(re.match(r"<[2-7]>", line) for line in logged), logged


async def start_in_process(tmp_path: Path, port: int) -> Agent:
    (tmp_path / "sync-token").write_text("t")
    config = tmp_path / "agent.yaml"
    config.write_text(agent_yaml(port, tmp_path, devices=1))
    agent = Agent(load_config(config, require_env=True))
    await agent.start()
    return agent


@pytest.mark.slow
async def test_pings_stop_while_the_loop_is_blocked_and_while_jobs_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop stuck in a blocking call sends no ping; so does a loop whose jobs stopped
    running (here: the scheduler paused past the jobs' allowance); both resume after."""
    server = MeterServer(list(demo_meters().values()))
    await server.start()
    notify = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", notify.address)
    agent = await start_in_process(tmp_path, server.port)
    for job in list(agent.progress.allowance):  # short allowances for a short test
        agent.progress.expect(job, 1.0, time.monotonic())
    dog = asyncio.create_task(watchdog(0.1, agent.stalled))
    try:
        await asyncio.sleep(1.0)
        blocked_at = time.monotonic()
        time.sleep(1.5)  # the point of the test: a blocking call on the loop
        unblocked_at = time.monotonic()
        await asyncio.sleep(0.5)
        agent.scheduler.pause()
        await asyncio.sleep(3.0)
        stalled = agent.stalled()
        paused_pings = [t for t in notify.pings() if t > time.monotonic() - 1.5]
        agent.scheduler.resume()
        await asyncio.sleep(1.0)
    finally:
        dog.cancel()
        await agent.stop()
        await server.stop()
        notify.close()
    pings = notify.pings()
    assert [t for t in pings if blocked_at + 0.3 < t < unblocked_at] == []
    assert any(t > unblocked_at for t in pings)
    assert stalled and "poll every 0.25s" in stalled[0]
    assert paused_pings == []
    assert pings[-1] > time.monotonic() - 1.0  # resumed once the jobs ran again


@pytest.mark.slow
async def test_unreachable_meters_never_stop_the_pings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Progress is jobs running, not meters answering: a dead meter and a dead uplink keep
    the watchdog fed, and /healthz's check names the failing devices instead."""
    notify = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", notify.address)
    agent = await start_in_process(tmp_path, free_port())  # nothing listens there
    # every job must run within 2.5 s (a delivery to the dead uplink takes up to its 1 s
    # budget, more on a loaded machine): 4 s without a stall proves them all running
    for job in list(agent.progress.allowance):
        agent.progress.expect(job, 2.5, time.monotonic())
    dog = asyncio.create_task(watchdog(0.1, agent.stalled))
    try:
        await asyncio.sleep(4.0)
        stalled, health = agent.stalled(), agent.problems()
    finally:
        dog.cancel()
        await agent.stop()
        notify.close()
    assert stalled == []
    assert len(notify.pings()) >= 20
    assert any(problem.startswith("all 1 devices failing") for problem in health)


async def test_a_watchdog_kill_leaves_the_stack_of_the_hang_in_the_log(tmp_path: Path) -> None:
    """systemd's watchdog sends SIGABRT: the daemon prints each thread's stack before dying."""
    (tmp_path / "sync-token").write_text("t")
    config = tmp_path / "agent.yaml"
    config.write_text(agent_yaml(free_port(), tmp_path, devices=1))
    log = tmp_path / "agent.log"
    notify = NotifySocket()
    proc = await start_daemon(config, log, notify)
    try:
        await wait_until(lambda: "READY=1" in notify.lines(), 30)
        proc.send_signal(signal.SIGABRT)
        code = await asyncio.wait_for(proc.wait(), 30)
    finally:
        await stop_daemon(proc)
        notify.close()
    assert code == -signal.SIGABRT
    text = log.read_text()
    assert "Fatal Python error: Aborted" in text
    assert 'File "' in text.split("Fatal Python error: Aborted")[1]
