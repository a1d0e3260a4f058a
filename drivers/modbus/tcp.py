"""Modbus TCP: one connection per device (a meter, or a gateway in front of meters)."""

from __future__ import annotations

from drivers.modbus.driver import ModbusDriver
from drivers.modbus.link import tcp_link
from drivers.modbus.settings import ModbusTcpDevice


class ModbusTcpDriver(ModbusDriver):
    __slots__ = ()

    def __init__(self, device: ModbusTcpDevice) -> None:
        link = device.modbus_tcp
        tcp = tcp_link(link, device.name)
        tcp.users = 1
        super().__init__(device.name, device.points, tcp, link.unit, link.timeout, link.max_gap)
