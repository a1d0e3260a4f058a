"""Several batches in flight against a real mosquitto: the broker or the agent dies mid-window,
and exactly the batches not acknowledged come again, under their keys, with their records."""

from __future__ import annotations

import asyncio
import json
import signal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from buffer import AsyncStore
from cloud_sync.mqtt.publisher import Publisher
from tests.fixtures.batches import GATEWAY
from tests.fixtures.mosquitto import Listener, Mosquitto
from tests.fixtures.mosquitto import publisher as fixtures_publisher
from tests.fixtures.plant import wait_for
from tests.fixtures.uplink import fill

pytestmark = pytest.mark.timeout(90)

TOPIC = f"edge-agent/{GATEWAY['id']}/intervals"


# these tests watch the broker and its log, not a receiver: some publish before
# anything subscribes (test_require_subscriber.py holds the default)
publisher = partial(
    fixtures_publisher,
    defaults={
        "max_batch": 5,
        "timeout": "5s",
        "in_flight": 4,
        "require_subscriber": False,
    },
)


async def pending(store: AsyncStore) -> dict[int, list[int]]:
    """The destination's pending batches: seq -> the interval seqs they hold."""

    def read() -> dict[int, list[int]]:
        db = store.store.db
        out = {}
        for b in db.query(
            "SELECT * FROM batches WHERE destination = 'broker' AND status = 'pending'"
        ):
            rows = db.execute(
                "SELECT seq FROM intervals WHERE seq BETWEEN ? AND ? ORDER BY seq",
                [b["intervals_lo"], b["intervals_hi"]],
            ).fetchall()
            out[b["seq"]] = [r[0] for r in rows]
        return out

    return await store.run(read)


def sent_keys(listener: Listener) -> list[int]:
    return [int(m.user["key"].rsplit(":", 1)[1]) for m in listener.on(TOPIC)]


async def test_the_broker_killed_mid_window_gets_exactly_the_unacknowledged_again(
    store: AsyncStore, mosquitto: Mosquitto
) -> None:
    """Two batches acknowledged; the broker frozen while four more wait for their PUBACKs
    (the window full), killed with SIGKILL and started again: the publisher's retry
    publishes those four again, in order, under their keys with their records; the two
    acknowledged are not sent again, and the cursor then stands past all six."""
    await fill(store, 10)
    up = publisher(store, mosquitto.url)
    assert await up.deliver() == 10
    acked = up.status.batches_sent
    assert acked == 2 and await pending(store) == {}
    await fill(store, 20, device="compressor")
    assert mosquitto.proc is not None
    mosquitto.proc.send_signal(signal.SIGSTOP)
    delivery = asyncio.create_task(up.deliver())
    await wait_for(lambda: len(up_window(up)) == 4)  # published, no PUBACK
    in_flight = await pending(store)
    assert len(in_flight) == 4 and all(len(seqs) == 5 for seqs in in_flight.values())
    assert (await store.backlog())["destinations"]["broker"]["intervals"] == 20
    mosquitto.proc.send_signal(signal.SIGKILL)
    mosquitto.proc.wait()
    mosquitto.start()
    listener = Listener(mosquitto.port, TOPIC)
    sent = await delivery
    if sent < 20:  # the tries ran out while the broker was away: the next run
        sent += await up.deliver()
    assert sent == 20
    listener.wait_for(lambda: len(listener.on(TOPIC)) >= 4)
    await up.close()
    listener.close()
    assert sent_keys(listener) == sorted(in_flight)  # exactly those, in order, once
    for message in listener.on(TOPIC):
        body = message.json()
        records = [r["start"] for r in body["intervals"]]
        assert len(records) == len(in_flight[body["sequence"]]) == 5
    assert await pending(store) == {}
    assert (await store.backlog())["destinations"]["broker"]["intervals"] == 0


async def test_an_agent_killed_mid_window_resends_its_pending_batches_after_restart(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The agent's buffer closed (as by kill -9) while four batches wait for their PUBACKs
    from a frozen broker: a new publisher on the same buffer publishes exactly those four
    first, under the same keys and bytes as before, then the rest under new keys."""
    path = tmp_path / "buffer.db"
    store = AsyncStore(path, destinations={"broker": None})
    await fill(store, 20)
    up = publisher(store, mosquitto.url, timeout="30s")
    await up._connect()
    listener = Listener(mosquitto.port, TOPIC)
    assert mosquitto.proc is not None
    mosquitto.proc.send_signal(signal.SIGSTOP)
    delivery = asyncio.create_task(up.deliver())
    await wait_for(lambda: len(up_window(up)) == 4)
    before = {f.batch.seq: f.messages[0].payload for f in up_window(up)}
    assert len(before) == 4
    in_flight = await pending(store)
    assert sorted(before) == sorted(in_flight)
    delivery.cancel()  # the agent gone: nothing more from this publisher, no clean stop
    await up.link.drop()
    store.close()
    mosquitto.proc.send_signal(signal.SIGCONT)  # what it got before the "kill" goes out too

    store = AsyncStore(path, destinations={"broker": None})
    await fill(store, 10, device="compressor")
    again = publisher(store, mosquitto.url)
    assert await again.deliver() == 30
    await again.close()
    store.close()
    listener.wait_for(lambda: len(set(sent_keys(listener))) >= 6)
    listener.close()
    keys = sent_keys(listener)
    resent = [k for k in keys if k in before]
    assert sorted(set(resent)) == sorted(before)
    later = [k for k in keys if k not in before]
    assert len(set(later)) == 2 and min(later) > max(before)  # the new records, new keys
    for message in listener.on(TOPIC):
        seq = json.loads(message.payload)["sequence"]
        if seq in before:
            assert message.payload == before[seq]  # the same bytes under the same key


async def test_the_window_keeps_to_the_brokers_receive_maximum(
    store: AsyncStore, tmp_path: Path
) -> None:
    """A broker that takes two QoS 1 messages unacknowledged (mosquitto's
    max_inflight_messages, sent as Receive Maximum in its CONNACK): the publisher asked
    for eight in flight keeps to two, and everything arrives once."""
    broker = Mosquitto(tmp_path / "small-broker")
    broker.config.write_text(
        broker.config.read_text().replace("max_inflight_messages 0", "max_inflight_messages 2")
    )
    broker.start()
    try:
        await fill(store, 40)
        listener = Listener(broker.port, TOPIC)
        up = publisher(store, broker.url, in_flight=8)
        seen: list[int] = []
        send = up.link.send

        async def counting(message: Any) -> asyncio.Future[None]:
            seen.append(len(up.link._acks))  # waiting for their PUBACK when this one goes
            return await send(message)

        up.link.send = counting  # type: ignore[method-assign]
        assert await up.deliver() == 40
        assert up.link.receive_max == 2
        listener.wait_for(lambda: len(listener.on(TOPIC)) >= 8)
        await up.close()
        listener.close()
    finally:
        broker.stop()
    assert max(seen) <= 2
    keys = sent_keys(listener)
    assert len(keys) == len(set(keys)) == 8


def up_window(up: Publisher) -> list[Any]:
    """The batches the publisher has in flight now (its running delivery's window)."""
    return list(up.run.window) if up.run is not None else []
