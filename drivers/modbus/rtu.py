"""Modbus RTU: the meters of one RS-485 port share its client, one transaction at a time."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from config.models import ModbusRtuDevice
from drivers.bus import lock_for
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.link import serial_link


class ModbusRtuDriver(ModbusDriver):
    def __init__(self, device: ModbusRtuDevice) -> None:
        link = device.modbus_rtu
        self._lock = lock_for(link.port)
        serial = serial_link(link)
        super().__init__(device.name, device.points, serial, link.unit, link.timeout, link.max_gap)

    def _turn(self) -> AbstractAsyncContextManager[None]:
        return self._lock
