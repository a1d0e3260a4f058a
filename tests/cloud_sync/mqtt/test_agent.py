"""The mqtt destination in the real daemon: `edge-agent run` as a process polls the demo
meters and publishes to a real mosquitto beside the HTTP receiver. SIGKILL mid-delivery
and a restart: what was not acknowledged comes again under the same key; the broker
publishes the will. The broker hung: the HTTP destination stays on time.

A process cannot be time-travelled: these run in real time on 2 s intervals (slow).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from tests.fixtures.daemon import stop_daemon
from tests.fixtures.hj212_plant import receiver_rows
from tests.fixtures.mosquitto import Listener, Mosquitto
from tests.fixtures.plant import spawn_agent, start_plant, wait_for_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TOKEN = "mqtt-test-token"
INTERVAL = 1.0  # s: both tests wait out intervals in real time
GW = "demo-gw1"
DATA = f"edge-agent/{GW}/intervals"
STATUS = f"edge-agent/{GW}/status"


@dataclass
class Site:
    config: Path
    log: Path
    broker: Mosquitto
    listener: Listener
    central: Path

    @property
    def buffer(self) -> Path:
        return self.config.parent / "buffer.db"

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


@asynccontextmanager
async def site(tmp_path: Path, **mqtt: object) -> AsyncIterator[Site]:
    _, server, receiver, config = await start_plant(
        tmp_path, TOKEN, interval=INTERVAL, poll="250ms", every="1s"
    )
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    settings = {"url": broker.url, "every": "1s", "max_batch": 4, "timeout": "3s"} | mqtt
    inline = ", ".join(f"{k}: {json.dumps(v)}" for k, v in settings.items())
    with config.open("a") as out:
        out.write(f"destinations:\n  - name: broker\n    mqtt: {{{inline}}}\n")
    listener = Listener(broker.port, f"edge-agent/{GW}/#", client_id="test-listener")
    try:
        yield Site(config, tmp_path / "agent.log", broker, listener, tmp_path / "central.db")
    finally:
        listener.close()
        broker.stop()
        receiver.stop()
        await server.stop()


def owed(buffer: Path) -> set[tuple[str, float, float]]:
    """(device, start, length) computed and not acknowledged to the broker yet."""
    with closing(sqlite3.connect(f"file:{buffer}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT device, start, length FROM intervals"
            " WHERE seq > (SELECT intervals_acked FROM destinations WHERE name = 'broker')"
        )
        return set(rows.fetchall())


def computed(buffer: Path) -> set[tuple[str, float, float]]:
    with closing(sqlite3.connect(f"file:{buffer}?mode=ro", uri=True)) as db:
        return set(db.execute("SELECT device, start, length FROM intervals").fetchall())


def received(listener: Listener) -> dict[tuple[str, str, str], set[str]]:
    """(device, start, end) -> the keys it arrived under; asserts that a key seen twice
    carried the same bytes both times."""
    by_key: dict[str, bytes] = {}
    found: dict[tuple[str, str, str], set[str]] = {}
    for message in listener.on(DATA):
        key = message.user["key"]
        assert by_key.setdefault(key, message.payload) == message.payload, key
        document = message.json()
        assert key == f"{document['gateway']['id']}:{document['sequence']}"
        for record in document["intervals"]:
            found.setdefault((record["device"], record["start"], record["end"]), set()).add(key)
    return found


def as_rows(found: dict[tuple[str, str, str], set[str]]) -> set[tuple[str, float, float]]:
    rows = set()
    for device, start, end in found:
        a, b = datetime.fromisoformat(start).timestamp(), datetime.fromisoformat(end).timestamp()
        rows.add((device, a, b - a))
    return rows


def status(listener: Listener) -> str | None:
    messages = listener.on(STATUS)
    return json.loads(messages[-1].payload)["state"] if messages else None


async def test_kill_9_mid_delivery_resends_the_unacknowledged_under_the_same_key(
    tmp_path: Path,
) -> None:
    """The broker frozen (SIGSTOP) while a batch waits for its PUBACK, the agent killed
    with SIGKILL, the broker thawed: it publishes the will (offline); the agent started
    again publishes the batch again under the same key and bytes; in the end every
    interval the agent acknowledged arrived, each under one key only."""
    async with site(tmp_path) as s:
        agent = await spawn_agent(s.config, s.log)
        await wait_for_async(lambda: _async(len(s.listener.on(DATA)) >= 2), 40)
        assert status(s.listener) == "online"
        assert s.broker.proc is not None
        s.broker.proc.send_signal(signal.SIGSTOP)
        await asyncio.sleep(2.5)  # the next batch is published and waits for its PUBACK
        agent.kill()
        await agent.wait()
        s.broker.proc.send_signal(signal.SIGCONT)
        await wait_for_async(lambda: _async(status(s.listener) == "offline"), 20)
        before = set(m.user["key"] for m in s.listener.on(DATA))
        agent = await spawn_agent(s.config, s.log)
        await wait_for_async(
            lambda: _async(len({m.user["key"] for m in s.listener.on(DATA)} - before) >= 2), 40
        )
        assert await stop_daemon(agent) == 0, s.tail()
        # said by the clean stop, after its last batch
        await wait_for_async(lambda: _async(status(s.listener) == "offline"), 10)
        found = received(s.listener)
        assert status(s.listener) == "offline"
    keys = [m.user["key"] for m in s.listener.on(DATA)]
    assert len(keys) > len(set(keys)), "no batch was resent: the kill missed the delivery"
    assert all(len(those) == 1 for those in found.values())  # one key per interval
    acknowledged = computed(s.buffer) - owed(s.buffer)
    assert acknowledged <= as_rows(found)
    assert len(acknowledged) >= 4


async def test_a_hung_broker_never_delays_the_http_destination(tmp_path: Path) -> None:
    """The broker frozen for five intervals (connections accepted, nothing answered): the
    receiver gets every interval of that time on time; the broker thawed, it gets them
    too, each once."""
    async with site(tmp_path) as s:
        agent = await spawn_agent(s.config, s.log)
        await wait_for_async(lambda: _async(len(s.listener.on(DATA)) >= 1), 40)
        assert s.broker.proc is not None
        s.broker.proc.send_signal(signal.SIGSTOP)
        frozen = time.time()
        await asyncio.sleep(5 * INTERVAL)
        thawed = time.time()
        s.broker.proc.send_signal(signal.SIGCONT)
        await wait_for_async(lambda: _async(not _owed_before(s.buffer, thawed)), 40)
        await asyncio.sleep(2.5)  # the status file is written every few seconds
        shown = subprocess.run(
            [sys.executable, "-m", "agent", "status", "-c", str(s.config)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert await stop_daemon(agent) == 0, s.tail()
        found = received(s.listener)
    late = [(r, r.received - r.end) for r in receiver_rows(s.central) if frozen <= r.end <= thawed]
    assert len(late) >= 3 * 3, late
    assert max(lag for _, lag in late) <= 3.0, late
    assert "last delivery to broker: connected" in shown.stdout, shown.stdout
    assert all(len(those) == 1 for those in found.values())
    assert {r for r in computed(s.buffer) if r[1] + r[2] <= thawed} <= as_rows(found)


def _owed_before(buffer: Path, moment: float) -> bool:
    return any(start + length <= moment for _, start, length in owed(buffer))


async def _async(value: bool) -> bool:
    return value
