"""CJ/T 188 settings: what a technician writes under `cjt188:`, a point (one field of
a data identifier's reply), and the standard's tables both are checked against.

The module is long because the tables belong here: the registry imports only this module of a
protocol at start-up (tests/drivers/test_registry.py), and `check` needs the
unit codes and the fields of each data identifier to judge a point.

Where the tables come from. CJ/T 188-2004 (户用计量仪表数据传输技术条件, Ministry
of Construction, 2004) and CJ/T 188-2018 (MOHURD, 2018; its data-link layer is
§6, its application layer, the data identifiers and the unit codes, §8) are
not free to read; the tables are as public implementations transcribe them
(HslCommunication's CJT188Helper; shiyuecamus/ng-gateway, which cites the unit
table as Table 13 of 2004 and Table 20 of 2018; the 2004 layouts in several C
drivers on GitHub) and as worked examples on public pages show them.

Unit codes. A value field of a reply (a flow, a heat, a power, a flow rate) is
followed by a byte naming its unit: 02H Wh, 05H kWh, 08H MWh, 0AH MWh x 100,
01H J, 0BH kJ, 0EH MJ, 11H GJ, 13H GJ x 100, 14H W, 17H kW, 1AH MW, 29H L,
2CH m3, 32H L/h, 35H m3/h. The codes between run in steps of ten (08H MWh,
09H MWh x 10, 0AH MWh x 100), the progression the table's own entries follow,
and are read that way too (as HslCommunication and ng-gateway do). A code
outside the table, or of another kind than the field (a volume on a heat
field), is never guessed at: the reading is bad and names the code.

Meter types T: 10H-19H water (10H cold, 11H domestic hot, 12H drinking, 13H
reclaimed), 20H-29H heat (20H heat, 21H cooling, 22H heat and cooling, added
in 2018), 30H-39H gas. Water and gas meters share one layout, heat meters
have their own. A read reply's data is DI0 DI1, SER, then:

901FH, water and gas (L = 16H: 3 + 19 bytes):
    current cumulative flow   4 BCD XXXXXX.XX + unit code
    flow at settlement date   4 BCD XXXXXX.XX + unit code
    real time                 7 BCD
    status ST                 2

901FH, heat (L = 2EH: 3 + 43 bytes):
    heat at settlement date   4 BCD XXXXXX.XX + unit code
    current heat              4 BCD XXXXXX.XX + unit code (cooling, on a 21H meter)
    heat power                4 BCD XXXXXX.XX + unit code
    flow rate                 4 BCD XXXX.XXXX + unit code
    cumulative flow           4 BCD XXXXXX.XX + unit code
    supply temperature        3 BCD XXXX.XX  (deg C)
    return temperature        3 BCD XXXX.XX  (deg C)
    cumulative working time   3 BCD XXXXXX   (h)
    real time                 7 BCD
    status ST                 2

D120H-D12BH (the 1st to 12th settlement date back, L = 08H: 3 + 5 bytes):
    flow (water, gas) or heat (heat meters) then, 4 BCD + unit code

Status ST, first byte: D1 D0 the valve (00 open, 01 closed, 11 fault), D2 the
battery (1: low); the other bits are reserved or the maker's.

The real time is not offered as a point: points are numbers, and its byte
order varies between makers in the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator

from config.base import OWN_POINTS, DeviceBase, NodePath, PointBase, Reporter, Strict
from config.units import Duration
from domain.errors import InitError, Problem
from drivers.spec import InitSpec, ProtocolSpec, SerialLine

__all__ = [
    "ALL_FIELDS",
    "CJT188",
    "DIMENSIONS",
    "LAYOUTS",
    "METER_TYPES",
    "SPECS",
    "STATUS_FIELDS",
    "UNIT_CODES",
    "WILDCARD",
    "Cjt188",
    "Cjt188Device",
    "Cjt188Point",
    "Layout",
    "Slot",
    "Unit",
    "convert",
    "family_of",
    "fields_of",
    "layout_of",
    "meter_type_code",
]

# --- unit codes ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unit:
    """What a unit code means: its dimension and its size in that dimension's base unit."""

    dimension: str  # energy, power, volume, flow_rate
    factor: float  # in J, W, L or L/h
    name: str  # as a technician writes it: kWh, GJ x 100


def _ladder(start: int, dimension: str, steps: list[tuple[str, float]]) -> dict[int, Unit]:
    """Codes from `start` up: each named unit and its x10 and x100 after it."""
    table: dict[int, Unit] = {}
    code = start
    for name, factor in steps:
        for power, suffix in ((1, ""), (10, " x 10"), (100, " x 100")):
            table[code] = Unit(dimension, factor * power, name + suffix)
            code += 1
    return table


_J_PER_WH = 3600.0

UNIT_CODES: dict[int, Unit] = {
    # 01H J, then 0BH kJ, 0EH MJ, 11H GJ (x 10, x 100 between): J itself has no x10 step
    0x01: Unit("energy", 1.0, "J"),
    **_ladder(
        0x02, "energy", [("Wh", _J_PER_WH), ("kWh", 1e3 * _J_PER_WH), ("MWh", 1e6 * _J_PER_WH)]
    ),
    **_ladder(0x0B, "energy", [("kJ", 1e3), ("MJ", 1e6), ("GJ", 1e9)]),
    **_ladder(0x14, "power", [("W", 1.0), ("kW", 1e3), ("MW", 1e6)]),
    **_ladder(0x29, "volume", [("L", 1.0), ("m3", 1e3)]),
    **_ladder(0x32, "flow_rate", [("L/h", 1.0), ("m3/h", 1e3)]),
}
"""Unit code -> its meaning."""

DIMENSIONS: dict[str, dict[str, float]] = {
    "energy": {
        "J": 1.0, "kJ": 1e3, "MJ": 1e6, "GJ": 1e9,
        "Wh": _J_PER_WH, "kWh": 1e3 * _J_PER_WH, "MWh": 1e6 * _J_PER_WH,
    },
    "power": {"W": 1.0, "kW": 1e3, "MW": 1e6},
    "volume": {"L": 1.0, "m3": 1e3},
    "flow_rate": {"L/h": 1.0, "m3/h": 1e3},
}  # fmt: skip
"""Dimension -> the units a point of it may be written in, by their size in the base unit."""


def kind_of(dimension: str) -> str:
    """'an energy', 'a flow rate': a dimension as a message names it."""
    words = dimension.replace("_", " ")
    return f"an {words}" if words[0] in "aeiou" else f"a {words}"


def dimension_of(unit: str) -> str | None:
    """The dimension a point's unit belongs to, or None."""
    return next((d for d, units in DIMENSIONS.items() if unit in units), None)


def convert(value: float, code: int, unit: str, dimension: str) -> float:
    """`value` counted in unit `code` as the same quantity in `unit` (of `dimension`).

    Raises ValueError naming the code when it is unknown or of another dimension.
    """
    meaning = UNIT_CODES.get(code)
    if meaning is None:
        raise ValueError(f"unit code {code:02X}H is not in the CJ/T 188 unit table")
    if meaning.dimension != dimension:
        raise ValueError(
            f"unit code {code:02X}H is {meaning.name}, {kind_of(meaning.dimension)} unit, "
            f"where {kind_of(dimension)} was expected"
        )
    return value * meaning.factor / DIMENSIONS[dimension][unit]


# --- fields of each data identifier ------------------------------------------------

# The meter types T (22H, heat and cooling, added in 2018).
METER_TYPES: dict[str, int] = {
    "cold_water": 0x10,
    "hot_water": 0x11,
    "drinking_water": 0x12,
    "reclaimed_water": 0x13,
    "heat": 0x20,
    "cooling": 0x21,
    "heat_and_cooling": 0x22,
    "gas": 0x30,
}
FAMILIES = {0x1: "water", 0x2: "heat", 0x3: "gas"}  # by the type's high digit: 10H-19H ...


def family_of(meter_type: int) -> str | None:
    """water, heat or gas for a meter type code; None for the others (electricity, 40H)."""
    return FAMILIES.get(meter_type >> 4)


@dataclass(frozen=True, slots=True)
class Slot:
    """One value: `size` BCD bytes (low byte first) with `decimals`, at `offset` after SER.

    With a `dimension`, a unit code byte follows the digits and the value is converted
    into the point's unit; without, the value is in `unit` always.
    """

    offset: int
    size: int
    decimals: int
    dimension: str | None = None  # energy, power, volume, flow_rate
    unit: str = ""  # the fixed unit of a field without a unit code
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Layout:
    """The data of one DI for one meter family: its length after DI and SER, and its fields."""

    length: int
    fields: dict[str, Slot]
    status: int | None = None  # offset of ST, when the data has one


STATUS_FIELDS = {
    "valve_open": "1 when ST D1 D0 = 00 (valve open), else 0",
    "valve_closed": "1 when ST D1 D0 = 01 (valve closed), else 0",
    "valve_fault": "1 when ST D1 D0 = 11 (valve fault), else 0",
    "battery_low": "1 when ST D2 = 1 (battery low), else 0",
}

_WATER_GAS = Layout(
    19,
    {
        "flow": Slot(0, 4, 2, "volume", doc="current cumulative flow"),
        "settlement_flow": Slot(5, 4, 2, "volume", doc="cumulative flow at the settlement date"),
    },
    status=17,
)
_HEAT = Layout(
    43,
    {
        "settlement_heat": Slot(0, 4, 2, "energy", doc="heat (or cooling) at the settlement date"),
        "heat": Slot(5, 4, 2, "energy", doc="current heat (cooling, on a 21H meter)"),
        "power": Slot(10, 4, 2, "power", doc="heat power"),
        "flow_rate": Slot(15, 4, 4, "flow_rate", doc="flow rate"),
        "flow": Slot(20, 4, 2, "volume", doc="cumulative flow"),
        "supply_temp": Slot(25, 3, 2, unit="°C", doc="supply (flow) temperature"),
        "return_temp": Slot(28, 3, 2, unit="°C", doc="return temperature"),
        "hours": Slot(31, 3, 0, unit="h", doc="cumulative working time"),
    },
    status=41,
)
_HISTORY_FLOW = Layout(5, {"settlement_flow": Slot(0, 4, 2, "volume", doc="flow then")})
_HISTORY_HEAT = Layout(5, {"settlement_heat": Slot(0, 4, 2, "energy", doc="heat then")})

LAYOUTS: dict[tuple[str, str], Layout] = {
    ("901F", "water"): _WATER_GAS,
    ("901F", "gas"): _WATER_GAS,
    ("901F", "heat"): _HEAT,
}
HISTORY = {f"D1{0x20 + month:02X}" for month in range(12)}  # D120 .. D12B
for _di in HISTORY:
    LAYOUTS[_di, "water"] = LAYOUTS[_di, "gas"] = _HISTORY_FLOW
    LAYOUTS[_di, "heat"] = _HISTORY_HEAT


def layout_of(di: str, family: str) -> Layout | None:
    return LAYOUTS.get((di.upper(), family))


def fields_of(di: str, family: str) -> list[str]:
    """Every field name a point may select in `di` of a meter of `family`."""
    layout = layout_of(di, family)
    if layout is None:
        return []
    return [*layout.fields, *(STATUS_FIELDS if layout.status is not None else ())]


ALL_FIELDS = sorted(
    {name for layout in LAYOUTS.values() for name in layout.fields} | set(STATUS_FIELDS)
)


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


def field_unit(field: str) -> tuple[str | None, str]:
    """(dimension, fixed unit) of a field: a dimension when the meter sends a unit code."""
    for layout in LAYOUTS.values():
        found = layout.fields.get(field)
        if found is not None:
            return found.dimension, found.unit
    return None, ""  # a status bit


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
