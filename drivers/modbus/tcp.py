"""Modbus TCP driver: one pymodbus async client per device.

pymodbus exceptions are translated into agent.errors at `_execute`, the one
seam; `read` turns every failure into bad-quality readings. Reconnection runs
in the background under tenacity (exponential backoff with jitter), so a dead
meter costs one failed connect per backoff step, never a stalled poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from agent.errors import BadReply, DeviceRejected, DeviceTimeout, Disconnected, TransientError
from config.models import ModbusTcpDevice
from drivers.base import Quality, Reading
from drivers.modbus.codec import DecodeError, Request, decode_point, plan

log = logging.getLogger(__name__)

_SPLIT_ON = (2, 3)  # illegal data address / value: the block, not the points, may be wrong

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


class ModbusTcpDriver:
    def __init__(self, device: ModbusTcpDevice, *, max_gap: int = 8) -> None:
        self.device = device.name
        self._link = device.modbus_tcp
        self._points = {p.name: p for p in device.points}
        self.requests = plan(device.points, max_gap)
        self._client = AsyncModbusTcpClient(
            self._link.host,
            port=self._link.port,
            timeout=self._link.timeout,
            retries=0,
            reconnect_delay=0,  # reconnection is ours, under tenacity
            name=device.name,
        )
        self._reconnecting: asyncio.Task[None] | None = None

    def describe(self) -> str:
        registers = sum(r.count for r in self.requests)
        return (
            f"{self.device}: {len(self.requests)} requests, {registers} registers, "
            f"{len(self._points)} points"
        )

    async def read(self) -> list[Reading]:
        if not self._client.connected:
            reason = await self._connect_or_schedule()
            if reason:
                return self._all_bad(reason)
        readings: list[Reading] = []
        failure: str | None = None
        retried: set[int] = set()
        queue = list(self.requests)
        while queue:
            request = queue.pop(0)
            if failure is not None:
                readings.extend(self._bad(request, failure))
                continue
            try:
                values = await self._execute(request)
            except Disconnected as exc:
                # dropped between requests (gateways that close after each answer):
                # connect again once for this request, then give up until the next poll
                self._client.close()
                if id(request) not in retried:
                    retried.add(id(request))
                    with contextlib.suppress(Disconnected):
                        await self._connect()
                        queue.insert(0, request)
                        continue
                failure = str(exc)
                readings.extend(self._bad(request, failure))
            except TransientError as exc:
                failure = str(exc)  # the link is bad: don't wait out every request
                readings.extend(self._bad(request, failure))
            except DeviceRejected as exc:
                pieces = self._split(request) if exc.code in _SPLIT_ON else []
                if pieces:
                    queue[:0] = pieces
                else:
                    readings.extend(self._bad(request, str(exc)))
            except BadReply as exc:
                readings.extend(self._bad(request, str(exc)))
            else:
                readings.extend(self._decoded(request, values))
        return readings

    def _split(self, request: Request) -> list[Request]:
        """Smaller requests for a block the meter refused, remembered for later polls.

        Real meters often refuse a read that spans registers they do not have
        (the holes a coalesced request bridges): read the points without the
        holes, and one by one if that fails too.
        """
        if len(request.points) < 2:
            return []
        pieces = plan(request.points, max_gap=0)
        if len(pieces) == 1:
            pieces = [plan([p], max_gap=0)[0] for p in request.points]
        at = self.requests.index(request)
        self.requests[at : at + 1] = pieces
        log.info(
            "%s: the meter refused %s; reading it as %d requests from now on",
            self.device, request, len(pieces),
        )  # fmt: skip
        return pieces

    async def close(self) -> None:
        if self._reconnecting:
            self._reconnecting.cancel()
            await asyncio.gather(self._reconnecting, return_exceptions=True)
        self._client.close()

    # --- the seam to pymodbus --------------------------------------------------

    async def _execute(self, request: Request) -> list[int] | list[bool]:
        where = f"{self.device} unit {self._link.unit} {request}"
        call = {
            "holding": self._client.read_holding_registers,
            "input": self._client.read_input_registers,
            "coil": self._client.read_coils,
            "discrete": self._client.read_discrete_inputs,
        }[request.function]
        try:
            reply = await call(request.address, count=request.count, device_id=self._link.unit)
        except ConnectionException as exc:
            raise Disconnected(f"{where}: not connected") from exc
        except ModbusIOException as exc:
            if not self._client.connected:
                raise Disconnected(f"{where}: connection lost") from exc
            raise DeviceTimeout(f"{where}: no reply within {self._link.timeout:g}s") from exc
        except TimeoutError as exc:
            raise DeviceTimeout(f"{where}: no reply within {self._link.timeout:g}s") from exc
        except OSError as exc:
            raise Disconnected(f"{where}: {exc}") from exc
        except ModbusException as exc:
            raise BadReply(f"{where}: {exc}") from exc
        if reply.isError():
            code = getattr(reply, "exception_code", 0)
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise DeviceRejected(f"{where}: exception {code:#04x} {name}", code)
        if reply.dev_id not in (self._link.unit, 0):
            raise BadReply(f"{where}: reply from unit {reply.dev_id}")
        return reply.bits if request.function in ("coil", "discrete") else reply.registers

    # --- connection -------------------------------------------------------------

    async def _connect_or_schedule(self) -> str | None:
        """Try to connect now; if that fails, keep trying in the background with backoff.

        A link that dropped (a gateway closing idle connections, a meter power-cycled)
        is back within one poll; a dead meter costs one failed connect per backoff step.
        """
        if self._reconnecting and not self._reconnecting.done():
            return f"{self.device}: reconnecting to {self._link.host}:{self._link.port}"
        try:
            await self._connect()
        except Disconnected as exc:
            self._schedule_reconnect()
            return str(exc)
        return None

    async def _connect(self) -> None:
        if not await self._client.connect():
            raise Disconnected(
                f"{self.device}: cannot connect to {self._link.host}:{self._link.port}"
            )

    def _schedule_reconnect(self) -> None:
        if self._reconnecting and not self._reconnecting.done():
            return
        self._client.close()
        self._reconnecting = asyncio.create_task(self._reconnect(), name=f"reconnect {self.device}")
        self._reconnecting.add_done_callback(self._reconnect_ended)

    def _reconnect_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: reconnecting stopped: %r", self.device, task.exception())

    async def _reconnect(self) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Disconnected),
            wait=wait_exponential_jitter(multiplier=0.5, max=max(30.0, self._link.timeout)),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._connect()

    # --- readings -----------------------------------------------------------------

    def _decoded(self, request: Request, values: list[int] | list[bool]) -> list[Reading]:
        now = time.time()
        readings = []
        for point in request.points:
            try:
                value = decode_point(request, values, point)
            except DecodeError as exc:
                reason = f"{self.device} {point.name} @{point.address:#06x}: {exc}"
                readings.append(
                    Reading(self.device, point.name, now, None, point.unit, Quality.BAD, reason)
                )
            else:
                readings.append(Reading(self.device, point.name, now, value, point.unit))
        return readings

    def _bad(self, request: Request, reason: str) -> list[Reading]:
        now = time.time()
        return [
            Reading(self.device, p.name, now, None, p.unit, Quality.BAD, reason)
            for p in request.points
        ]

    def _all_bad(self, reason: str) -> list[Reading]:
        return [bad for request in self.requests for bad in self._bad(request, reason)]
