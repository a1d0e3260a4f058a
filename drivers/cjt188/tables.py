"""The tables of CJ/T 188 that the settings and the codec both read: unit codes, meter
types, and the fields of each data identifier's reply.

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

from dataclasses import dataclass

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


def field_unit(field: str) -> tuple[str | None, str]:
    """(dimension, fixed unit) of a field: a dimension when the meter sends a unit code."""
    for layout in LAYOUTS.values():
        found = layout.fields.get(field)
        if found is not None:
            return found.dimension, found.unit
    return None, ""  # a status bit
