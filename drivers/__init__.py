"""Drivers: one per protocol, each behind the small interface in drivers.base.

Registering a protocol is one line in `_FACTORIES`; modules are imported only
when a device uses them, so an agent without OPC UA devices never loads asyncua.
"""

from __future__ import annotations

import importlib

from config.models import AnyDevice, protocol_of
from domain.errors import DriverUnavailable
from drivers.base import Driver

__all__ = ["Driver", "make_driver"]

# protocol -> "module:class"
_FACTORIES = {
    "modbus_tcp": "drivers.modbus.tcp:ModbusTcpDriver",
    "dlt645": "drivers.dlt645.driver:Dlt645Driver",
    "modbus_rtu": "drivers.modbus.rtu:ModbusRtuDriver",
    "opcua": "drivers.opcua.driver:OpcUaDriver",
}


def make_driver(device: AnyDevice) -> Driver:
    protocol = protocol_of(device)
    target = _FACTORIES.get(protocol)
    if target is None:
        raise DriverUnavailable(
            f"{device.name}: the {protocol} driver is not available in this version "
            f"(available: {', '.join(_FACTORIES)})"
        )
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(device)
