"""MQTT ingest: batches from a real mosquitto on a shared subscription, stored once each,
acknowledged only after the commit; two receiver processes split the load, and one
killed with SIGKILL mid-way loses and doubles nothing."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import CallbackAPIVersion, Client, MQTTv5

from receiver._mqtt import MqttIngest
from receiver._request import Refused
from receiver._store import Store
from tests.fixtures.batches import GATEWAY, batch, interval, key
from tests.fixtures.daemon import free_port
from tests.fixtures.mosquitto import Mosquitto, publish_props

pytestmark = pytest.mark.timeout(120)
TOPIC = f"edge-agent/{GATEWAY['id']}/intervals"


@contextmanager
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


def sender(port: int) -> Client:
    client = Client(CallbackAPIVersion.VERSION2, client_id="test-sender", protocol=MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def document(sequence: int) -> dict:
    start = f"2026-11-26T{8 + sequence // 60 % 12:02d}:{sequence % 60:02d}:00+08:00"
    return batch(sequence, [interval("main_incomer", start, 1, kwh=sequence / 10)])


@contextmanager
def running(ingest: MqttIngest) -> Iterator[MqttIngest]:
    """`ingest` on a thread of its own, subscribed; stopped and joined on leaving."""
    thread = threading.Thread(target=ingest.run, daemon=True)
    thread.start()
    try:
        assert ingest.subscribed.wait(10)
        yield ingest
    finally:
        ingest.stop.set()
        thread.join(10)
    assert not thread.is_alive(), "the ingest did not stop"


def stored_keys(db: Path) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        return [row[0] for row in conn.execute("SELECT key FROM batches")]


def test_batches_are_stored_once_and_a_malformed_one_is_acknowledged(tmp_path: Path) -> None:
    """Plain and gzip batches, one sent twice, one that is not a batch, one whose key
    does not match its body: two stored, one duplicate, two malformed; all acknowledged
    (a fresh subscriber of the same session gets nothing again)."""
    with broker(tmp_path) as b:
        store = Store(tmp_path / "central.db")
        with running(MqttIngest(store, b.url, threading.Event(), client_id="r1")) as ingest:
            client = sender(b.port)
            one, two = document(1), document(2)
            for payload, props in (
                (json.dumps(one).encode(), publish_props(key(one))),
                (gzip.compress(json.dumps(two).encode()), publish_props(key(two))),
                (json.dumps(one).encode(), publish_props(key(one))),
                (b"not json at all", publish_props(key(one))),
                (json.dumps(two).encode(), publish_props(f"{GATEWAY['id']}:99")),
            ):
                client.publish(TOPIC, payload, qos=1, properties=props).wait_for_publish(5)
            acked = [f"Received PUBACK from r1 (Mid: {n}," for n in range(1, 6)]
            wait_for(lambda: all(a in b.log.read_text() for a in acked), 10, "5 PUBACKs")
            client.disconnect()
            client.loop_stop()
        assert (ingest.counts.stored, ingest.counts.duplicates) == (2, 1)
        assert (ingest.counts.malformed, ingest.counts.failed) == (2, 0)
        assert sorted(stored_keys(tmp_path / "central.db")) == [key(one), key(two)]
        with running(MqttIngest(store, b.url, threading.Event(), client_id="r1")) as again:
            time.sleep(1.0)  # anything unacknowledged would come now
        assert sum(vars(again.counts).values()) == 0
        store.close()


def test_a_batch_whose_key_another_holds_is_kept_under_its_digest(tmp_path: Path) -> None:
    """An agent whose buffer was replaced numbers its batches from 1 again: over MQTT it
    cannot hear the 409 that makes it renumber, so the receiver keeps the batch under its
    key and body digest, and its records are stored (each still once)."""
    with broker(tmp_path) as b:
        store = Store(tmp_path / "central.db")
        with running(MqttIngest(store, b.url, threading.Event(), client_id="r2")) as ingest:
            client = sender(b.port)
            first = document(1)
            again = batch(1, [interval("press_line_2", "2026-11-27T08:00:00+08:00", 1, kwh=2.5)])
            for doc in (first, again, again):
                props = publish_props(key(doc))
                client.publish(TOPIC, json.dumps(doc).encode(), qos=1, properties=props)
            wait_for(lambda: ingest.counts.stored + ingest.counts.duplicates == 3, 10, "3 batches")
            client.disconnect()
            client.loop_stop()
        keys = sorted(stored_keys(tmp_path / "central.db"))
        assert keys[0] == key(first) and keys[1].startswith(f"{key(first)}~")
        assert (ingest.counts.stored, ingest.counts.duplicates, ingest.counts.malformed) == (
            2, 1, 0
        )  # fmt: skip
        with closing(sqlite3.connect(tmp_path / "central.db")) as conn:
            devices = sorted(row[0] for row in conn.execute("SELECT device FROM intervals"))
        assert devices == ["main_incomer", "press_line_2"]
        store.close()


def test_a_store_that_fails_keeps_the_message_and_backs_off(tmp_path: Path) -> None:
    """A store that cannot write (closed here; a full disk in the field) leaves the batch
    with the broker, and the receiver reconnects after growing waits rather than at once:
    a few connections in three seconds, not dozens; the batch is stored once it can be."""
    with broker(tmp_path) as b:
        broken = Store(tmp_path / "central.db")
        broken.close()
        with running(MqttIngest(broken, b.url, threading.Event(), client_id="r3")) as ingest:
            client = sender(b.port)
            one = document(1)
            props = publish_props(key(one))
            client.publish(TOPIC, json.dumps(one).encode(), qos=1, properties=props)
            wait_for(lambda: ingest.counts.failed >= 1, 10, "the first failure")
            time.sleep(3.0)  # the waits after each failure, measured as connections made
            connects = b.log.read_text().count("as r3 (")
        assert ingest.counts.stored == 0 and 2 <= connects <= 6, connects
        healed = MqttIngest(Store(tmp_path / "central.db"), b.url, threading.Event(),
                            client_id="r3")  # fmt: skip
        with running(healed):
            wait_for(lambda: healed.counts.stored == 1, 10, "the batch stored after all")
        client.disconnect()
        client.loop_stop()
        assert stored_keys(tmp_path / "central.db") == [key(one)]
        healed.store.close()


def receiver(db: Path, url: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agent", "-v", "receiver", "--db", str(db),
             "--port", str(free_port()), "--mqtt", url, "--share", "receivers",
             "--mqtt-client-id", name],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_two_receivers_split_a_shared_subscription_and_a_kill_loses_nothing(
    tmp_path: Path,
) -> None:
    """Two `edge-agent receiver --mqtt --share receivers` processes on one database; 400
    batches published; one receiver killed with SIGKILL mid-way and started again under
    its client id: every batch stored exactly once, and both took a share."""
    count = 400
    db = tmp_path / "central.db"
    Store(db).close()  # the schema, before two processes race to make it
    logs = {name: tmp_path / f"{name}.log" for name in ("r1", "r2")}
    with broker(tmp_path) as b:
        procs = {name: receiver(db, b.url, name, log) for name, log in logs.items()}
        try:
            wait_for(lambda: all("connected to" in p.read_text() for p in logs.values()),
                     20, "both receivers connected")  # fmt: skip
            subscribed = [f"Received SUBSCRIBE from {name}" for name in logs]
            wait_for(lambda: all(s in b.log.read_text() for s in subscribed), 20,
                     "both receivers subscribed")  # fmt: skip
            client = sender(b.port)
            sent = [document(n) for n in range(1, count + 1)]
            killed = False
            for n, doc in enumerate(sent):
                info = client.publish(TOPIC, json.dumps(doc).encode(), qos=1,
                                      properties=publish_props(key(doc)))  # fmt: skip
                info.wait_for_publish(5)
                if n == count // 3:
                    wait_for(lambda: len(stored_keys(db)) >= count // 5, 30, "a fifth stored")
                    procs["r1"].send_signal(signal.SIGKILL)
                    procs["r1"].wait()
                    killed = True
                if killed and n == count // 2:
                    procs["r1"] = receiver(db, b.url, "r1", logs["r1"])
            client.disconnect()
            client.loop_stop()
            wait_for(lambda: len(stored_keys(db)) >= count, 60, "every batch stored")
            time.sleep(1.0)  # a double would show now
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(15)
    keys = stored_keys(db)
    assert sorted(keys) == sorted(key(d) for d in sent)
    with closing(sqlite3.connect(db)) as conn:
        (intervals,) = conn.execute("SELECT count(*) FROM intervals").fetchone()
        (energy,) = conn.execute("SELECT sum(quantity) FROM intervals").fetchone()
    assert intervals == count
    assert energy == pytest.approx(sum(n / 10 for n in range(1, count + 1)))
    for name, log in logs.items():  # both took a share
        assert "stored" in log.read_text(), (name, log.read_text()[-2000:])
    assert os.path.exists(db)


@settings(max_examples=200)
@given(payload=st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode),
                         st.just(gzip.compress(b"[1, 2")), st.just(b"\x1f\x8b\x08garbage")),
       key_=st.one_of(st.none(), st.text(max_size=40)))  # fmt: skip
def test_garbage_is_refused_never_stored_never_a_crash(
    tmp_path_factory: pytest.TempPathFactory, payload: bytes, key_: str | None
) -> None:
    """Whatever bytes and key property arrive, ingest raises Refused (counted, then
    acknowledged by the caller) or stores a valid batch; nothing else escapes."""
    store = Store(tmp_path_factory.mktemp("fuzz") / "central.db")
    ingest = MqttIngest(store, "mqtt://127.0.0.1:9", threading.Event())
    try:
        ingest.ingest(payload, key_)
    except Refused:
        assert stored_keys_of(store) == []
    finally:
        store.close()


def stored_keys_of(store: Store) -> list[str]:
    return [row[0] for row in store._read("SELECT key FROM batches", [])]


def test_a_wrong_mqtt_address_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A login in the URL (it would be printed and ignored) or another scheme: exit 64 with
    what is right; an unreadable credentials file: 66."""
    from agent.cli import main

    db = str(tmp_path / "r.db")
    base = ["receiver", "--db", db, "--port", "0"]
    assert main([*base, "--mqtt", "mqtt://user:secret@127.0.0.1:1"]) == os.EX_USAGE
    err = capsys.readouterr().err
    assert "--mqtt-credentials-file" in err and "secret" not in err and "Traceback" not in err
    assert main([*base, "--mqtt", "mqtts://127.0.0.1:1"]) == os.EX_USAGE
    missing = str(tmp_path / "nope")
    args = [*base, "--mqtt", "mqtt://127.0.0.1:1", "--mqtt-credentials-file", missing]
    assert main(args) == os.EX_NOINPUT
    assert "--mqtt-credentials-file" in capsys.readouterr().err
