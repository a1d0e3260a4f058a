"""Faults across a region: agent → mosquitto → two receivers → PostgreSQL, all real processes.

The simulated meters feed a real `edge-agent run` publishing batches (format batch,
QoS 1) to a real mosquitto (persistence on), from which two `edge-agent receiver
--mqtt --share receivers` processes take them into one real PostgreSQL. While the
data flows: the agent is killed with SIGKILL ten times at random moments, the broker
is stopped and started twice by its PID, and one receiver is killed with SIGKILL while
it is storing a batch it has not acknowledged, then started again under its client
id. In the end the database holds exactly the intervals the agent computed, and the
energy each meter's counter advanced. A process cannot be time-travelled: real time,
1 s intervals, marked slow.

The agent runs with `require_subscriber: true`: mosquitto comes back from a restart
without the receivers' shared subscription until they subscribe again, and answers
what arrives meanwhile "No matching subscribers" (0x10) and drops it. Without the
setting this test finds those batches missing from the database: the first restart
keeps the receivers frozen until the agent has published to the new broker.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from agent.demo import RESOLUTION_KWH, demo_config, demo_meters, energy_check
from drivers.modbus.simulator import MeterServer
from tests.fixtures.daemon import free_port
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.plant import spawn_agent, wait_for_async
from tests.fixtures.postgres import running_server
from tests.fixtures.region import (
    PUBLISH,
    Central,
    MqttReceiver,
    TableLock,
    backends,
    buffer_view,
    central,
    lock_waiters,
    pending_since,
    publishes,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

GATEWAY = "demo-gw1"
INTERVAL = 1
DESTINATION = "region"
IN_START_UP = (2, 6, 9)
"""The rounds whose kill lands at a random moment after the start; the others wait until
the agent is connected to the broker, so the kill lands among sends, polls and commits."""
NO_SUBSCRIBERS = 16  # the PUBACK reason code (MQTT 5.0, 3.4.2.1)
IN_FLIGHT = 7
"""The round whose kill lands while a batch waits for its PUBACK (the broker frozen with
SIGSTOP, thawed after): the broker takes the batch, the next agent publishes it again
under the same key, and a receiver finds that key stored."""


def agent_config(workdir: Path, meters_port: int, broker_url: str) -> Path:
    """The demo plant delivering to the broker; its HTTP `sync` (required) points at a
    closed port and tries hourly: the broker is the only way out here."""
    text = demo_config(
        meters_port,
        f"http://127.0.0.1:{free_port()}",
        workdir,
        interval=INTERVAL,
        poll="250ms",
        every="1h",
    )
    text += (
        "http: {listen: '127.0.0.1:0'}\n"
        "destinations:\n"
        f"  - name: {DESTINATION}\n"
        f"    mqtt: {{url: '{broker_url}', format: batch, every: 500ms, max_batch: 6,"
        " timeout: 3s, keepalive: 5s, require_subscriber: true}\n"
    )
    config = workdir / "agent.yaml"
    config.write_text(text)
    (workdir / "sync-token").write_text("unused-token")
    return config


async def test_ten_agent_kills_two_broker_restarts_and_a_receiver_killed_mid_batch_lose_nothing(
    tmp_path: Path,
) -> None:
    """Every interval the agent computed is in PostgreSQL exactly once, none made up, and
    each device's delivered energy is what its meter advanced, after ten kill -9 of the
    agent, two broker restarts and a receiver killed while it held a batch unacknowledged."""
    rng = random.Random(13)
    with running_server() as postgres:
        database = postgres.create_database()
        broker = Mosquitto(tmp_path / "broker")
        broker.start()
        token = tmp_path / "receiver-token"
        token.write_text("region-token\n")
        receivers = {
            name: MqttReceiver(name, database, broker, token, tmp_path / f"{name}.log")
            for name in ("r1", "r2")
        }
        meters = demo_meters()
        server = MeterServer(list(meters.values()))
        await server.start()
        buffer, log = tmp_path / "buffer.db", tmp_path / "agent.log"
        config = agent_config(tmp_path, server.port, broker.url)
        agent: asyncio.subprocess.Process | None = None
        kills = restarts = 0
        resent_to_r1 = False
        try:
            for receiver in receivers.values():  # one after the other: one migrates the schema
                await receiver.start()
            agent = await spawn_agent(config, log)

            async def flowing() -> bool:
                return len((await _central(database)).intervals) >= 3

            await wait_for_async(flowing, 60)
            since = 0
            for round_ in range(1, 11):
                if round_ in IN_START_UP:  # reading its config, opening its buffer, first polls
                    await asyncio.sleep(rng.uniform(0.3, 2.0))
                elif round_ == IN_FLIGHT:  # a batch sent, its PUBACK not yet back
                    await _connected(broker, since)
                    await _past_its_birth(broker)
                    await _frozen_while_publishing(broker, buffer)
                else:  # connected: publishing its backlog, polling, committing
                    await _connected(broker, since)
                    await asyncio.sleep(rng.uniform(0.0, 1.5))
                agent.send_signal(signal.SIGKILL)
                assert await agent.wait() == -signal.SIGKILL
                if round_ == IN_FLIGHT:  # it takes the batch, and hears of the agent's death
                    assert broker.proc is not None
                    broker.proc.send_signal(signal.SIGCONT)
                kills += 1
                since = _agent_connections(broker)
                agent = await spawn_agent(config, log)
                if round_ in (3, 8):  # the broker goes away while the agent publishes
                    await _connected(broker, since)
                    await asyncio.sleep(rng.uniform(0.0, 1.0))
                    held = list(receivers.values()) if round_ == 3 else []
                    await _restart_broker(broker, held)
                    restarts += 1
                if round_ == 5:
                    resent_to_r1 = await _kill_a_receiver_mid_batch(receivers["r1"], database)
            restarted = time.time()  # the last agent: one of its own intervals must close

            async def drained() -> bool:
                owed = await asyncio.to_thread(buffer_view, buffer, DESTINATION)
                stored = await _central(database)
                closed_since = [k for k in owed.intervals if k[2] > restarted + INTERVAL]
                return (
                    owed.unsent == 0 and bool(closed_since) and set(stored.keys()) == owed.intervals
                )

            await _until(drained, 60)  # if not, the asserts below say what is missing
            agent.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(agent.wait(), 30) == 0, log.read_text()[-3000:]

            async def settled() -> bool:  # what the clean stop closed and sent, stored too
                owed = await asyncio.to_thread(buffer_view, buffer, DESTINATION)
                stored = await _central(database)
                return owed.unsent == 0 and set(stored.keys()) == owed.intervals

            await _until(settled, 30)
        finally:
            if agent is not None and agent.returncode is None:
                agent.kill()
                await agent.wait()
            codes = [await r.stop() for r in receivers.values()]
            broker.stop()
            await server.stop()
        owed = buffer_view(buffer, DESTINATION)
        stored = central(database, GATEWAY)
        codes_seen = set(_batches(broker))

    assert (kills, restarts, resent_to_r1) == (10, 2, True)
    assert NO_SUBSCRIBERS in codes_seen  # a batch met the restarted broker before the receivers
    assert codes == [0, 0], [r.tail() for r in receivers.values()]
    assert owed.unsent == 0
    keys = stored.keys()
    assert max(Counter(keys).values()) == 1  # none twice
    missing, made_up = owed.intervals - set(keys), set(keys) - owed.intervals
    assert (sorted(missing), sorted(made_up)) == ([], [])
    assert set(stored.events) == owed.events and len(stored.events) == len(owed.events)
    # every record was added by exactly one batch, and no batch brought one already stored
    # under another key: the agent resent what the broker had not acknowledged as it was
    assert (stored.batch_intervals, stored.duplicate_records) == (len(keys), 0)
    logs = {name: r.log.read_text(errors="replace") for name, r in receivers.items()}
    for name, text in logs.items():  # both took a share of the batches
        assert " stored " in text, (name, receivers[name].tail())
    assert any(" duplicate" in text for text in logs.values())  # IN_FLIGHT's batch, again
    check = energy_check(stored.as_records(), meters, INTERVAL)
    for name, device in check["devices"].items():
        assert device["intervals"] >= 10, name
        assert device["delivered_kwh"] == pytest.approx(
            device["metered_kwh"], abs=2 * RESOLUTION_KWH
        ), name


async def _kill_a_receiver_mid_batch(receiver: MqttReceiver, database: str) -> bool:
    """The intervals table locked, so every insert waits; once `receiver` waits on it (it
    is storing a batch it has not acknowledged), SIGKILL; the lock let go once its
    connections are gone (nothing of the batch committed), and the receiver started again
    under the same client id. True if the broker then sent it again what it held (DUP)."""
    lock = await asyncio.to_thread(TableLock, database)
    try:

        async def storing() -> bool:
            return receiver.name in await asyncio.to_thread(lock_waiters, database)

        await wait_for_async(storing, 40)
        await receiver.kill()

        async def gone() -> bool:
            return await asyncio.to_thread(backends, database, receiver.name) == 0

        await wait_for_async(gone, 20)
    finally:
        await asyncio.to_thread(lock.release)
    resent = receiver.broker_says(f"Sending PUBLISH to {receiver.name} (d1")
    await receiver.start()

    async def resent_again() -> bool:
        return receiver.broker_says(f"Sending PUBLISH to {receiver.name} (d1") > resent

    await wait_for_async(resent_again, 30)  # timed out: the broker did not resend what it held
    return True


async def _frozen_while_publishing(broker: Mosquitto, buffer: Path) -> None:
    """The broker stopped (SIGSTOP: connections stay open, nothing answered) until the agent
    has fixed a batch since, and has had a moment to write it to the socket."""
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGSTOP)
    frozen = time.time()

    async def publishing() -> bool:
        return await asyncio.to_thread(pending_since, buffer, DESTINATION, frozen)

    await wait_for_async(publishing, 60)
    await asyncio.sleep(0.5)  # from fixed in the buffer to written to the socket


async def _restart_broker(broker: Mosquitto, held: list[MqttReceiver]) -> None:
    """Stopped and started by its PID after an outage. The receivers in `held` are frozen
    meanwhile, and thawed once the agent has published to the restarted broker: it came
    back without their shared subscription, so that batch found no subscriber."""
    for receiver in held:
        receiver.freeze()
    try:
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(1.5)  # an outage: the receivers' reconnects back off
        before = len(_batches(broker))
        await asyncio.to_thread(broker.start)
        if held:

            async def published() -> bool:
                return len(_batches(broker)) > before

            await wait_for_async(published, 30)
    finally:
        for receiver in held:
            receiver.thaw()


def _batches(broker: Mosquitto) -> list[int]:
    """The PUBACK reason code of every batch of intervals the agent published."""
    return publishes(
        broker, f"edge-agent-{GATEWAY}-{DESTINATION}", f"edge-agent/{GATEWAY}/intervals"
    )


def _agent_connections(broker: Mosquitto) -> int:
    """How many times the agent has connected to the broker (its log, kept across restarts)."""
    return broker.logged().count(f"as edge-agent-{GATEWAY}-{DESTINATION} (")


async def _connected(broker: Mosquitto, since: int) -> None:
    async def more() -> bool:
        return _agent_connections(broker) > since

    await wait_for_async(more, 60)


async def _past_its_birth(broker: Mosquitto) -> None:
    """Until the agent, on its latest connection, has published a batch: its birth
    (`online`, awaited before any batch) is acknowledged, so a broker frozen now leaves it
    fixing and sending batches rather than waiting on the birth's PUBACK."""
    client = f"edge-agent-{GATEWAY}-{DESTINATION}"

    async def publishing() -> bool:
        log = broker.logged()
        latest = log[log.rfind(f"as {client} (") :]
        return any(
            found[1] == client and found[3] == f"edge-agent/{GATEWAY}/intervals"
            for found in PUBLISH.finditer(latest)
        )

    await wait_for_async(publishing, 60)


async def _until(predicate: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Until `await predicate()` is true or `timeout` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate() and loop.time() < deadline:
        await asyncio.sleep(0.25)


async def _central(database: str) -> Central:
    return await asyncio.to_thread(central, database, GATEWAY)
