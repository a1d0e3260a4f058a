"""A restarted broker without the receivers' shared subscription: `require_subscriber`.

Debian's mosquitto (2.0.11) keeps a receiver's persistent session across a restart
but not its shared subscription (`$share/...`): until the receiver subscribes again,
a batch published to it is answered PUBACK 0x10 "No matching subscribers" and
dropped. Found by tests/test_mqtt_region_faults.py: without the setting the agent
counts that as delivered and the batch is lost; with it the batch stays buffered
and goes out once a receiver is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from buffer import AsyncStore
from receiver._mqtt import MqttIngest
from receiver._store import Store
from tests.fixtures.mosquitto import Mosquitto
from tests.fixtures.mosquitto import publisher as fixtures_publisher
from tests.fixtures.uplink import fill

pytestmark = pytest.mark.timeout(60)


publisher = partial(
    fixtures_publisher,
    defaults={"max_batch": 5, "timeout": "5s", "every": "1s"},
)


@contextmanager
def receiving(central: Store, url: str) -> Iterator[MqttIngest]:
    """The reference receiver's MQTT ingest (client id r1, shared group `receivers`),
    subscribed, in a thread; disconnected cleanly at the end (its session stays)."""
    ingest = MqttIngest(central, url, threading.Event(), client_id="r1")
    thread = threading.Thread(target=ingest.run, daemon=True)
    thread.start()
    try:
        assert ingest.subscribed.wait(10), "the receiver did not subscribe"
        yield ingest
    finally:
        ingest.stop.set()
        thread.join(10)


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # another thread's progress: no clock of ours to move


def stored(central: Store) -> int:
    return int(central._read("SELECT count(*) FROM intervals", [])[0][0])


@pytest.mark.parametrize("require", [True, False])
async def test_a_restarted_broker_without_the_shared_subscription(
    store: AsyncStore, mosquitto: Mosquitto, tmp_path: Path, require: bool
) -> None:
    """The receiver subscribed once, then away; the broker restarted. With
    require_subscriber the batches wait in the buffer (0x10 is no delivery) and reach the
    receiver once it is back, each once; without it they are counted sent and lost."""
    central = Store(tmp_path / "central.db")
    try:
        with receiving(central, mosquitto.url):
            pass  # subscribed on a persistent session, then gone
        mosquitto.restart()
        await fill(store, 12)
        up = publisher(store, mosquitto.url, require_subscriber=require)
        sent = await up.deliver()
        if require:
            assert sent == 0
            assert "No matching subscribers" in (up.status.last_result or "")
            assert (await store.backlog())["destinations"]["broker"]["intervals"] == 12
        else:
            assert sent == 12  # acknowledged, though nobody took it
        with receiving(central, mosquitto.url) as ingest:
            sent += await up.deliver()
            await up.close()
            if require:  # the receiver commits in its own thread
                until(lambda: stored(central) == 12)
        assert sent == 12
        assert (await store.backlog())["destinations"]["broker"]["intervals"] == 0
        no_subscribers = mosquitto.log.read_text().count(", rc16)")  # PUBACK 0x10
        if require:
            assert stored(central) == 12 and ingest.counts.duplicates == 0
        else:  # the loss the setting prevents: the broker took and dropped every batch
            assert stored(central) == 0 and no_subscribers >= 1 + 3  # the birth, 3 batches
    finally:
        central.close()
