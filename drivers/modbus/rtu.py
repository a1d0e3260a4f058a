"""Modbus RTU: the meters of one RS-485 port share its client, one transaction at a time.

Meters on one port may be set to different speeds or framings (an old meter fixed at
2400 8N1 beside new ones at 9600 8E1). Each meter's turn holds the port's lock
(drivers.bus), so before its request the driver sets the meter's own baud rate,
parity and stop bits on the open port: pyserial applies a new `baudrate`, `parity` or
`stopbits` to an open port at once (termios tcsetattr, TCSANOW; pyserial 3.5
serialposix.py `_reconfigure_port`). Nothing is in flight then: the previous turn
ended with its reply (or its timeout) and the guard time. A switch costs a system
call, not a reopen; the line is only switched when the setting differs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from drivers.bus import lock_for, why_unopened
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.link import Link, serial_link
from drivers.modbus.settings import ModbusRtu, ModbusRtuDevice

GUARD = 0.02  # seconds of silence after each transaction


class ModbusRtuDriver(ModbusDriver):
    __slots__ = ("_guard", "_line", "_lock")

    def __init__(self, device: ModbusRtuDevice) -> None:
        link = device.modbus_rtu
        self._line = link
        self._lock = lock_for(link.port)
        # at least the 3.5 character times of silence Modbus RTU asks between frames
        self._guard = max(3.5 * 11 / link.baudrate, GUARD)
        serial = serial_link(link)
        super().__init__(device.name, device.points, serial, link.unit, link.timeout, link.max_gap)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """The port for one request: this meter's own timeout and line setting, whoever
        opened the port.

        The line then stays quiet a moment before the next request: RTU frames carry
        no transaction id, so a reply repeated by a meter or a repeater must arrive
        while nothing is asked, or it would be taken as the next request's answer.
        """
        async with self._lock:
            self.link.client.ctx.comm_params.timeout_connect = self.timeout
            switch_line(self.link, self._line)
            try:
                yield
            finally:
                await asyncio.sleep(self._guard)


def switch_line(link: Link, line: ModbusRtu) -> bool:
    """Set `line`'s speed and framing on the port's link, for the request about to be
    sent (the caller holds the port's lock); True when the line was switched.

    The client's connection parameters are set too, so a reconnect opens the port at
    the setting of the meter asking; `where` and the reason a port will not open then
    name that setting."""
    params = link.client.ctx.comm_params
    wanted = (line.baudrate, line.parity, line.stopbits)
    if (params.baudrate, params.parity, params.stopbits) == wanted:
        return False
    params.baudrate, params.parity, params.stopbits = wanted
    settings = f"{line.baudrate} 8{line.parity}{line.stopbits}"
    link.where = f"{line.port} @{settings}"
    link.why_down = lambda: why_unopened(line.port, line.baudrate, settings)
    port = getattr(link.client.ctx.transport, "sync_serial", None)
    if port is not None:  # open: pyserial reconfigures it at once, for each setting changed
        port.apply_settings(
            {"baudrate": line.baudrate, "parity": line.parity, "stopbits": line.stopbits}
        )
    return True
