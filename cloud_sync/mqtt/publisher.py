"""Drain the buffer to an MQTT broker: QoS 1, the cursor moved only by PUBACK.

The publisher is one destination (cloud_sync/base.py) with its own outbox. A
batch is fixed in the buffer before its first publish (records, header,
number), so every resend, after a broker restart or a `kill -9`, carries the
same records under the same key; the batch is acknowledged in the buffer only
when the broker acknowledged every message of it. Connecting again resumes the
broker's session (same client id, clean start off); the will, armed at each
connect, says `offline` on the retained status topic when the agent dies, and a
clean stop says it itself.
"""

from __future__ import annotations

import logging
import ssl
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import SimpleNamespace

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from buffer import AsyncStore, PendingBatch
from cloud_sync.base import DestinationStatus, Identity
from cloud_sync.http.tls import client_tls
from cloud_sync.mqtt.link import NO_SUBSCRIBERS, Broker, Link, Message
from cloud_sync.mqtt.payloads import batch_message, status_payload, thingsboard_messages, topic
from cloud_sync.mqtt.settings import MqttSettings
from domain.batch import SCHEMA_VERSION
from domain.errors import SettingUnusable, SyncRefused, SyncRetryable
from domain.records import EventRow

log = logging.getLogger(__name__)

REFUSED_MAX_WAIT = 900.0  # the longest pause after the broker refused us


def make(name: str, settings: MqttSettings, identity: Identity, *, setting: str) -> Publisher:
    """The destination `name` (the registry's factory): its credential and TLS files are
    read now, and it connects to nothing until its first run."""
    username, password = read_credentials(settings.credentials_file)
    tls = client_tls(settings.ca_file, settings.client_cert, settings.client_key)
    context = tls if isinstance(tls, ssl.SSLContext) else None
    if context is None and settings.url.startswith("mqtts://"):
        context = ssl.create_default_context()
    gateway = identity.gateway["id"]
    will = Message(
        topic(settings.status_topic, gateway),
        status_payload("offline", gateway, agent_version()),
        retain=True,
        content_type="application/json",
        utf8=True,
    )
    broker = Broker(
        host=settings.host,
        port=settings.port,
        client_id=settings.client_id or f"edge-agent-{gateway}-{name}",
        mqtt5=settings.protocol == 5,
        keepalive=int(settings.keepalive),
        session_expiry=int(settings.session_expiry),
        timeout=settings.timeout,
        tls=context,
        username=username,
        password=password,
        will=will,
    )
    return Publisher(name, settings, identity, broker, setting=setting)


def read_credentials(path: str | None) -> tuple[str | None, str | None]:
    """Username (first line) and password (second, optional) from their file;
    SettingUnusable naming credentials_file if it cannot be used."""
    if path is None:
        return None, None
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SettingUnusable("credentials_file", f"cannot read {path}: {why}") from exc
    if not lines or not lines[0].strip():
        raise SettingUnusable("credentials_file", f"{path}: the first line must hold the username")
    password = lines[1].rstrip("\r") if len(lines) > 1 and lines[1] else None
    return lines[0].strip(), password


def agent_version() -> str:
    try:
        return version("edge-agent")
    except PackageNotFoundError:  # pragma: no cover - a source tree that was not installed
        return "unknown"


class Oversized(SyncRefused):
    """Over the broker's Maximum Packet Size (from its CONNACK): it would drop us."""


def _size(message: Message) -> int:
    return len(message.payload) + len(message.topic) + 512  # fixed header, properties


class Publisher:
    def __init__(
        self,
        name: str,
        settings: MqttSettings,
        identity: Identity,
        broker: Broker,
        *,
        setting: str,
        attempts: int = 3,
    ) -> None:
        self.name = name
        self.settings = settings
        self.setting = setting
        self.gateway = identity.gateway
        self.factor_set = identity.factor_set
        self.link = Link(name, broker)
        self.attempts = attempts
        self.status = DestinationStatus(connected=False)
        self.credentials = read_credentials(settings.credentials_file)  # as read, for stale()
        self.store: AsyncStore | None = None
        self.refusals = 0
        self.hold_until = 0.0  # monotonic time before which nothing is sent after a refusal

    def attach(self, store: AsyncStore) -> None:
        self.store = store
        self.outbox = store.outbox(self.name)

    @property
    def every(self) -> float:
        return self.settings.every

    @property
    def allowance(self) -> float:
        """A run stops at `every`; the batch in flight may wait out its tries on top."""
        return 2 * self.settings.every + 2 * self.attempts * self.settings.timeout + 30

    def stale(self) -> bool:
        """Certificates may have been replaced at the same paths, or the password rotated."""
        if self.settings.ca_file or self.settings.client_cert:
            return True
        try:
            return read_credentials(self.settings.credentials_file) != self.credentials
        except SettingUnusable:
            return True

    async def close(self) -> None:
        """A clean stop: `offline` on the status topic, then DISCONNECT (no will)."""
        will = self.link.broker.will
        if self.link.up and will is not None:
            try:
                await self.link.publish(will)
            except (SyncRetryable, SyncRefused) as exc:
                log.warning("%s: offline status not published: %s", self.name, exc)
        await self.link.close()
        self.status.connected = False

    async def deliver(self, *, deadline: float | None = None, last: bool = False) -> int:
        """Publish batches until the backlog is empty, a publish fails, or `deadline`;
        never raises for a broker or network failure (the batch stays pending)."""
        attempts = 1 if last else self.attempts
        sent = 0
        if time.monotonic() < self.hold_until:
            return sent
        header = {
            "schema_version": SCHEMA_VERSION,
            "gateway": self.gateway,
            "factor_set": self.factor_set,
        }
        while deadline is None or time.monotonic() < deadline:
            batch = await self.outbox.pending_batch(self.settings.max_batch, header)
            if batch is None:
                break
            self.status.last_attempt = time.time()
            try:
                await self._publish_with_retries(batch, attempts)
            except Oversized as exc:  # halved in the buffer, as the HTTP destination on 413
                if await self.outbox.shrink_batch(batch.seq):
                    continue
                await self._refused(exc)
                break
            except SyncRefused as exc:
                await self._refused(exc)
                break
            except SyncRetryable as exc:
                self.status.failures += 1
                self.status.connected = self.link.up
                if self.status.last_result != str(exc):
                    log.warning("%s: batch %d not published: %s", self.name, batch.seq, exc)
                self.status.last_result = str(exc)
                break
            await self.outbox.finish_batch(batch.seq, "acked")
            self.refusals = 0
            sent += batch.size
            self.status.batches_sent += 1
            self.status.records_sent += batch.size
            self.status.last_success = time.time()
            if self.status.last_result != "acknowledged":
                log.info("%s: batch %d acknowledged by the broker", self.name, batch.seq)
            self.status.last_result = "acknowledged"
        return sent

    def messages(self, batch: PendingBatch) -> list[Message]:
        s = self.settings
        mqtt5 = s.protocol == 5
        if s.format == "thingsboard":
            return thingsboard_messages(batch, s.topic_template, mqtt5=mqtt5)
        return [batch_message(batch, s.topic_template, mqtt5=mqtt5, compress=s.gzip)]

    async def _publish_with_retries(self, batch: PendingBatch, attempts: int) -> None:
        messages = self.messages(batch)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(SyncRetryable),
            wait=wait_exponential_jitter(multiplier=0.5, max=10),
            stop=stop_after_attempt(attempts) | stop_after_delay(self.settings.every),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.status.resends += 1  # `status`: "N frames resent", as HJ 212's
                await self._connect()
                limit = self.link.max_packet
                if limit is not None and any(_size(m) > limit for m in messages):
                    raise Oversized(f"a message is over the broker's maximum packet size "
                                    f"({limit} B)")  # fmt: skip
                for message in messages:
                    code = await self.link.publish(message)
                    if code == NO_SUBSCRIBERS and self.settings.require_subscriber:
                        raise SyncRetryable("no subscriber took it (PUBACK 0x10 No matching "
                                            "subscribers); it stays buffered")  # fmt: skip

    async def _connect(self) -> None:
        """Connected, the birth published (retained `online`) on each new connection."""
        if self.link.up:
            return
        self.status.connected = False
        await self.link.connect()
        will = self.link.broker.will
        if will is not None:
            payload = status_payload("online", self.gateway["id"], agent_version())
            await self.link.publish(Message(will.topic, payload, retain=True,
                                            content_type=will.content_type, utf8=True))  # fmt: skip
        self.status.connected = True
        log.info("%s: connected to %s", self.name, self.settings.url)

    async def _refused(self, exc: SyncRefused) -> None:
        """Not authorized, bad credentials: nothing is dropped; one event per cause and a
        growing pause, so a revoked password is not hammered every minute."""
        self.status.failures += 1
        self.status.connected = self.link.up
        self.refusals += 1
        wait = wait_exponential_jitter(multiplier=self.every, max=REFUSED_MAX_WAIT, jitter=5)
        self.hold_until = time.monotonic() + wait(SimpleNamespace(attempt_number=self.refusals))  # type: ignore[arg-type]
        if self.status.last_result != str(exc) and self.store is not None:
            log.error("%s: %s; every record stays buffered", self.name, exc)
            message = f"{self.name}: {exc}; every record stays buffered"
            await self.store.add_events(
                [EventRow(time.time(), None, "sync_refused", "critical", message)]
            )
        self.status.last_result = str(exc)
