"""Drain the buffer to an MQTT broker: QoS 1, the cursor moved only by PUBACK.

The publisher is one destination (cloud_sync/base.py) with its own outbox. A
batch is fixed in the buffer before its first publish (records, header,
number), so every resend, after a broker restart or a `kill -9`, carries the
same records under the same key; the batch is acknowledged in the buffer only
when the broker acknowledged every message of it.

Up to `in_flight` batches wait for their PUBACKs at once (never more messages
than the broker's Receive Maximum, see link.py): the buffer reads and assigns
the next batch while the broker answers the ones before, which is what lets a
backlog go at the speed of the broker's round trips rather than that plus the
buffer's work. Batches are closed in the buffer only as a run from the oldest
one, all of whose messages were acknowledged, in one transaction: the cursor
never passes a batch the broker has not acknowledged, whatever order PUBACKs
come in. (MQTT 5.0 section 4.6, "Message ordering", requires a *Client* to send
its PUBACKs in the order the PUBLISHes came, [MQTT-4.6.0-2]; of a Server
acknowledging a publisher it requires no order, and EMQX has said it does not
promise one, github.com/emqx/emqx/discussions/4703. Nothing here counts on
it.) After a dropped connection
every batch of the window not yet acknowledged is published again, in order,
from the same bytes; after a `kill -9` the buffer still holds them pending.

Connecting again resumes the broker's session (same client id, clean start
off); the will, armed at each connect, says `offline` on the retained status
topic when the agent dies, and a clean stop says it itself.
"""

from __future__ import annotations

import asyncio
import functools
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
from cloud_sync.mqtt.link import Broker, Link, Message
from cloud_sync.mqtt.payloads import batch_message, status_payload, thingsboard_messages, topic
from cloud_sync.mqtt.settings import MqttSettings
from cloud_sync.mqtt.window import Flight, Run
from cloud_sync.tls import client_tls
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


@functools.cache
def agent_version() -> str:
    """Read once: each read parses the package's metadata (5 ms, at every connect)."""
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
        self.run: Run | None = None  # the last delivery run (its window: what is in flight)

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
        if time.monotonic() < self.hold_until:
            return 0
        header = {
            "schema_version": SCHEMA_VERSION,
            "gateway": self.gateway,
            "factor_set": self.factor_set,
        }
        run = Run(deadline, self.outbox, header, self.settings.max_batch,
                  joined=self.settings.format == "batch")  # fmt: skip
        self.run = run
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(SyncRetryable),
            wait=wait_exponential_jitter(multiplier=0.5, max=10),
            stop=stop_after_attempt(attempts) | stop_after_delay(self.settings.every),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if attempt.retry_state.attempt_number > 1:
                        self.status.resends += 1  # `status`: "N frames resent", as HJ 212's
                    await self._pump(run)
        except SyncRefused as exc:
            await run.settled()
            await self._refused(exc)
        except SyncRetryable as exc:
            await run.settled()
            self.status.failures += 1
            self.status.connected = self.link.up
            if self.status.last_result != str(exc):
                seqs = [f.batch.seq for f in run.window] or [run.after]
                log.warning("%s: batch %d not published: %s", self.name, seqs[0], exc)
            self.status.last_result = str(exc)
        return run.sent

    def messages(self, batch: PendingBatch) -> list[Message]:
        s = self.settings
        mqtt5 = s.protocol == 5
        if s.format == "thingsboard":
            return thingsboard_messages(batch, s.topic_template, mqtt5=mqtt5)
        return [batch_message(batch, s.topic_template, mqtt5=mqtt5, compress=s.gzip)]

    async def _pump(self, run: Run) -> None:
        """One try: connect, publish again what of the window is not acknowledged, then
        keep the window full from the buffer until it is empty, closing acknowledged runs
        of batches as they come. Raises what stopped it.

        Three things overlap: the buffer's thread reads (and assigns) the next batch
        while this one is built and published, the broker acknowledges earlier ones, and
        the buffer closes acknowledged runs; waiting for each in turn was most of a
        backlog drain (bench/RESULTS.md, MQTT)."""
        await self._connect()
        window = max(1, min(self.settings.in_flight, self.link.receive_max))
        run.ahead = max(1, window // 2)
        for flight in run.window:  # after a dropped connection: again, in order, same bytes
            if not flight.acknowledged():
                self._check_size(flight.messages)
                flight.acks = []
                for message in flight.messages:
                    flight.acks.append(await self.link.send(message))
        while True:
            self._close_acknowledged(run)
            if run.window and (len(run.window) >= window or run.reading_done(time.monotonic())):
                if run.window[0].acknowledged() and run.closing is not None:
                    await run.closing  # being closed: room in the window after
                else:
                    for ack in run.window[0].acks:
                        await self.link.acknowledged(ack)
                continue
            if run.reading_done(time.monotonic()):
                await run.settled()
                if run.window:  # acknowledged while the last run was being closed
                    continue
                if run.stop is not None:
                    raise run.stop
                return
            batch = await run.next_batch()
            if batch is None:
                run.empty = True
                continue
            self.status.last_attempt = time.time()
            messages = self.messages(batch)
            try:
                self._check_size(messages)
            except Oversized as exc:  # halved in the buffer, as the HTTP destination on 413
                await run.settled()  # the read ahead, if any, is given up by the halving
                if not await self.outbox.shrink_batch(batch.seq):
                    run.stop = exc  # the batches before it go first
                continue
            run.after = batch.seq
            run.read_ahead()
            await asyncio.sleep(0)  # the read ahead handed to the buffer's thread before paho
            # copies this batch into its packet, which holds the loop a while
            flight = Flight(batch, messages, [], self.settings.require_subscriber)
            run.window.append(flight)  # before sending: a failure midway resends it whole
            for message in messages:
                flight.acks.append(await self.link.send(message))

    def _check_size(self, messages: list[Message]) -> None:
        limit = self.link.max_packet
        if limit is not None and any(_size(m) > limit for m in messages):
            raise Oversized(f"a message is over the broker's maximum packet size ({limit} B)")

    def _close_acknowledged(self, run: Run) -> None:
        """Close the run of batches from the oldest whose every message was acknowledged,
        in the background (one transaction for all acknowledged by then); a refusal at the
        head of the window is raised."""
        if run.closing is not None and run.closing.done():
            closed, run.closing = run.closing, None
            closed.result()  # the buffer's error, if it failed
        if run.window and (failed := run.window[0].failure()) is not None:
            raise failed
        if run.window and run.window[0].acknowledged() and run.closing is None:
            run.closing = asyncio.create_task(self._closer(run))

    async def _closer(self, run: Run) -> None:
        while run.window and run.window[0].acknowledged():
            done: list[Flight] = []
            while run.window and run.window[0].acknowledged():
                done.append(run.window.popleft())
            await self._acked(run, done)

    async def _acked(self, run: Run, done: list[Flight]) -> None:
        try:
            await self.outbox.finish_batches([f.batch.seq for f in done])
        except BaseException:
            run.window.extendleft(reversed(done))  # still pending in the buffer
            raise
        self.refusals = 0
        size = sum(f.batch.size for f in done)
        run.sent += size
        self.status.batches_sent += len(done)
        self.status.records_sent += size
        self.status.last_success = time.time()
        if self.status.last_result != "acknowledged":
            log.info("%s: batch %d acknowledged by the broker", self.name, done[-1].batch.seq)
        self.status.last_result = "acknowledged"

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
