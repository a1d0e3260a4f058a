"""MQTT ingest: batches taken from a broker on a shared subscription, stored like POSTs.

Several receivers subscribe to `$share/<group>/<filter>` (MQTT 5.0, 4.8.2):
the broker hands each message to one of them, so they split the load. Each
message is parsed with the HTTP path's own parser (parse_for, check_key),
stored with the store's `put` under its key `<gateway id>:<sequence>` (the
same idempotency as HTTP), and acknowledged (PUBACK) only after that commit:
paho's manual acknowledgement. A receiver killed between the commit and the
PUBACK gets the message again when it reconnects under the same client id
(the broker keeps its session), and its key finds the batch already stored.
A message that cannot be parsed is logged once per cause, counted and
acknowledged: it would never get better. A store that fails (a locked or full
database) leaves the message unacknowledged and drops the connection, so the
broker sends it again when the receiver is back.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from paho.mqtt.client import CallbackAPIVersion, Client, MQTTMessage, MQTTv5
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from tenacity import Retrying, retry_if_exception_type, wait_exponential_jitter

from receiver._backends import AnyStore, parse_for, put_body
from receiver._body import gunzip
from receiver._request import Refused, check_key, parse_key
from receiver._store import KeyConflict

logger = logging.getLogger("edge_agent.receiver.mqtt")

TOPICS = ("edge-agent/+/intervals", "edge-agent/+/events")
"""The agent's default topics (edge-agent/{gateway}/{kind}); its status topic is not a batch."""


@dataclass
class Counts:
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    failed: int = 0  # store errors: left unacknowledged, delivered again


class MqttIngest:
    """Takes batches from `url` into `store` until `stop` is set (`run`, in a thread)."""

    def __init__(
        self,
        store: AnyStore,
        url: str,
        stop: threading.Event,
        *,
        share: str | None = "receivers",
        topics: Sequence[str] = TOPICS,
        client_id: str | None = None,
        session_expiry: int = 86_400,
        max_body: int = 16 * 2**20,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError(f"--mqtt must be mqtt://host[:port] (got {url!r})")
        self.host, self.port = parts.hostname, parts.port or 1883
        self.store = store
        self.stop = stop
        self.filters = [f"$share/{share}/{t}" if share else t for t in topics]
        self.client_id = client_id or f"edge-agent-receiver-{socket.gethostname()}"
        self.session_expiry = session_expiry
        self.max_body = max_body
        self.counts = Counts()
        self.subscribed = threading.Event()
        self._lost = threading.Event()
        self._last_error: str | None = None

    def run(self) -> None:
        """Connect, subscribe, ingest; connect again after a loss; return once `stop` is set."""
        while not self.stop.is_set():
            client = self._client()
            self._lost.clear()
            try:
                for attempt in Retrying(
                    retry=retry_if_exception_type(OSError),
                    wait=wait_exponential_jitter(multiplier=0.5, max=30),
                    stop=lambda _: self.stop.is_set(),
                    reraise=True,
                ):
                    with attempt:
                        client.connect(self.host, self.port, clean_start=False,
                                       properties=self._connect_properties())  # fmt: skip
            except OSError as exc:
                logger.error("mqtt: cannot connect to %s:%d: %s", self.host, self.port, exc)
                return
            client.loop_start()
            while not (self.stop.is_set() or self._lost.is_set()):
                self.stop.wait(0.2)
            if self.stop.is_set():
                client.disconnect()
            client.loop_stop()

    def _client(self) -> Client:
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTv5,
            reconnect_on_failure=False,
            manual_ack=True,  # PUBACK only after the batch is committed
        )
        client.on_log = lambda _c, _u, _level, text: logger.debug("paho: %s", text)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = lambda *_: self.subscribed.set()
        return client

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry
        return props

    def _on_connect(self, client: Client, _: Any, flags: Any, code: Any, props: Any) -> None:
        if code.is_failure:
            logger.error("mqtt: the broker refused the connection: %s", code)
            self._lost.set()
            return
        logger.info("mqtt: connected to %s:%d as %s", self.host, self.port, self.client_id)
        options = SubscribeOptions(qos=1)
        client.subscribe([(f, options) for f in self.filters])

    def _on_disconnect(self, client: Client, _: Any, flags: Any, code: Any, props: Any) -> None:
        self.subscribed.clear()
        self._lost.set()
        if not self.stop.is_set():
            logger.warning("mqtt: disconnected (%s); connecting again", code)

    def _on_message(self, client: Client, _: Any, message: MQTTMessage) -> None:
        """Store, then acknowledge; malformed: count and acknowledge; failed: neither."""
        try:
            self.ingest(bytes(message.payload), _key_of(message))
        except (Refused, KeyConflict) as exc:
            self.counts.malformed += 1
            self._say(f"mqtt: a message on {message.topic} refused: {exc}")
        except Exception as exc:  # the database: keep it unacknowledged, let it come again
            self.counts.failed += 1
            logger.error("mqtt: batch not stored (%s); it stays with the broker", exc)
            client.disconnect()
            return
        client.ack(message.mid, message.qos)

    def ingest(self, payload: bytes, key: str | None) -> str:
        """Parse and store one batch message; its status (stored or duplicate)."""
        if len(payload) > self.max_body:
            raise Refused(413, f"message of {len(payload)} bytes is over {self.max_body}")
        data = gunzip(payload, self.max_body) if payload[:2] == b"\x1f\x8b" else payload
        batch, document = parse_for(self.store, data)
        gateway, sequence = (
            parse_key(key) if key is not None else (batch.gateway.id, batch.sequence)
        )
        check_key(gateway, sequence, batch)
        name = f"{gateway}:{sequence}"
        stored = put_body(self.store, name, batch, document, data)
        if stored is None:
            self.counts.duplicates += 1
            logger.debug("mqtt: %s duplicate", name)
            return "duplicate"
        self.counts.stored += 1
        logger.debug("mqtt: %s stored %d intervals, %d events", name, stored.intervals,
                     stored.events)  # fmt: skip
        return "stored"

    def _say(self, message: str) -> None:
        """Logged once per cause in a row: a sender stuck on a bad batch is one line."""
        if message != self._last_error:
            logger.warning("%s", message)
        self._last_error = message


def _key_of(message: MQTTMessage) -> str | None:
    props = getattr(message, "properties", None)
    for name, value in getattr(props, "UserProperty", None) or []:
        if name == "key":
            return str(value)
    return None
