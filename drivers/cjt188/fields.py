"""Where each value sits in the data of a data identifier, by meter family: pure data.

CJ/T 188-2004 §8 (data identifiers and their data, the tables of the "read
data" 901FH and "history data" D120H-D12BH items) lays a reply's data out as
DI0 DI1, SER, then fixed fields. The field layout depends on the meter type T
(§6.2.2): water meters (10H-19H) and gas meters (30H-39H) share one, heat
meters (20H-29H) have their own.

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

D120H-D12BH (the 1st to 12th month back, L = 08H: 3 + 5 bytes):
    flow (water, gas) or heat (heat meters) at that settlement date, 4 BCD + unit code

Status ST (§8, the ST table), first byte: D0 D1 valve (00 open, 01 closed,
11 fault), D2 battery (1: low); the rest is reserved or the maker's.

The real time is not offered as a point (points are numbers; its byte order
also varies between makers in the field).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALL_FIELDS",
    "FAMILIES",
    "HISTORY",
    "LAYOUTS",
    "METER_TYPES",
    "STATUS_FIELDS",
    "Field",
    "Layout",
    "family_of",
    "fields_of",
    "layout_of",
]

# The meter types of CJ/T 188-2004 §6.2.2 (and 22H, heat and cooling, added in 2018).
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
class Field:
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
    fields: dict[str, Field]
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
        "flow": Field(0, 4, 2, "volume", doc="current cumulative flow"),
        "settlement_flow": Field(5, 4, 2, "volume", doc="cumulative flow at the settlement date"),
    },
    status=17,
)
_HEAT = Layout(
    43,
    {
        "settlement_heat": Field(0, 4, 2, "energy", doc="heat (or cooling) at the settlement date"),
        "heat": Field(5, 4, 2, "energy", doc="current heat (cooling, on a 21H meter)"),
        "power": Field(10, 4, 2, "power", doc="heat power"),
        "flow_rate": Field(15, 4, 4, "flow_rate", doc="flow rate"),
        "flow": Field(20, 4, 2, "volume", doc="cumulative flow"),
        "supply_temp": Field(25, 3, 2, unit="°C", doc="supply (flow) temperature"),
        "return_temp": Field(28, 3, 2, unit="°C", doc="return temperature"),
        "hours": Field(31, 3, 0, unit="h", doc="cumulative working time"),
    },
    status=41,
)
_HISTORY_FLOW = Layout(5, {"settlement_flow": Field(0, 4, 2, "volume", doc="flow then")})
_HISTORY_HEAT = Layout(5, {"settlement_heat": Field(0, 4, 2, "energy", doc="heat then")})

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
