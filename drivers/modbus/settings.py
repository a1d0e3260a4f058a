"""Modbus settings: what a technician writes under `modbus_tcp:` and `modbus_rtu:`,
a Modbus point, and a rule's `modbus_write`. TCP and RTU share points, profiles
and writes; they differ in how the meter is reached.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from config.base import OWN_POINTS, DeviceBase, NodePath, PointBase, Reporter, Strict
from config.units import Duration
from domain.errors import InitError, Problem
from drivers.spec import InitSpec, ProtocolSpec, SerialLine, WriteSpec

__all__ = [
    "MODBUS_RTU",
    "MODBUS_TCP",
    "REGISTER_COUNT",
    "SPECS",
    "ModbusPoint",
    "ModbusRtu",
    "ModbusRtuDevice",
    "ModbusTcp",
    "ModbusTcpDevice",
    "ModbusType",
    "ModbusWrite",
]


class ModbusTcp(Strict):
    """A Modbus TCP server: the meter itself or a serial gateway."""

    host: str = Field(description="IP address or host name of the meter or gateway.")
    port: int = Field(default=502, ge=1, le=65535, description="TCP port.")
    unit: int = Field(default=1, ge=0, le=255, description="Modbus unit (slave) id.")
    timeout: Duration = Field(default=2.0, gt=0, description="Reply timeout of one request.")
    framer: Literal["socket", "rtu"] = Field(
        default="socket",
        description="socket: Modbus TCP; rtu: RTU frames over TCP, for a serial-to-Ethernet "
        "converter in transparent mode.",
    )
    max_gap: int = Field(
        default=8,
        ge=0,
        le=124,
        description="Largest hole (registers) bridged to read neighbouring points in one request.",
    )


class ModbusRtu(Strict):
    """A Modbus RTU meter on an RS-485 bus; meters on one port are polled in turn."""

    port: str = Field(description="Serial device, e.g. /dev/ttyUSB0.")
    baudrate: int = Field(default=9600, gt=0, description="Bits per second, as set on the meter.")
    parity: Literal["N", "E", "O"] = Field(default="N", description="None, even or odd.")
    stopbits: Literal[1, 2] = Field(default=1, description="Stop bits, as set on the meter.")
    unit: int = Field(default=1, ge=1, le=247, description="Modbus unit (slave) id on the bus.")
    timeout: Duration = Field(default=1.0, gt=0, description="Reply timeout of one request.")
    max_gap: int = Field(
        default=8,
        ge=0,
        le=124,
        description="Largest hole (registers) bridged to read neighbouring points in one request.",
    )


ModbusType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool"
]
REGISTER_COUNT = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
    "bool": 1,
}
"""Registers per type: the one table of which options each type allows."""
_WRAP_BITS = {"uint16": 16, "uint32": 32, "uint64": 64}


class ModbusPoint(PointBase):
    """One value read from Modbus registers or bits."""

    address: int = Field(ge=0, le=65535, description="0-based register address (PDU address).")
    function: Literal["holding", "input", "coil", "discrete"] = Field(
        default="holding",
        description="Table: holding (FC3), input (FC4), coil (FC1), discrete (FC2).",
    )
    type: ModbusType = Field(
        default="uint16", description="Register encoding; coil and discrete read bool."
    )
    word_order: Literal["big", "little"] = Field(
        default="big", description="big: high word first (the common case)."
    )
    bit: int | None = Field(
        default=None,
        ge=0,
        le=63,
        description="Read one bit of the register value (0 = least significant): 1.0 or 0.0.",
    )
    byte_order: Literal["big", "little"] = Field(
        default="big", description="Byte order within a register: big as the standard says."
    )

    @model_validator(mode="after")
    def _a_bit_reads_bool(self) -> ModbusPoint:
        """A coil or discrete input without a type reads one bit: its type is bool.

        `type` stays out of model_fields_set, so checks still tell it was not written.
        """
        if self.function in ("coil", "discrete") and "type" not in self.model_fields_set:
            object.__setattr__(self, "type", "bool")
        return self


class ModbusTcpDevice(DeviceBase):
    """A meter reached over Modbus TCP."""

    modbus_tcp: ModbusTcp
    points: list[ModbusPoint] = Field(default=[], description=OWN_POINTS)


class ModbusRtuDevice(DeviceBase):
    """A meter on an RS-485 bus speaking Modbus RTU."""

    modbus_rtu: ModbusRtu
    points: list[ModbusPoint] = Field(default=[], description=OWN_POINTS)


class ModbusWrite(Strict):
    """Write one coil or register while the alarm is raised (a stack light)."""

    device: str = Field(description="A modbus_tcp or modbus_rtu device.")
    coil: int | None = Field(default=None, ge=0, le=65535, description="Coil address.")
    register_: int | None = Field(
        default=None, alias="register", ge=0, le=65535, description="Holding register address."
    )
    value: bool | int = Field(description="true/false for a coil, a number for a register.")

    def output(self) -> str:
        return f"coil {self.coil}" if self.coil is not None else f"register {self.register_}"


# --- checks that need a position -------------------------------------------------


def _check_point(point: ModbusPoint, at: NodePath, doc: Reporter) -> Iterator[Problem]:
    """Options that fit the point's type (REGISTER_COUNT is the table)."""
    written = point.model_fields_set
    kind = point.type
    if "word_order" in written and REGISTER_COUNT[kind] == 1:
        default = "" if "type" in written else f" (the default for function: {point.function})"
        message = f"word_order is meaningless with type: {kind}{default}"
        yield doc.problem((*at, "word_order"), message, key=True)
    if point.bit is not None and (kind.startswith("float") or kind == "bool"):
        message = f"bit needs an integer register type (got {kind})"
        yield doc.problem((*at, "bit"), message)
    elif point.bit is not None and point.bit >= 16 * REGISTER_COUNT[kind]:
        message = f"bit {point.bit} is beyond the {16 * REGISTER_COUNT[kind]} bits of {kind}"
        yield doc.problem((*at, "bit"), message)
    if point.function in ("coil", "discrete") and "type" in written and point.type != "bool":
        message = f"a {point.function} is a single bit: type must be bool (got {point.type})"
        yield doc.problem((*at, "type"), message)


def _check_write(write: ModbusWrite, at: NodePath, doc: Reporter) -> Iterator[Problem]:
    if (write.coil is None) == (write.register_ is None):
        yield doc.problem(at, "needs exactly one of coil: or register:", key=True)
    elif write.coil is not None and not isinstance(write.value, bool):
        yield doc.problem((*at, "value"), f"a coil takes true or false (got {write.value})")
    elif write.register_ is not None and isinstance(write.value, bool):
        yield doc.problem((*at, "value"), f"a register takes a number (got {write.value})")
    elif write.register_ is not None and not -32768 <= write.value <= 65535:
        yield doc.problem((*at, "value"), f"must fit in 16 bits (got {write.value})")


def _modulus(point: ModbusPoint) -> float | None:
    """An unsigned integer register wraps to 0 at 2**bits."""
    bits = _WRAP_BITS.get(point.type)
    return 2.0**bits * point.scale if bits else None


def _serial_line(link: ModbusRtu) -> SerialLine:
    settings = f"{link.baudrate} {link.parity}{link.stopbits}"
    return SerialLine(link.port, settings, "unit", link.unit, switches=True)  # see rtu.py


# --- edge-agent init --------------------------------------------------------------


def _tcp_fields(target: str, options: Mapping[str, Any]) -> dict[str, object]:
    host, sep, port = target.rpartition(":")
    fields: dict[str, object] = {"host": host if sep else target}
    if sep:
        if not port.isdigit():
            raise InitError(f"--modbus-tcp {target}: the port must be a number")
        fields["port"] = int(port)
    fields["unit"] = options.get("unit") if options.get("unit") is not None else 1
    return fields


def _rtu_fields(target: str, options: Mapping[str, Any]) -> dict[str, object]:
    return {
        "port": target,
        "baudrate": options.get("baudrate") or 9600,
        "parity": options.get("parity") or "N",
        "unit": options.get("unit") if options.get("unit") is not None else 1,
    }


_WRITE = WriteSpec("modbus_write", ModbusWrite, "A Modbus coil or holding register.", _check_write)

MODBUS_TCP = ProtocolSpec(
    key="modbus_tcp",
    settings=ModbusTcp,
    device=ModbusTcpDevice,
    point=ModbusPoint,
    family="modbus",
    driver="drivers.modbus.tcp:ModbusTcpDriver",
    summary="Modbus TCP: a meter, or a serial gateway in front of meters, on the network.",
    example={"host": "192.168.10.21", "unit": 1},
    init=InitSpec("--modbus-tcp", "HOST[:PORT]", "a Modbus TCP meter or gateway", _tcp_fields),
    modulus=_modulus,
    check_point=_check_point,
    write=_WRITE,
)
MODBUS_RTU = ProtocolSpec(
    key="modbus_rtu",
    settings=ModbusRtu,
    device=ModbusRtuDevice,
    point=ModbusPoint,
    family="modbus",
    driver="drivers.modbus.rtu:ModbusRtuDriver",
    summary="Modbus RTU: meters on an RS-485 bus, asked one at a time.",
    example={"port": "/dev/ttyUSB0", "baudrate": 9600, "unit": 3},
    init=InitSpec("--modbus-rtu", "PORT", "a Modbus RTU meter on /dev/ttyUSB0 ...", _rtu_fields),
    serial_line=_serial_line,
    modulus=_modulus,
    check_point=_check_point,
    write=_WRITE,
)
SPECS = (MODBUS_TCP, MODBUS_RTU)
