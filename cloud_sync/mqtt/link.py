"""One broker connection for the asyncio agent: connect, publish at QoS 1, wait for PUBACK.

paho-mqtt runs its network loop in a thread of its own (`loop_start`); its
callbacks hand what they learn to the event loop (`call_soon_threadsafe`), where
each publish waits for its PUBACK as a future. The PUBACK's reason code is read
(MQTT 5.0, 3.4.2.1): a broker that answers "not authorized" has not taken the
message, and the cursor must not move for it.

Several messages may wait for their PUBACK at once (`send`): the publisher keeps
a window of batches in flight. The broker says in its CONNACK how many QoS 1
messages it takes unacknowledged (Receive Maximum, MQTT 5.0, 3.2.2.3.3; 65,535
when it does not say). paho does not heed it, and its own limit cannot change
once connected, so paho's is lifted (MQTT 5) and `send` waits for room itself.

A connection that drops is not mended in place: the next `connect` makes a new
client on the same client id with clean start off, so the broker resumes the
session it kept, and what was not acknowledged is published again from the
buffer under its key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

from paho.mqtt.client import CallbackAPIVersion, Client, MQTTMessageInfo, MQTTv5, MQTTv311
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from domain.errors import SyncRefused, SyncRetryable

log = logging.getLogger(__name__)

BUSY = {0x97}  # Quota exceeded: the broker may take it later (MQTT 5.0, Table 3-4)
NO_SUBSCRIBERS = 0x10  # accepted, but no subscription matched (MQTT 5.0, 3.4.2.1)
RECEIVE_MAXIMUM = 65_535  # what a CONNACK without the property means (MQTT 5.0, 3.2.2.3.3)


@dataclass(frozen=True, slots=True)
class Message:
    """One PUBLISH: its topic, its bytes, and its MQTT 5 properties (ignored by 3.1.1)."""

    topic: str
    payload: bytes
    retain: bool = False
    content_type: str | None = None
    utf8: bool = False  # Payload Format Indicator 1: UTF-8 text
    user: tuple[tuple[str, str], ...] = field(default=())  # User Property pairs


@dataclass(frozen=True, slots=True)
class Broker:
    """Where and how to connect."""

    host: str
    port: int
    client_id: str
    mqtt5: bool = True
    keepalive: int = 60
    session_expiry: int = 86_400
    timeout: float = 30.0
    tls: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None
    will: Message | None = None


class Link:
    """A connection to one broker; `up` while the broker has us."""

    def __init__(self, name: str, broker: Broker) -> None:
        self.name = name
        self.broker = broker
        self.client: Client | None = None
        self.max_packet: int | None = None  # the broker's Maximum Packet Size, if it said
        self.receive_max = RECEIVE_MAXIMUM  # QoS 1 messages it takes unacknowledged at once
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None
        self._acks: dict[int, asyncio.Future[int]] = {}
        self._up = threading.Event()

    @property
    def up(self) -> bool:
        return self.client is not None and self._up.is_set()

    async def connect(self) -> None:
        """Connected (CONNACK accepted), or SyncRetryable / SyncRefused saying why not."""
        if self.up:
            return
        await self.drop()
        b = self.broker
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=b.client_id,
            protocol=MQTTv5 if b.mqtt5 else MQTTv311,
            clean_session=None if b.mqtt5 else False,  # 3.1.1: a persistent session
            reconnect_on_failure=False,  # reconnects are ours: tenacity, in the publisher
        )
        if log.isEnabledFor(logging.DEBUG):  # else paho formats no line per packet
            client.on_log = _paho_log
        if b.tls is not None:
            client.tls_set_context(b.tls)
        if b.username is not None:
            client.username_pw_set(b.username, b.password)
        if b.will is not None:
            client.will_set(
                b.will.topic, b.will.payload, qos=1, retain=b.will.retain,
                properties=properties(b.will, PacketTypes.WILLMESSAGE) if b.mqtt5 else None,
            )  # fmt: skip
        if b.mqtt5:
            client.max_inflight_messages_set(0)  # no limit in paho: `send` keeps the broker's
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client
        connect: dict[str, Any] = {"keepalive": b.keepalive}
        if b.mqtt5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = b.session_expiry
            connect |= {"clean_start": False, "properties": props}
        try:
            await asyncio.wait_for(
                asyncio.to_thread(client.connect, b.host, b.port, **connect), b.timeout
            )
            client.loop_start()
            await asyncio.wait_for(asyncio.shield(self._connected), b.timeout)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            await self.drop()
            raise SyncRetryable(f"cannot connect to {b.host}:{b.port}: {_why(exc)}") from exc
        except (SyncRefused, SyncRetryable):
            await self.drop()
            raise

    async def publish(self, message: Message) -> int:
        """Published and acknowledged (PUBACK) at QoS 1: the PUBACK's reason code (0, or
        NO_SUBSCRIBERS); SyncRetryable if the connection failed or the broker did not
        answer in time, SyncRefused if it refused."""
        return await self.acknowledged(await self.send(message))

    async def send(self, message: Message) -> asyncio.Future[int]:
        """Publish at QoS 1 without waiting for the PUBACK, once fewer than the broker's
        Receive Maximum wait for theirs: the future is settled by the PUBACK (its reason
        code) or fails with the connection; wait for it with `acknowledged`."""
        while len(self._acks) >= self.receive_max and self.up:
            owed = list(self._acks.values())
            _, late = await asyncio.wait(owed, timeout=self.broker.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            if len(late) == len(owed):
                await self.drop()
                raise SyncRetryable(f"no PUBACK within {self.broker.timeout:g}s")
            await asyncio.sleep(0)  # the settled ones leave the table (_forget) first
        client, loop = self.client, self._loop
        if client is None or loop is None or not self.up:
            raise SyncRetryable("not connected")
        props = properties(message, PacketTypes.PUBLISH) if self.broker.mqtt5 else None
        waiting: asyncio.Future[int] = loop.create_future()
        info: MQTTMessageInfo = client.publish(
            message.topic, message.payload, qos=1, retain=message.retain, properties=props
        )
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise SyncRetryable(f"publish failed: {info.rc.name}")
        self._acks[info.mid] = waiting  # the PUBACK is settled on this loop, after this line
        waiting.add_done_callback(lambda done: self._forget(info.mid, done))
        return waiting

    async def acknowledged(self, waiting: asyncio.Future[int]) -> int:
        """Wait for a PUBACK `send` asked for: its reason code; no answer within the
        timeout drops the connection (a broker that does not answer: start afresh) and is
        SyncRetryable."""
        try:
            return await asyncio.wait_for(asyncio.shield(waiting), self.broker.timeout)
        except TimeoutError as exc:
            await self.drop()
            raise SyncRetryable(f"no PUBACK within {self.broker.timeout:g}s") from exc

    async def drop(self) -> None:
        """Let go of the connection without a DISCONNECT (the will stays armed)."""
        client, self.client = self.client, None
        self._up.clear()
        if client is None:
            return
        client.on_disconnect = client.on_connect = client.on_publish = None
        await asyncio.to_thread(_stop, client, graceful=False)
        self._fail(SyncRetryable("connection closed"))

    async def close(self) -> None:
        """DISCONNECT cleanly (the broker discards the will) and stop the network thread."""
        client, self.client = self.client, None
        self._up.clear()
        if client is not None:
            client.on_disconnect = client.on_connect = client.on_publish = None
            await asyncio.to_thread(_stop, client, graceful=True)
        self._fail(SyncRetryable("connection closed"))

    # --- paho's callbacks, in its network thread ---------------------------------

    def _on_connect(self, client: Client, _: Any, flags: Any, code: ReasonCode, props: Any) -> None:
        size = getattr(props, "MaximumPacketSize", None) if props is not None else None
        receive = getattr(props, "ReceiveMaximum", None) if props is not None else None
        if not code.is_failure:
            self.max_packet = size
            if self.broker.mqtt5:
                self.receive_max = receive or RECEIVE_MAXIMUM
            self._up.set()
        self._call(self._connected_with, code)

    def _on_disconnect(self, client: Client, _: Any, flags: Any, code: Any, props: Any) -> None:
        self._up.clear()
        self._call(self._fail, SyncRetryable(f"the broker closed the connection ({code})"))

    def _on_publish(self, client: Client, _: Any, mid: int, code: ReasonCode, props: Any) -> None:
        self._call(self._settle, mid, code)

    def _call(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    # --- in the event loop ----------------------------------------------------------

    def _connected_with(self, code: ReasonCode) -> None:
        done = self._connected
        if done is None or done.done():
            return
        if not code.is_failure:
            done.set_result(None)
        elif code.value in (0x84, 0x85, 0x86, 0x87, 0x8C, 4, 5):  # identity, credentials
            done.set_exception(SyncRefused(f"the broker refused the connection: {code}"))
        else:
            done.set_exception(SyncRetryable(f"the broker refused the connection: {code}"))

    def _settle(self, mid: int, code: ReasonCode) -> None:
        waiting = self._acks.get(mid)
        if waiting is None or waiting.done():
            return
        if not code.is_failure:  # 0x00 Success, 0x10 No matching subscribers
            waiting.set_result(code.value)
        elif code.value in BUSY:
            waiting.set_exception(SyncRetryable(f"the broker is busy: {code}"))
        else:
            waiting.set_exception(SyncRefused(f"the broker refused the message: {code}"))

    def _forget(self, mid: int, done: asyncio.Future[int]) -> None:
        """A settled PUBACK leaves the table; its failure counts as seen even if nobody
        waits any more (a window given up after an earlier batch failed)."""
        if self._acks.get(mid) is done:
            del self._acks[mid]
        if not done.cancelled():
            done.exception()

    def _fail(self, error: Exception) -> None:
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(error)
        for waiting in list(self._acks.values()):
            if not waiting.done():
                waiting.set_exception(error)


def properties(message: Message, packet: int) -> Properties:
    """A message's MQTT 5 properties: content type, payload format, user properties."""
    props = Properties(packet)
    if message.content_type:
        props.ContentType = message.content_type
    props.PayloadFormatIndicator = 1 if message.utf8 else 0
    if message.user:
        props.UserProperty = list(message.user)
    return props


def _stop(client: Client, *, graceful: bool) -> None:
    if graceful:
        client.disconnect()
    else:
        sock = client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
    client.loop_stop()


def _paho_log(client: Client, userdata: Any, level: int, text: str) -> None:
    """paho's own lines are protocol chatter (and one ERR line whenever its loop outlives
    a clean DISCONNECT): debug. What matters is logged by the publisher, once."""
    log.debug("paho: %s", text)


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
