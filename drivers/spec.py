"""What the rest of the agent knows about a protocol, declared once in its folder.

Each `drivers/<protocol>/settings.py` makes one `ProtocolSpec` per YAML key it
serves, and `drivers/registry.py` collects them. The config models, checks and
profiles, the pipeline's counter rollover, `init`, `probe` and rule actions ask
the spec; none of them names a protocol. A spec holds models and plain
functions only: the driver is named "module:Class" and imported when a device
uses it, so declaring a protocol never loads its libraries.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from config.base import Check, DeviceBase, PointBase, Strict


@dataclass(frozen=True, slots=True)
class SerialLine:
    """A device's share of a serial line: devices on one port must use one protocol at
    one setting (unless its driver switches the setting per device), and each its own
    address."""

    port: str
    settings: str  # "9600 N1": what every device on the port must agree on
    key: str  # the settings field holding the address: "unit", "address"
    address: object
    wildcard: bool = False  # the address answers for any meter: it must be alone on the line
    # the driver sets each device's own `settings` on the port before its exchange, under the
    # port's lock: devices on one port may then differ in them (drivers/modbus/rtu.py)
    switches: bool = False


@dataclass(frozen=True, slots=True)
class StarterPoint:
    """A point `init` writes out from what it found on the meter (or its server)."""

    fields: Mapping[str, object]  # the point's YAML: name, node, unit, kind; {}: a note only
    note: str  # the comment after it: where it was found, what it read
    change: bool = False  # a guess the technician must confirm: marked # CHANGE


@dataclass(frozen=True, slots=True)
class InitSpec:
    """How `edge-agent init` is told about a meter of this protocol.

    `fields(target, options)` turns the flag's value and the shared options
    (unit, baudrate, parity, address: None when not given) into the link's
    YAML fields, or raises InitError saying what is wrong with them.

    `discover` names ("module:function") an async function for a protocol
    whose meters differ too much for one profile: `(target, options, known)`
    asks the meter or its server and returns the StarterPoints to write, the
    ones matching a point of `known` (the `profile`'s points) under its name;
    it raises domain.errors when it cannot ask. `init --offline` writes the
    profile's points instead, each marked CHANGE.
    """

    flag: str  # --modbus-tcp
    metavar: str  # HOST[:PORT]
    help: str
    fields: Callable[[str, Mapping[str, Any]], dict[str, object]]
    profile: str | None = None  # used when --profile is not given
    discover: str | None = None  # "drivers.opcua.starter:discover"


class WriteModel(Protocol):
    """A rule's write (modbus_write, opcua_write ...) as a rule action sees it."""

    @property
    def device(self) -> str: ...

    @property
    def value(self) -> bool | int | float: ...

    def output(self) -> str:
        """The output written, as a technician names it: 'coil 5', 'node ns=2;s=Lamp'."""
        ...


@dataclass(frozen=True, slots=True)
class WriteSpec:
    """The rule action a protocol serves: its key under `action:`, its model, and the
    checks of its own values (which device it targets is checked for every write)."""

    key: str  # modbus_write
    model: type[Strict]
    description: str
    check: Check | None = None


def _no_line(settings: Any) -> SerialLine | None:
    return None


def _no_modulus(point: Any) -> float | None:
    return None


@dataclass(frozen=True)
class ProtocolSpec:
    """Everything outside a protocol's folder needs to know about it."""

    key: str  # the device's YAML key, e.g. "modbus_tcp"
    settings: type[Strict]  # the model under that key
    device: type[DeviceBase]
    point: type[PointBase]
    family: str  # which profiles serve it: "modbus" for modbus_tcp and modbus_rtu
    driver: str  # "drivers.modbus.tcp:ModbusTcpDriver", imported only when a device uses it
    summary: str  # one line for the docs
    example: Mapping[str, Any]  # a link that validates, shown in the docs, used by the tests
    init: InitSpec
    serial_line: Callable[[Any], SerialLine | None] = _no_line
    path_fields: tuple[str, ...] = ()  # settings fields where ${VAR} is expanded
    modulus: Callable[[Any], float | None] = _no_modulus  # where a counter point's register wraps
    check: Check | None = None  # of a device, at ("devices", i)
    check_point: Check | None = None  # of a point, a device's or a profile's
    write: WriteSpec | None = None

    def link(self, device: DeviceBase) -> Any:
        """The device's settings under this protocol's key."""
        return getattr(device, self.key)

    @property
    def folder(self) -> Path:
        """The protocol's folder (its profiles are in `profiles/` there)."""
        module = sys.modules[self.settings.__module__]
        assert module.__file__ is not None
        return Path(module.__file__).parent
