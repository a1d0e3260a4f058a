"""DL/T 645-2007 settings: what a technician writes under `dlt645:`, and a point
(one data identifier read as packed BCD)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from config.base import OWN_POINTS, DeviceBase, PointBase, Strict
from config.units import Duration
from domain.errors import InitError
from drivers.spec import InitSpec, ProtocolSpec, SerialLine

__all__ = ["DLT645", "SPECS", "WILDCARD", "Dlt645", "Dlt645Device", "Dlt645Point"]

WILDCARD = "AAAAAAAAAAAA"  # any meter: read address, or the one meter of a point-to-point link


class Dlt645(Strict):
    """A DL/T 645-2007 electricity meter on an RS-485 bus (8 data bits, 1 stop bit)."""

    port: str = Field(description="Serial device, e.g. /dev/ttyUSB1.")
    baudrate: Literal[1200, 2400, 4800, 9600] = Field(default=2400, description="Bits per second.")
    parity: Literal["N", "E", "O"] = Field(default="E", description="The standard uses even (8E1).")
    address: str = Field(
        pattern=r"^(\d{12}|A{12})$",
        description='Meter address, 12 digits as printed on the meter, quoted: "000012345678"; '
        '"AAAAAAAAAAAA" reaches the only meter of a point-to-point link.',
    )
    timeout: Duration = Field(default=1.0, gt=0, description="Reply timeout of one request.")

    @field_validator("address")
    @classmethod
    def _not_broadcast(cls, value: str) -> str:
        if value == "999999999999":
            raise ValueError(
                "999999999999 is the broadcast address, which meters never answer; "
                "write the meter's own address"
            )
        return value


class Dlt645Point(PointBase):
    """One DL/T 645 data identifier."""

    di: str = Field(
        pattern=r"^[0-9A-Fa-f]{8}$",
        description='Data identifier DI3..DI0 as in the standard, e.g. "00010000".',
    )
    format: str = Field(
        default="XXXXXX.XX",
        pattern=r"^X+(\.X+)?$",
        description="BCD format of the value, e.g. XXXXXX.XX (kWh: 8 digits, 2 decimals, "
        "4 bytes) or XX.XXXX (kW); the reply must hold exactly that many bytes.",
    )
    signed: bool = Field(
        default=False,
        description="Bit 0x80 of the most significant byte (sent last) is the sign: "
        "currents, powers, power factor.",
    )


class Dlt645Device(DeviceBase):
    """A DL/T 645-2007 electricity meter."""

    dlt645: Dlt645
    points: list[Dlt645Point] = Field(default=[], description=OWN_POINTS)


def _modulus(point: Dlt645Point) -> float | None:
    """An unsigned BCD field wraps to 0 after its last all-nines value."""
    digits = len(point.format.split(".")[0])
    return None if point.signed else 10.0**digits * point.scale


def _serial_line(link: Dlt645) -> SerialLine:
    settings = f"{link.baudrate} {link.parity}1"
    return SerialLine(link.port, settings, "address", link.address, link.address == WILDCARD)


def _fields(target: str, options: Mapping[str, Any]) -> dict[str, object]:
    if not options.get("address"):
        raise InitError(
            "--dlt645 needs --address: the 12 digits printed on the meter "
            "(or AAAAAAAAAAAA for the only meter on the line)"
        )
    return {
        "port": target,
        "baudrate": options.get("baudrate") or 2400,
        "parity": options.get("parity") or "E",
        "address": options["address"],
    }


DLT645 = ProtocolSpec(
    key="dlt645",
    settings=Dlt645,
    device=Dlt645Device,
    point=Dlt645Point,
    family="dlt645",
    driver="drivers.dlt645.driver:Dlt645Driver",
    summary="DL/T 645-2007: Chinese electricity meters on an RS-485 bus.",
    example={"port": "/dev/ttyUSB1", "address": "000012345678"},
    init=InitSpec(
        "--dlt645", "PORT", "a DL/T 645 meter on /dev/ttyUSB1 ...", _fields, "dlt645-2007-energy"
    ),
    serial_line=_serial_line,
    modulus=_modulus,
)
SPECS = (DLT645,)
