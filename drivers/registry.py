"""The protocols this agent speaks: one line per protocol folder, below.

Each line names a settings module, whose `SPECS` declares the protocol (see
drivers/spec.py). Module names rather than imports: an import plus a tuple
entry would be two lines per protocol, and a name is all that is needed to
load it. Only the settings are imported here (pydantic models and plain
functions); a driver module, with pymodbus or asyncua behind it, is imported
by `make_driver` when a configured device speaks its protocol.
"""

from __future__ import annotations

import importlib

from config.base import DeviceBase
from domain.errors import DriverUnavailable
from drivers.base import Driver
from drivers.spec import ProtocolSpec, WriteSpec

__all__ = ["PROTOCOLS", "WRITES", "make_driver", "spec_of"]

_SETTINGS = (
    "drivers.modbus.settings",
    "drivers.opcua.settings",
    "drivers.dlt645.settings",
    "drivers.cjt188.settings",
)


def _collect() -> dict[str, ProtocolSpec]:
    """Every spec by its key, after the checks a new protocol could fail."""
    specs: dict[str, ProtocolSpec] = {}
    for name in _SETTINGS:
        for spec in importlib.import_module(name).SPECS:
            if spec.key in specs:
                raise ValueError(f"{name}: protocol {spec.key} is declared twice")
            specs[spec.key] = spec
    every = list(specs.values())
    for spec in every:
        if any(s.family == spec.family and s.point is not spec.point for s in every):
            raise ValueError(f"profile family {spec.family}: one point model serves it all")
        key = spec.write.key if spec.write else None
        if any(s.write and s.write.key == key and s.write != spec.write for s in every):
            raise ValueError(f"rule action {key}: one write model serves it all")
    return specs


PROTOCOLS: dict[str, ProtocolSpec] = _collect()
"""Protocol key (the device's YAML key) -> its spec, in the order above."""

WRITES: dict[str, WriteSpec] = {
    spec.write.key: spec.write for spec in PROTOCOLS.values() if spec.write is not None
}
"""Rule action key (modbus_write ...) -> the write it is."""

_BY_DEVICE = {spec.device: spec for spec in PROTOCOLS.values()}


def spec_of(device: DeviceBase) -> ProtocolSpec:
    """The spec of a validated device (of one of the registered device models)."""
    return _BY_DEVICE[type(device)]


def make_driver(device: DeviceBase) -> Driver:
    """The device's driver, its module imported now; DriverUnavailable if there is none."""
    spec = _BY_DEVICE.get(type(device))
    if spec is None:
        raise DriverUnavailable(
            f"{device.name}: the {type(device).__name__} driver is not available in this "
            f"version (available: {', '.join(PROTOCOLS)})"
        )
    module, _, name = spec.driver.partition(":")
    driver: Driver = getattr(importlib.import_module(module), name)(device)
    return driver
