"""Modbus RTU: the meters of one RS-485 port share its client, one transaction at a time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from drivers.bus import lock_for
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.link import serial_link
from drivers.modbus.settings import ModbusRtuDevice

GUARD = 0.02  # seconds of silence after each transaction


class ModbusRtuDriver(ModbusDriver):
    def __init__(self, device: ModbusRtuDevice) -> None:
        link = device.modbus_rtu
        self._lock = lock_for(link.port)
        # at least the 3.5 character times of silence Modbus RTU asks between frames
        self._guard = max(3.5 * 11 / link.baudrate, GUARD)
        serial = serial_link(link)
        super().__init__(device.name, device.points, serial, link.unit, link.timeout, link.max_gap)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """The port for one request: this meter's own timeout, whoever opened the port.

        The line then stays quiet a moment before the next request: RTU frames carry
        no transaction id, so a reply repeated by a meter or a repeater must arrive
        while nothing is asked, or it would be taken as the next request's answer.
        """
        async with self._lock:
            self.link.client.ctx.comm_params.timeout_connect = self.timeout
            try:
                yield
            finally:
                await asyncio.sleep(self._guard)
