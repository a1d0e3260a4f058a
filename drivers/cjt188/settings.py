"""CJ/T 188 settings: what a technician writes under `cjt188:` and a point (one field of
a data identifier's reply), checked against the standard's tables (drivers/cjt188/tables.py,
where their sources are named).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from config.base import OWN_POINTS, DeviceBase, NodePath, PointBase, Reporter, Strict
from config.units import Duration
from domain.errors import InitError, Problem
from drivers.cjt188.tables import (
    ALL_FIELDS,
    DIMENSIONS,
    METER_TYPES,
    STATUS_FIELDS,
    family_of,
    field_unit,
    fields_of,
    kind_of,
)
from drivers.spec import InitSpec, ProtocolSpec, SerialLine

__all__ = [
    "CJT188",
    "SPECS",
    "WILDCARD",
    "Cjt188",
    "Cjt188Device",
    "Cjt188Point",
    "meter_type_code",
]

# --- the models ------------------------------------------------------------------

WILDCARD = "AA" * 7  # any meter: the only meter of a point-to-point link
BROADCAST = "99" * 7
_HEX_TYPE = re.compile(r"^[0-9A-Fa-f]{2}$")

Field_ = Literal[tuple(ALL_FIELDS)]  # type: ignore[valid-type]


def meter_type_code(value: str) -> int:
    """The T byte of a meter type as written: a name (heat) or two hex digits ("20")."""
    return METER_TYPES[value] if value in METER_TYPES else int(value, 16)


class Cjt188(Strict):
    """A CJ/T 188 water, heat or gas meter on RS-485 (or M-Bus through a converter)."""

    port: str = Field(description="Serial device, e.g. /dev/ttyUSB2.")
    baudrate: Literal[1200, 2400, 4800, 9600] = Field(
        default=2400, description="Bits per second (the standard's default is 2400)."
    )
    parity: Literal["N", "E", "O"] = Field(
        default="E", description="The standard uses even parity (8E1)."
    )
    address: str = Field(
        pattern=r"^[0-9A-Fa-f]{14}$",
        description="Meter address A6..A0, 14 digits as printed on the meter, quoted: "
        '"00000012345678"; "AAAAAAAAAAAAAA" reaches the only meter of a point-to-point link.',
    )
    meter_type: str = Field(
        description="Meter type T: cold_water (10H), hot_water (11H), drinking_water (12H), "
        "reclaimed_water (13H), heat (20H), cooling (21H), heat_and_cooling (22H), gas (30H), "
        'or two hex digits from 10 to 39, quoted ("14").'
    )
    version: Literal["2004", "2018"] = Field(
        default="2004",
        description="Edition the meter follows: 2004 sends a data identifier high byte first "
        "(90 1F), 2018 low byte first (1F 90).",
    )
    di_order: Literal["high_first", "low_first"] | None = Field(
        default=None,
        description="Overrides the edition's byte order of the data identifier, for a meter "
        "that does the other (replies are accepted in either order).",
    )
    timeout: Duration = Field(default=1.5, gt=0, description="Reply timeout of one request.")

    @field_validator("address")
    @classmethod
    def _not_broadcast(cls, value: str) -> str:
        value = value.upper()
        if value == BROADCAST:
            raise ValueError(
                "99999999999999 is the broadcast address, which meters never answer; "
                "write the meter's own address"
            )
        return value

    @field_validator("meter_type", mode="before")
    @classmethod
    def _known_type(cls, value: Any) -> Any:
        if isinstance(value, int):
            raise ValueError(
                f"write the meter type as a name (heat, gas, cold_water ...) or as two hex "
                f'digits in quotes ("{value}"): a bare number is ambiguous'
            )
        unknown = isinstance(value, str) and value not in METER_TYPES
        if unknown and (not _HEX_TYPE.match(value) or family_of(int(value, 16)) is None):
            names = ", ".join(METER_TYPES)
            raise ValueError(
                f"{value!r} is not a water, heat or gas meter type: one of {names}, "
                "or two hex digits from 10 to 39"
            )
        return value

    @property
    def type_code(self) -> int:
        return meter_type_code(self.meter_type)

    @property
    def high_first(self) -> bool:
        """The data identifier goes high byte first on the wire (90 1F)."""
        if self.di_order is not None:
            return self.di_order == "high_first"
        return self.version == "2004"


class Cjt188Point(PointBase):
    """One field of a CJ/T 188 data identifier's reply."""

    di: str = Field(
        default="901F",
        pattern=r"^(901[Ff]|[Dd]12[0-9A-Ba-b])$",
        description='Data identifier: "901F" (the measurement data) or "D120" .. "D12B" '
        "(the value at the 1st .. 12th settlement date back).",
    )
    field: Field_ = Field(  # type: ignore[valid-type]
        description="What the point reads of the reply: flow, settlement_flow (water, gas, "
        "heat); heat, settlement_heat, power, flow_rate, supply_temp, return_temp, hours "
        "(heat meters); valve_open, valve_closed, valve_fault, battery_low (1 or 0, from ST)."
    )


class Cjt188Device(DeviceBase):
    """A CJ/T 188 water, heat or gas meter."""

    cjt188: Cjt188
    points: list[Cjt188Point] = Field(default=[], description=OWN_POINTS)


def _check_point(point: Cjt188Point, at: NodePath, doc: Reporter) -> Iterator[Problem]:
    """The point's unit must be one its field can be given in: a meter that counts in
    another unit is converted by its unit code, never mis-scaled."""
    dimension, fixed = field_unit(point.field)
    if dimension is not None:
        if point.unit not in DIMENSIONS[dimension]:
            units = ", ".join(DIMENSIONS[dimension])
            got = repr(point.unit) if point.unit else "no unit"
            message = (
                f"{point.field} is {kind_of(dimension)}: its unit must be one of "
                f"{units} (got {got}); the meter's own unit code is converted into it"
            )
            yield doc.problem((*at, "unit"), message)
    elif point.unit != fixed:
        message = (
            f"{point.field} is always in {fixed} (got {point.unit!r})"
            if fixed
            else f"{point.field} is 1 or 0 and has no unit (got {point.unit!r})"
        )
        yield doc.problem((*at, "unit"), message)
    if point.field in STATUS_FIELDS and point.kind == "counter":
        yield doc.problem((*at, "kind"), f"{point.field} is a status bit, not a counter")


def _check(device: Cjt188Device, at: NodePath, doc: Reporter) -> Iterator[Problem]:
    """Each point's field must be in its DI's reply for this meter type."""
    link = device.cjt188
    family = family_of(link.type_code)
    for j, point in enumerate(device.points):
        known = fields_of(point.di, family or "")
        if point.field not in known:
            message = (
                f"a {family} meter ({link.type_code:02X}H) has no {point.field} in DI "
                f"{point.di.upper()} (it has: {', '.join(known) or 'nothing'})"
            )
            yield doc.problem((*at, "points", j, "field"), message)


def _modulus(point: Cjt188Point) -> float | None:
    """Working hours (a 3-byte BCD count of whole hours, in no other unit) wrap after
    999999 x scale. A value sent with a unit code wraps at 999999.99 of the meter's own
    unit, which the driver converts to the point's at run time (MWh into kWh, GJ into
    MJ): no wrap point holds in the point's unit, so a drop is judged a reset in doubt
    rather than turned into a wrap of the wrong size. A status bit or gauge never wraps."""
    dimension, fixed = field_unit(point.field)
    if dimension is None and fixed == "h":
        return 1e6 * point.scale
    return None


def _serial_line(link: Cjt188) -> SerialLine:
    settings = f"{link.baudrate} {link.parity}1"
    wildcard = "AA" in (link.address[i : i + 2] for i in range(0, 14, 2))
    return SerialLine(link.port, settings, "address", link.address, wildcard)


def _fields(target: str, options: Mapping[str, Any]) -> dict[str, object]:
    raise InitError(
        "init does not write CJ/T 188 devices yet (their carrier is water, heat or gas, "
        "and init writes electricity meters): copy the CJ/T 188 example of the README"
    )


CJT188 = ProtocolSpec(
    key="cjt188",
    settings=Cjt188,
    device=Cjt188Device,
    point=Cjt188Point,
    family="cjt188",
    driver="drivers.cjt188.driver:Cjt188Driver",
    summary="CJ/T 188: Chinese water, heat and gas meters on RS-485 or M-Bus.",
    example={"port": "/dev/ttyUSB2", "address": "00000012345678", "meter_type": "heat"},
    init=InitSpec(
        "--cjt188", "PORT", "a CJ/T 188 water, heat or gas meter", _fields, "cjt188-heat"
    ),
    serial_line=_serial_line,
    modulus=_modulus,
    check=_check,
    check_point=_check_point,
)
SPECS = (CJT188,)
