"""The mqtt destination against a real mosquitto: QoS 1, the cursor moved by PUBACK alone,
the same key after a broker restart, the payload formats, birth and will."""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest

from buffer import AsyncStore
from cloud_sync.base import Identity
from cloud_sync.mqtt.publisher import make
from cloud_sync.mqtt.settings import MqttSettings
from domain.errors import SettingUnusable
from tests.fixtures.batches import GATEWAY
from tests.fixtures.mosquitto import Listener, Mosquitto, retained
from tests.fixtures.mosquitto import publisher as fixtures_publisher
from tests.fixtures.pki import make_pki
from tests.fixtures.plant import wait_for
from tests.fixtures.uplink import fill

pytestmark = pytest.mark.timeout(60)

TOPIC = f"edge-agent/{GATEWAY['id']}/intervals"
STATUS = f"edge-agent/{GATEWAY['id']}/status"


# these tests watch the broker and its log, not a receiver: some publish before
# anything subscribes (test_require_subscriber.py holds the default)
publisher = partial(
    fixtures_publisher,
    defaults={"max_batch": 10, "timeout": "5s", "require_subscriber": False},
)


async def test_every_batch_arrives_once_and_the_cursor_moves_on_puback(
    store: AsyncStore, mosquitto: Mosquitto
) -> None:
    """25 intervals in batches of 10: three messages, each the HTTP batch document with
    its key in the body and as a user property; the backlog is empty after."""
    sent = await fill(store, 25)
    listener = Listener(mosquitto.port, TOPIC)
    up = publisher(store, mosquitto.url)
    assert await up.deliver() == 25
    listener.wait_for(lambda: len(listener.on(TOPIC)) == 3)
    await up.close()
    listener.close()
    documents = [m.json() for m in listener.on(TOPIC)]
    keys = [m.user["key"] for m in listener.on(TOPIC)]
    assert keys == [f"{d['gateway']['id']}:{d['sequence']}" for d in documents]
    assert len(set(keys)) == 3
    starts = [i["start"] for d in documents for i in d["intervals"]]
    assert starts == [r["start"] for r in sent]
    assert all(m.content_type == "application/json" for m in listener.on(TOPIC))
    assert (await store.backlog())["destinations"]["broker"]["intervals"] == 0
    assert (up.status.batches_sent, up.status.records_sent) == (3, 25)


async def test_a_broker_down_keeps_the_backlog_and_a_restart_delivers_it_once(
    store: AsyncStore, mosquitto: Mosquitto
) -> None:
    """Broker stopped: nothing is acknowledged and the agent keeps buffering; restarted
    (its session kept on disk): everything arrives, each key once."""
    await fill(store, 5)
    listener = Listener(mosquitto.port, TOPIC, client_id="listener")
    up = publisher(store, mosquitto.url, max_batch=5)
    assert await up.deliver() == 5
    mosquitto.stop()
    listener.close()
    await fill(store, 12, device="compressor")
    assert await up.deliver() == 0
    assert up.status.failures >= 1 and up.status.connected is False
    assert (await store.backlog())["destinations"]["broker"]["intervals"] == 12
    mosquitto.start()
    listener = Listener(mosquitto.port, TOPIC, client_id="listener")
    assert await up.deliver() == 12
    listener.wait_for(lambda: len(listener.on(TOPIC)) >= 3)
    await up.close()
    listener.close()
    keys = [m.user["key"] for m in listener.on(TOPIC)]
    assert len(keys) == len(set(keys)) == 3
    assert sum(len(m.json()["intervals"]) for m in listener.on(TOPIC)) == 12


async def test_a_message_the_broker_refuses_is_not_acknowledged(
    store: AsyncStore, tmp_path: Path
) -> None:
    """An ACL that forbids the topic: mosquitto answers PUBACK 0x87 (MQTT 5), the batch
    stays pending, one sync_refused event says why, and nothing is retried in a loop."""
    broker = Mosquitto(tmp_path / "acl-broker", acl="topic readwrite elsewhere/#\n")
    broker.start()
    try:
        await fill(store, 3)
        up = publisher(store, broker.url, status_topic="elsewhere/{gateway}")
        assert await up.deliver() == 0
        assert await up.deliver() == 0  # held: no second try inside the pause
        await up.close()
    finally:
        broker.stop()
    assert "Not authorized" in up.status.last_result
    assert (await store.backlog())["destinations"]["broker"]["intervals"] == 3
    events = await store.run(
        lambda: [r["message"] for r in store.store.db.query("SELECT * FROM events")]
    )
    assert len(events) == 1 and "refused" in events[0]


async def test_gzip_batches_say_so_and_inflate_to_the_document(
    store: AsyncStore, mosquitto: Mosquitto
) -> None:
    sent = await fill(store, 4)
    listener = Listener(mosquitto.port, TOPIC)
    up = publisher(store, mosquitto.url, gzip=True)
    assert await up.deliver() == 4
    listener.wait_for(lambda: len(listener.on(TOPIC)) == 1)
    await up.close()
    listener.close()
    (message,) = listener.on(TOPIC)
    assert message.content_type == "application/json; encoding=gzip"
    assert message.user["content-encoding"] == "gzip" and message.payload_format == 0
    document = json.loads(gzip.decompress(message.payload))
    assert [i["start"] for i in document["intervals"]] == [r["start"] for r in sent]
    assert message.user["key"] == f"{GATEWAY['id']}:{document['sequence']}"


async def test_thingsboard_gateway_telemetry(store: AsyncStore, mosquitto: Mosquitto) -> None:
    """ThingsBoard's gateway API, Telemetry (thingsboard.io/docs/reference/gateway-api/
    telemetry/): topic v1/gateway/telemetry, a JSON object of device name -> array of
    {"ts": Unix milliseconds, "values": {key: value}}. Decoded as ThingsBoard would."""
    incomer = await fill(store, 3)
    compressor = await fill(store, 2, device="compressor")
    listener = Listener(mosquitto.port, "v1/gateway/telemetry")
    up = publisher(store, mosquitto.url, format="thingsboard")
    assert await up.deliver() == 5
    listener.wait_for(lambda: len(listener.on("v1/gateway/telemetry")) == 1)
    await up.close()
    listener.close()
    (message,) = listener.on("v1/gateway/telemetry")
    telemetry = message.json()
    assert set(telemetry) == {"main_incomer", "compressor"}
    for device, records in (("main_incomer", incomer), ("compressor", compressor)):
        entries = telemetry[device]
        assert isinstance(entries, list)
        for entry, record in zip(entries, records, strict=True):
            assert set(entry) == {"ts", "values"}
            assert isinstance(entry["ts"], int)  # milliseconds, as the page says
            assert entry["ts"] == int(datetime.fromisoformat(record["start"]).timestamp()) * 1000
            values = entry["values"]
            assert values["kwh_1m"] == record["kwh"] and values["co2_kg_1m"] == record["co2_kg"]
            assert all(isinstance(v, (int, float, str)) for v in values.values())
    assert message.user["key"].startswith(f"{GATEWAY['id']}:")


async def test_birth_on_connect_and_offline_on_a_clean_stop(
    store: AsyncStore, mosquitto: Mosquitto
) -> None:
    await fill(store, 1)
    up = publisher(store, mosquitto.url)
    assert await up.deliver() == 1
    birth = retained(mosquitto.port, STATUS)
    assert birth is not None and birth.json()["state"] == "online"
    assert birth.json()["gateway"] == GATEWAY["id"] and birth.json()["version"]
    await up.close()
    stopped = retained(mosquitto.port, STATUS)
    assert stopped is not None and stopped.json()["state"] == "offline"


async def test_mqtt_3_1_1_has_the_key_in_the_payload(
    store: AsyncStore, mosquitto: Mosquitto
) -> None:
    await fill(store, 2)
    listener = Listener(mosquitto.port, TOPIC)
    up = publisher(store, mosquitto.url, protocol="3.1.1")
    assert await up.deliver() == 2
    listener.wait_for(lambda: len(listener.on(TOPIC)) == 1)
    await up.close()
    listener.close()
    (message,) = listener.on(TOPIC)
    assert message.user == {}  # 3.1.1 has no properties
    assert message.json()["sequence"] >= 1 and message.json()["gateway"]["id"] == GATEWAY["id"]


async def test_tls_with_a_private_ca_and_a_client_certificate(
    store: AsyncStore, tmp_path: Path
) -> None:
    """mosquitto requiring a client certificate of the private CA: delivered over mqtts
    with the HTTP destination's TLS settings; without the certificate, nothing moves."""
    pki = make_pki(tmp_path)
    broker = Mosquitto(tmp_path / "tls-broker", pki=pki)
    broker.start()
    try:
        await fill(store, 3)
        url = f"mqtts://127.0.0.1:{broker.tls_port}"
        bare = publisher(store, url, ca_file=str(pki.ca))
        assert await bare.deliver() == 0  # no client certificate: the handshake fails
        await bare.close()
        listener = Listener(broker.port, TOPIC)
        up = publisher(store, url, ca_file=str(pki.ca), client_cert=str(pki.client_cert),
                       client_key=str(pki.client_key))  # fmt: skip
        assert await up.deliver() == 3
        listener.wait_for(lambda: len(listener.on(TOPIC)) == 1)
        await up.close()
        listener.close()
    finally:
        broker.stop()
    assert up.status.last_result == "acknowledged"


async def test_credentials_from_a_file(store: AsyncStore, tmp_path: Path) -> None:
    """Username and password from the credential file; a wrong password is a refusal
    (kept, one event), never a loop, and the password is in no log line."""
    broker = Mosquitto(tmp_path / "auth-broker", users={"gw1": "s3cret-pw"})
    broker.start()
    wrong, right = tmp_path / "wrong", tmp_path / "right"
    wrong.write_text("gw1\nnot-it\n")
    right.write_text("gw1\ns3cret-pw\n")
    try:
        await fill(store, 2)
        refused = publisher(store, broker.url, credentials_file=str(wrong))
        assert await refused.deliver() == 0
        await refused.close()
        assert "refused the connection" in refused.status.last_result
        up = publisher(store, broker.url, credentials_file=str(right))
        assert await up.deliver() == 2 + 1  # and the event saying it was refused
        await up.close()
    finally:
        broker.stop()
    assert "s3cret-pw" not in broker.tail()


def test_an_unreadable_credential_file_names_its_field(tmp_path: Path) -> None:
    settings = MqttSettings(url="mqtt://127.0.0.1:1883", credentials_file=str(tmp_path / "no"))
    with pytest.raises(SettingUnusable) as caught:
        make("broker", settings, Identity(GATEWAY, "cn-mee-2022"), setting="x")
    assert caught.value.field == "credentials_file" and "cannot read" in str(caught.value)
    (tmp_path / "empty").write_text("\n")
    settings = MqttSettings(url="mqtt://127.0.0.1:1883", credentials_file=str(tmp_path / "empty"))
    with pytest.raises(SettingUnusable, match="first line must hold the username"):
        make("broker", settings, Identity(GATEWAY, "cn-mee-2022"), setting="x")


async def test_a_publish_in_flight_when_the_broker_dies_comes_again_under_its_key(
    store: AsyncStore, mosquitto: Mosquitto
) -> None:
    """The broker frozen while a batch waits for its PUBACK, then killed and started
    again: the publisher's retry publishes the same bytes under the same key, and the
    cursor moves only then."""
    await fill(store, 6)
    up = publisher(store, mosquitto.url, max_batch=6, timeout="1s")
    await up._connect()  # connected before the freeze
    assert mosquitto.proc is not None
    mosquitto.proc.send_signal(signal.SIGSTOP)
    delivery = asyncio.create_task(up.deliver())
    await wait_for(lambda: up.run is not None and len(up.run.window) == 1)
    assert up.run is not None and len(up.run.window) == 1  # published, no PUBACK
    assert (await store.backlog())["destinations"]["broker"]["intervals"] == 6
    mosquitto.proc.send_signal(signal.SIGKILL)
    mosquitto.proc.wait()
    mosquitto.start()
    listener = Listener(mosquitto.port, TOPIC)
    sent = await delivery
    if sent == 0:  # the tries ran out while the broker was away: the next run
        sent = await up.deliver()
    assert sent == 6
    listener.wait_for(lambda: len(listener.on(TOPIC)) >= 1)
    await up.close()
    listener.close()
    keys = {m.user["key"] for m in listener.on(TOPIC)}
    assert len(keys) == 1 and len({m.payload for m in listener.on(TOPIC)}) == 1
    assert up.status.resends >= 1 or up.status.failures >= 1
