"""The whole data path from outside: meters, agent process, receiver, a crash in the middle."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from agent.cli import parser
from agent.demo import RESOLUTION_KWH, delivered, energy_check
from tests.fixtures.plant import epoch, spawn_agent, start_plant, wait_for_async

pytestmark = pytest.mark.timeout(180)
INTERVAL = 1  # s: short intervals, so the run crosses many boundaries in little time
TOKEN = "e2e-token"


@pytest.mark.slow
def test_demo_delivers_what_the_meters_advanced() -> None:
    """`edge-agent demo --duration --json` ends with energy delivered = energy metered
    (2-second intervals: the same data path, a fifth of the wait)."""
    run = subprocess.run(
        [sys.executable, "-m", "agent", "demo", "--interval", "2s", "--duration", "8", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    totals = json.loads(run.stdout.strip().splitlines()[-1])
    assert totals["intervals_delivered"] >= 6
    assert abs(totals["difference_kwh"]) <= totals["resolution_kwh"] * 3
    for device in totals["devices"].values():
        assert device["intervals"] >= 2
        assert device["delivered_kwh"] > 0


@pytest.mark.parametrize("text", ["7s", "1.5s", "500ms", "1m", "soon"])
def test_demo_interval_must_divide_a_minute(text: str, capsys) -> None:
    """`demo --interval` refuses what emissions.intervals would, saying what would be right."""
    with pytest.raises(SystemExit) as stop:
        parser().parse_args(["demo", "--interval", text])
    assert stop.value.code == 2
    assert f"whole seconds dividing a minute, 1s to 30s, like 2s (got {text!r})" in (
        capsys.readouterr().err
    )
    assert parser().parse_args(["demo", "--interval", "30s"]).interval == 30.0


@pytest.mark.slow
def test_demo_stops_cleanly_on_ctrl_c() -> None:
    """Ctrl-C (SIGINT) ends the demo with exit 0 and its summary, leaving nothing running
    (2-second intervals: the first table comes after 1 s, not 5 s)."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "agent", "demo", "--interval", "2s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("buffered"):  # the first live table is complete
                break
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0
    assert any(line.startswith("main_incomer") for line in lines)
    assert "delivered" in rest and "the meters advanced" in rest


@pytest.mark.slow
async def test_sigkill_and_restart_lose_nothing_and_count_nothing_twice(tmp_path: Path) -> None:
    """Kill -9 mid-interval, down across boundaries, restart: each interval once, energy kept."""
    meters, server, receiver, config = await start_plant(
        tmp_path, TOKEN, interval=INTERVAL, poll="250ms", every="500ms"
    )
    log = tmp_path / "agent.log"
    agent = await spawn_agent(config, log)
    try:

        async def some_delivered() -> bool:
            return len(await delivered(receiver.url, TOKEN)) >= 3 * 3

        await wait_for_async(some_delivered, 60)
        await asyncio.sleep((INTERVAL / 2 - time.time()) % INTERVAL)  # to mid-interval
        agent.send_signal(signal.SIGKILL)
        assert await agent.wait() == -signal.SIGKILL
        before = len(await delivered(receiver.url, TOKEN))
        await asyncio.sleep(2 * INTERVAL + 1)  # down across at least two boundaries
        agent = await spawn_agent(config, log)

        async def more_delivered() -> bool:
            return len(await delivered(receiver.url, TOKEN)) >= before + 5 * 3

        await wait_for_async(more_delivered, 60)
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(agent.wait(), 30) == 0
        stored = await delivered(receiver.url, TOKEN)
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
        await server.stop()
        receiver.stop()

    by_device: dict[str, list[dict]] = defaultdict(list)
    for record in stored:
        if epoch(record["end"]) - epoch(record["start"]) == INTERVAL:
            by_device[record["device"]].append(record)
    for name, records in by_device.items():
        starts = sorted(epoch(r["start"]) for r in records)
        assert starts == [starts[0] + INTERVAL * k for k in range(len(starts))], (
            name
        )  # no hole, no twin
        assert "estimated" in {r["quality"] for r in records}, name  # the outage is flagged
    check = energy_check(stored, meters, INTERVAL)
    for name, device in check["devices"].items():
        assert device["delivered_kwh"] == pytest.approx(
            device["metered_kwh"], abs=2 * RESOLUTION_KWH
        ), (
            name,
            log.read_text()[-3000:],
        )
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        twins = db.execute(
            "SELECT device, start, length FROM intervals GROUP BY 1, 2, 3 HAVING count(*) > 1"
        ).fetchall()
        computed = db.execute("SELECT count(*) FROM intervals").fetchone()[0]
    assert twins == []  # the agent computed every interval once, whatever the receiver keeps
    assert computed == len(stored)
