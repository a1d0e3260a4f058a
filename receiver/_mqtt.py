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
acknowledged: it would never get better. A batch whose key another batch holds
(an agent whose buffer was replaced starts its sequence again) is stored under
its key and body digest. A store that fails (a locked or full database) leaves
the message unacknowledged and ends the session, so the broker sends it again;
sessions that end at once are tried again after a growing wait.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
import time
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
        credentials: tuple[str, str] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "mqtt" or not parts.hostname or parts.username or parts.password:
            raise ValueError(
                "--mqtt must be mqtt://host[:port], with a login in --mqtt-credentials-file "
                f"(got a {parts.scheme or 'plain'}:// address)"
            )
        self.credentials = credentials
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
        """Connect, subscribe, ingest until `stop` is set. A connection refused, or lost
        (the broker went away, or the store failed and the message must come again), is
        tried again after a growing wait (0.5 s up to 30 s), so neither a refusing broker
        nor a batch the store keeps failing on is hammered; a session that lasted a while
        starts the waits over."""
        while not self.stop.is_set():
            try:
                for attempt in Retrying(
                    retry=retry_if_exception_type((OSError, _Lost)),
                    wait=wait_exponential_jitter(multiplier=0.5, max=30),
                    stop=lambda _: self.stop.is_set(),
                    sleep=self._nap,
                    reraise=True,
                ):
                    with attempt:
                        self._session()
            except OSError as exc:
                logger.error("mqtt: cannot connect to %s:%d: %s", self.host, self.port, exc)
            except _Lost:
                pass  # stopped while waiting to try again
            except _LostAfterAWhile:
                continue

    def _nap(self, seconds: float) -> None:
        self.stop.wait(seconds)  # a stop ends the wait at once

    def _session(self) -> None:
        """One connection: until `stop` (returns) or a loss (raises)."""
        client = self._client()
        self._lost.clear()
        try:
            client.connect(self.host, self.port, clean_start=False,
                           properties=self._connect_properties())  # fmt: skip
        except OSError as exc:
            self._say(f"mqtt: cannot connect to {self.host}:{self.port}: {exc}")
            raise
        began = time.monotonic()
        client.loop_start()
        try:
            while not (self.stop.is_set() or self._lost.is_set()):
                self.stop.wait(0.2)
            client.disconnect()  # stopped, or the store failed: unacknowledged stays queued
        finally:
            client.loop_stop()
        if not self.stop.is_set():
            raise _LostAfterAWhile() if time.monotonic() - began > 60 else _Lost()

    def _client(self) -> Client:
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTv5,
            reconnect_on_failure=False,
            manual_ack=True,  # PUBACK only after the batch is committed
        )
        if self.credentials is not None:
            client.username_pw_set(*self.credentials)
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
        payload, key = bytes(message.payload), _key_of(message)
        try:
            try:
                self.ingest(payload, key)
            except KeyConflict:
                # Another batch holds this key: the agent's sequence started again (its
                # buffer was replaced). Over HTTP a 409 makes it renumber; over MQTT it
                # cannot hear one, so the batch is stored under its key and body digest
                # (records are still taken once each, by their own keys).
                self.ingest(payload, key, renumbered=True)
        except Refused as exc:
            self.counts.malformed += 1
            self._say(f"mqtt: a message on {message.topic} refused: {exc}")
        except Exception as exc:  # the database: keep it unacknowledged, let it come again
            self.counts.failed += 1
            self._say(f"mqtt: batch not stored ({exc}); it stays with the broker", logging.ERROR)
            self._lost.set()  # the session ends; the next waits a little longer
            return
        client.ack(message.mid, message.qos)

    def ingest(self, payload: bytes, key: str | None, renumbered: bool = False) -> str:
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
        digest = hashlib.sha256(data).hexdigest()
        if renumbered:
            name = f"{name}~{digest[:16]}"
        stored = put_body(self.store, name, batch, document, data, digest)
        if stored is None:
            self.counts.duplicates += 1
            logger.debug("mqtt: %s duplicate", name)
            return "duplicate"
        self.counts.stored += 1
        logger.debug("mqtt: %s stored %d intervals, %d events", name, stored.intervals,
                     stored.events)  # fmt: skip
        return "stored"

    def _say(self, message: str, level: int = logging.WARNING) -> None:
        """Logged once per cause in a row: a sender stuck on a bad batch is one line."""
        if message != self._last_error:
            logger.log(level, "%s", message)
        self._last_error = message


class _Lost(Exception):
    """The session ended at once (refused, or the store failed): wait longer each time."""


class _LostAfterAWhile(Exception):
    """The session ended after working a while: start the waits over."""


def _key_of(message: MQTTMessage) -> str | None:
    props = getattr(message, "properties", None)
    for name, value in getattr(props, "UserProperty", None) or []:
        if name == "key":
            return str(value)
    return None
