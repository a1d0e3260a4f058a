"""DL/T 645 settings: what a technician writes under `dlt645:`, and a point
(one data identifier read as packed BCD).

A meter speaks one edition, 2007 or 1997. Its points' data identifiers say
which (8 hex digits in 2007, 4 in 1997), so `edition` under `dlt645:` may be
left out; written, it must agree with them. `check` tells a point (or a
profile) of the other edition at its line, and a device mixing both. Meters
of both editions may share one port: each device has its own."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from config.base import OWN_POINTS, DeviceBase, NodePath, PointBase, Reporter, Strict
from config.units import Duration
from domain.errors import InitError, Problem
from drivers.spec import InitSpec, ProtocolSpec, SerialLine

__all__ = [
    "DLT645",
    "SPECS",
    "WILDCARD",
    "Dlt645",
    "Dlt645Device",
    "Dlt645Point",
    "edition_of",
]

WILDCARD = "AAAAAAAAAAAA"  # any meter: read address, or the one meter of a point-to-point link


DI_DIGITS = {2007: 8, 1997: 4}  # hex digits of a data identifier in each edition
DI_EXAMPLE = {2007: "00010000", 1997: "9010"}  # forward active energy, total


class Dlt645(Strict):
    """A DL/T 645 electricity meter on an RS-485 bus (8 data bits, 1 stop bit)."""

    port: str = Field(description="Serial device, e.g. /dev/ttyUSB1.")
    baudrate: Literal[1200, 2400, 4800, 9600] = Field(default=2400, description="Bits per second.")
    parity: Literal["N", "E", "O"] = Field(default="E", description="The standard uses even (8E1).")
    address: str = Field(
        pattern=r"^(\d{12}|A{12})$",
        description='Meter address, 12 digits as printed on the meter, quoted: "000012345678"; '
        '"AAAAAAAAAAAA" reaches the only meter of a point-to-point link.',
    )
    timeout: Duration = Field(default=1.0, gt=0, description="Reply timeout of one request.")
    edition: Literal[2007, 1997] | None = Field(
        default=None,
        description="The edition of DL/T 645 the meter speaks: 2007, or 1997 for older "
        "meters (2-byte data identifiers such as 9010). Left out, the points' `di` say "
        "which (4 hex digits: 1997); written, they must match it.",
    )

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
        pattern=r"^([0-9A-Fa-f]{4}){1,2}$",
        description="Data identifier as in the standard: DI3..DI0 for DL/T 645-2007, e.g. "
        '"00010000"; DI1 DI0 for a meter with `edition: 1997`, e.g. "9010".',
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
    """A DL/T 645 electricity meter (2007 or 1997)."""

    dlt645: Dlt645
    points: list[Dlt645Point] = Field(default=[], description=OWN_POINTS)


def _modulus(point: Dlt645Point) -> float | None:
    """An unsigned BCD field wraps to 0 after its last all-nines value."""
    digits = len(point.format.split(".")[0])
    return None if point.signed else 10.0**digits * point.scale


def edition_of(device: Dlt645Device) -> int:
    """The edition a device's meter speaks: as written, else as its points' DIs say
    (the points a loaded device has include its profile's)."""
    if device.dlt645.edition is not None:
        return device.dlt645.edition
    short = [p for p in device.points if len(p.di) == DI_DIGITS[1997]]
    return 1997 if device.points and len(short) == len(device.points) else 2007


def _check(device: Dlt645Device, at: NodePath, doc: Reporter) -> Iterator[Problem]:
    """Every data identifier the device reads is of the one edition its meter speaks.

    The edition is the written one, else its profile's, else its first own
    point's. A device's own points of another edition are reported at their
    `di`, a profile of another edition at the device's `profile`: a 4-digit DI
    sent as 2007 (or the reverse) would only ever meet silence.
    """
    own = {p.name for p in device.points}
    profile = [p for p in _profile_points(device.profile) if p.name not in own]
    written = device.dlt645.edition
    edition: int
    if written is not None:
        edition, why = written, "dlt645.edition"
    elif profile:
        edition, why = _edition(profile[0].di), f"as its profile {device.profile}"
    elif device.points:
        edition, why = _edition(device.points[0].di), f"as its first point {device.points[0].name}"
    else:
        return
    digits, other = DI_DIGITS[edition], 1997 if edition == 2007 else 2007
    for j, point in enumerate(device.points):
        if len(point.di) != digits:
            fix = (
                f"or edition: {other} under dlt645: if the meter speaks that"
                if written is not None
                else "a meter speaks one edition"
            )
            message = (
                f'"{point.di}" is a DL/T 645-{other} data identifier; this meter speaks '
                f"{edition} ({why}), where a DI has {digits} hex digits, e.g. "
                f'"{DI_EXAMPLE[edition]}": write the {edition} DI, {fix}'
            )
            yield doc.problem((*at, "points", j, "di"), message)
    wrong = [p for p in profile if len(p.di) != digits]
    if wrong and written is not None:
        message = (
            f"profile {device.profile} reads DL/T 645-{other} data identifiers "
            f"({wrong[0].di} for {wrong[0].name}); this meter speaks {edition} "
            f"(dlt645.edition): set edition: {other} under dlt645: (or leave it out) if the "
            f"meter speaks {other}, or use a {edition} profile"
        )
        yield doc.problem((*at, "profile"), message)


def _edition(di: str) -> int:
    return 1997 if len(di) == DI_DIGITS[1997] else 2007


def _profile_points(name: str | None) -> list[Dlt645Point]:
    """The points of a DL/T 645 profile (this folder's profiles/), or none if it is not
    one or cannot be read: the loader reports that. Read here, not through the loader,
    which sits above the protocols."""
    if name is None:
        return []
    import yaml  # here, not at the top: the daemon never reads YAML (config/loader.py)

    path = Path(__file__).parent / "profiles" / f"{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return [Dlt645Point.model_validate(p) for p in data["points"]]
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValidationError):
        return []


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
    summary="DL/T 645-2007 and -1997: Chinese electricity meters on an RS-485 bus.",
    example={"port": "/dev/ttyUSB1", "address": "000012345678"},
    init=InitSpec(
        "--dlt645", "PORT", "a DL/T 645 meter on /dev/ttyUSB1 ...", _fields, "dlt645-2007-energy"
    ),
    serial_line=_serial_line,
    modulus=_modulus,
    check=_check,
)
SPECS = (DLT645,)
