"""A pymodbus client and its connection: connect now, or keep trying in the background.

A Modbus TCP device has a link of its own; the meters of one RS-485 port share
the port's link, so a dead meter never takes the port away from its
neighbours. Reconnection runs under tenacity (exponential backoff with
jitter): a dead peer costs one failed connect per backoff step, never a
stalled poll.

A late reply must never answer a later request. pymodbus 3.16.1 (the version this
was read in) pairs a Modbus TCP reply with the waiting request by transaction
id and unit (pymodbus/framer/base.py `handleFrame` skips other frames) and
drops a reply that comes while no request waits (pymodbus/transaction/
transaction.py `callback_data`: "received pdu without a corresponding
request"). That is not enough: RTU frames, over TCP too, carry no transaction
id, and pymodbus's own server answers a request it held past the client's
timeout with the transaction id of the newest request on that connection
(pymodbus/server/requesthandler.py `handle_request` reads `self.last_pdu`
after its await), so the old values arrive as the answer to the new request.
So after a timeout a TCP link is replaced before its next request: a late
reply can then only reach a connection nobody asks on any more. Replies that
still arrive while nothing waits are thrown away by pymodbus and counted here
(`late_from`, by unit). The server copies the request's transaction id into its
reply, and a client discards a reply that pairs with no pending request (MODBUS
Messaging on TCP/IP Implementation Guide V1.0b,
https://modbus.org/docs/Modbus_Messaging_Implementation_Guide_V1_0b.pdf).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import Counter
from collections.abc import Callable

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerRTU, FramerType
from pymodbus.pdu import DecodePDU, ModbusPDU
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from domain.errors import Disconnected
from drivers.bus import forget, per_port, why_unopened
from drivers.modbus.framer import ResyncingRtuFramer
from drivers.modbus.settings import ModbusRtu, ModbusTcp

log = logging.getLogger(__name__)

Client = AsyncModbusTcpClient | AsyncModbusSerialClient


class QuietDecoder(DecodePDU):
    """pymodbus's reply decoder without the debug line it formats for every reply.

    pymodbus 3.16.1 `DecodePDU.decode` (pymodbus/pdu/decoders.py, line 90) passes
    `str(pdu)` to `Log.debug`, so the reply's text (every register, in decimal) is
    built before the logger finds debug off: 3.3 % of the agent's CPU at 200 meters
    (py-spy). Replies to the four reads are decoded here as the library does, minus
    that line; anything else (writes, exception replies, garbage) goes its way.
    """

    READS = frozenset((1, 2, 3, 4))  # they have no sub-function code

    def decode(self, frame: bytes) -> ModbusPDU | None:
        if not frame or frame[0] not in self.READS:
            return super().decode(frame)
        pdu: ModbusPDU = self.pdu_table[frame[0]][self.pdu_inx]()
        try:
            pdu.decode(frame[1:])
        except (ModbusException, ValueError, IndexError, struct.error):
            return super().decode(frame)  # logged and refused the library's way
        return pdu


# holds no state but its tables: one for every client (0.1 KB a meter)
DECODER = QuietDecoder(False)


class _Answered:
    """Stands in for a TCP or RTU link's last request future once its reply is taken.

    pymodbus keeps the answered future, and with it the reply (its registers as a
    list of ints), and `last_pdu`, until the next request: 0.7 KB and 10 objects a
    meter between polls (tracemalloc, running agent, 100 vs 500 meters). pymodbus
    only asks this future `done()` (transaction.py `callback_data`: a reply while it
    is done is dropped) and makes a new one for every request (`execute`), as our
    `_received` only asks `done()` too: so a done stand-in holding nothing behaves as
    the answered future did.
    """

    __slots__ = ()

    def done(self) -> bool:
        return True


ANSWERED = _Answered()


class Link:
    # a link a meter: no __dict__, 0.2 KB a meter less
    __slots__ = (
        "_backoff_max", "_connecting", "_late", "_reconnecting", "_stale", "client", "heard",
        "port", "rtu", "users", "where", "why_down",
    )  # fmt: skip

    def __init__(
        self,
        client: Client,
        where: str,
        backoff_max: float = 30.0,
        port: str | None = None,
        rtu: bool = False,
    ) -> None:
        self.client = client
        self.where = where
        self.port = port
        self.rtu = rtu  # RTU framing: a reply starts with the unit id, no MBAP header
        self.heard: bytes = b""  # the last bytes received, to explain a missing reply
        self._late: Counter[int] | None = None  # replies no request waited for, by unit
        self._stale = False  # a request timed out: its reply may still come on this connection
        client.ctx.trace_packet = self._listen
        client.ctx.trace_pdu = self._received
        self._backoff_max = backoff_max
        self._reconnecting: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()
        self.users = 0
        # why the link is down, asked of the OS when pymodbus only says it failed (serial)
        self.why_down: Callable[[], str | None] | None = None

    def late_from(self, unit: int) -> int:
        """Replies from `unit` no request waited for (the Counter is made at the first)."""
        return self._late[unit] if self._late is not None else 0

    def taken(self) -> None:
        """The reply to the request in flight is taken: let go of it (see `_Answered`)."""
        ctx = self.client.ctx
        ctx.response_future = ANSWERED  # type: ignore[assignment]
        ctx.last_pdu = None
        self.heard = b""  # the next request starts afresh anyway (`_listen`)

    @property
    def reconnecting(self) -> bool:
        return self._reconnecting is not None and not self._reconnecting.done()

    async def ensure(self) -> str | None:
        """None when connected; else why not (and a reconnect is under way).

        The meters of a port call this at once: one of them connects, the others wait.
        """
        async with self._connecting:
            if self._stale:  # a late reply must not be taken for the next request's
                self._stale = False
                self.client.close()
            if self.client.connected:
                return None
            if self.reconnecting:
                return f"reconnecting to {self.where}"
            try:
                await self.connect()
            except Disconnected as exc:
                self._schedule()
                return str(exc)
            return None

    def _listen(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self.heard = b""
        else:
            self.heard += data
        return data

    def _received(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """Count a reply that came while no request waited: pymodbus drops it right after
        this hook (transaction.py `callback_data`, when `response_future` is done)."""
        if not sending and self.client.ctx.response_future.done():
            if self._late is None:
                self._late = Counter()
            self._late[pdu.dev_id] += 1
        return pdu

    def timed_out(self) -> None:
        """A request got no reply in time. Its reply may still come: on a TCP link the
        connection is replaced before the next request (see the module's docstring). A
        serial port stays open: its other meters use it too."""
        if self.port is None:
            self._stale = True

    def explain_silence(self, unit: int) -> str:
        """Why no reply matched: nothing came, a damaged frame, or another unit answered."""
        heard = self.heard
        if not heard:
            return ""
        if self.rtu:
            other = _rtu_sender(heard)
            if other is not None and other != unit:
                return f"; unit {other} answered instead: is `unit` right?"
            return "; a damaged reply arrived: check wiring, speed and parity"
        if len(heard) > 6 and heard[2:4] == b"\0\0" and heard[6] != unit:
            return f"; unit {heard[6]} answered instead: is `unit` right?"
        return (
            "; bytes that are not Modbus TCP arrived (a serial converter in transparent "
            "mode? then set framer: rtu)"
        )

    async def connect(self) -> None:
        if not await self.client.connect():
            why = self.why_down() if self.why_down is not None else None
            raise Disconnected(f"cannot connect to {self.where}" + (f": {why}" if why else ""))

    def lost(self) -> None:
        """The link broke mid-poll: the next `ensure` connects afresh."""
        self._stale = False  # a new connection carries no late reply
        self.client.close()

    async def close(self) -> None:
        if self._reconnecting:
            self._reconnecting.cancel()
            await asyncio.gather(self._reconnecting, return_exceptions=True)
        self.client.close()

    def _schedule(self) -> None:
        self.client.close()
        self._reconnecting = asyncio.create_task(self._reconnect(), name=f"reconnect {self.where}")
        self._reconnecting.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: reconnecting stopped: %r", self.where, task.exception())

    async def _reconnect(self) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Disconnected),
            wait=wait_exponential_jitter(multiplier=0.5, max=self._backoff_max),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self.connect()


def _rtu_sender(heard: bytes) -> int | None:
    """The unit of a CRC-valid RTU frame in what was heard, if there is one."""
    for start in range(len(heard)):
        for end in range(start + 4, len(heard) + 1):
            body, crc = heard[start : end - 2], heard[end - 2 : end]
            if FramerRTU.check_CRC(body, (crc[0] << 8) + crc[1]):
                return heard[start]
    return None


def tcp_link(link: ModbusTcp, name: str) -> Link:
    rtu = link.framer == "rtu"  # a serial converter in transparent mode
    client = AsyncModbusTcpClient(
        link.host,
        port=link.port,
        framer=FramerType.RTU if rtu else FramerType.SOCKET,
        timeout=link.timeout,
        retries=0,
        reconnect_delay=0,  # reconnection is ours, under tenacity
        name=name,
    )
    if rtu:
        client.ctx.framer = ResyncingRtuFramer(DECODER)
    else:
        client.ctx.framer.decoder = DECODER
    # The client's settings were deep-copied into its transaction manager (pymodbus
    # transport.py `ModbusProtocol.__init__`), which is all an async client reads
    # after it is made: one copy kept, not two (0.3 KB a meter, tracemalloc).
    client.comm_params = client.ctx.comm_params
    where = f"{link.host}:{link.port}" + (" (RTU over TCP)" if rtu else "")
    return Link(client, where, max(30.0, link.timeout), rtu=rtu)


def serial_link(link: ModbusRtu) -> Link:
    """The one link of a serial port, shared by every meter on it."""

    def make() -> Link:
        client = AsyncModbusSerialClient(
            link.port,
            baudrate=link.baudrate,
            parity=link.parity,
            stopbits=link.stopbits,
            bytesize=8,
            timeout=link.timeout,
            retries=0,
            reconnect_delay=0,
            name=link.port,
        )
        client.ctx.framer = ResyncingRtuFramer(DECODER)
        settings = f"{link.baudrate} 8{link.parity}{link.stopbits}"
        made = Link(client, f"{link.port} @{settings}", port=link.port, rtu=True)
        made.why_down = lambda: why_unopened(link.port, link.baudrate, settings)
        return made

    shared = per_port("modbus", link.port, make)
    shared.users += 1
    return shared


async def release(link: Link) -> None:
    """A driver is done with its link; the last user of a port closes it."""
    link.users -= 1
    if link.users <= 0:
        if link.port is not None:
            forget("modbus", link.port)
        await link.close()
