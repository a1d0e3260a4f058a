"""The unit codes of CJ/T 188 and what each means in the units a point is written in.

A value field of a reply (a cumulative flow, a heat, a power, a flow rate) is
followed by one byte naming its unit. CJ/T 188-2004 §8 (the unit code table,
Table 13 of the 2004 edition, Table 20 of 2018 as transcribed by
shiyuecamus/ng-gateway) names 02H Wh, 05H kWh, 08H MWh, 0AH MWh x 100, 01H J,
0BH kJ, 0EH MJ, 11H GJ, 13H GJ x 100, 14H W, 17H kW, 1AH MW, 29H L, 2CH m3,
32H L/h and 35H m3/h. The codes between run in steps of ten (08H MWh, 09H
MWh x 10, 0AH MWh x 100), the progression the table's own entries follow and
that HslCommunication's CJT188Helper and ng-gateway decode too; they are
accepted here the same way.

A code outside this table, or of another kind than the field (a volume code
on a heat field), is never guessed at: the reading is bad and says the code.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DIMENSIONS", "UNIT_CODES", "Unit", "convert", "dimension_of"]


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
            f"unit code {code:02X}H is {meaning.name}, a {meaning.dimension.replace('_', ' ')} "
            f"unit, where a {dimension.replace('_', ' ')} was expected"
        )
    return value * meaning.factor / DIMENSIONS[dimension][unit]
