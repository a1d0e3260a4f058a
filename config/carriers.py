"""Energy carriers: the unit each is reported in, and the units a meter may count in.

Intervals are reported in the carrier's own unit (kWh, m3, kg, MJ, t); a meter
that counts in MWh or tonnes is converted here, once, before any factor applies.
"""

from __future__ import annotations

_MASS = {"kg": 1.0, "t": 1000.0}

# carrier -> (reported unit, {accepted counter unit: multiplier to the reported unit})
CARRIERS: dict[str, tuple[str, dict[str, float]]] = {
    "electricity": ("kWh", {"kWh": 1.0, "Wh": 0.001, "MWh": 1000.0}),
    "natural_gas": ("m3", {"m3": 1.0, "Nm3": 1.0}),
    "raw_coal": ("kg", _MASS),
    "diesel": ("kg", _MASS),
    "gasoline": ("kg", _MASS),
    "lpg": ("kg", _MASS),
    "fuel_oil": ("kg", _MASS),
    "steam": ("kg", _MASS),
    "heat": ("MJ", {"MJ": 1.0, "GJ": 1000.0, "kWh": 3.6, "MWh": 3600.0}),
    "water": ("t", {"t": 1.0, "m3": 1.0}),
}


# carrier -> {accepted rate unit: multiplier to the reported unit per hour}, for energy
# integrated from power or flow (`energy: {power: ...}`).
_MASS_RATE = {"kg/h": 1.0, "t/h": 1000.0}
RATES: dict[str, dict[str, float]] = {
    "electricity": {"kW": 1.0, "W": 0.001, "MW": 1000.0},
    "natural_gas": {"m3/h": 1.0, "Nm3/h": 1.0},
    "raw_coal": _MASS_RATE,
    "diesel": _MASS_RATE,
    "gasoline": _MASS_RATE,
    "lpg": _MASS_RATE,
    "fuel_oil": _MASS_RATE,
    "steam": _MASS_RATE,
    "heat": {"MJ/h": 1.0, "GJ/h": 1000.0, "kW": 3.6, "MW": 3600.0},
    "water": {"t/h": 1.0, "m3/h": 1.0},
}


# Liquid fuels' factors are per kg; a meter counting volume needs the fuel's density,
# which varies with the batch and temperature, so it is configured with its source
# (energy.density, kg per litre), never assumed.
LIQUID_FUELS = frozenset({"diesel", "gasoline", "lpg", "fuel_oil"})
_LITRES = {"L": 1.0, "m3": 1000.0}
_LITRES_RATE = {"L/h": 1.0, "m3/h": 1000.0}


def needs_density(carrier: str, unit: str) -> bool:
    """A liquid fuel counted (or flowing) in litres or m3."""
    return carrier in LIQUID_FUELS and (unit in _LITRES or unit in _LITRES_RATE)


def rate_conversion(carrier: str, unit: str, density: float | None = None) -> float | None:
    """Multiplier from a rate point's unit to the carrier's reported unit per hour."""
    known = RATES[carrier].get(unit)
    if known is None and density and carrier in LIQUID_FUELS and unit in _LITRES_RATE:
        return _LITRES_RATE[unit] * density
    return known


def accepted_rates(carrier: str) -> list[str]:
    extra = [f"{u} with energy.density" for u in _LITRES_RATE] if carrier in LIQUID_FUELS else []
    return [*RATES[carrier], *extra]


def reported_unit(carrier: str) -> str:
    return CARRIERS[carrier][0]


def conversion(carrier: str, unit: str, density: float | None = None) -> float | None:
    """Multiplier from a counter's unit to the carrier's reported unit; None if unknown.
    `density` (kg/L) turns litres or m3 of a liquid fuel into kg."""
    known = CARRIERS[carrier][1].get(unit)
    if known is None and density and carrier in LIQUID_FUELS and unit in _LITRES:
        return _LITRES[unit] * density
    return known


def accepted_units(carrier: str) -> list[str]:
    extra = [f"{u} with energy.density" for u in _LITRES] if carrier in LIQUID_FUELS else []
    return [*CARRIERS[carrier][1], *extra]


# Electrical units by what transformer ratios do to them, compared case-folded:
# kVAr, kvar and KVAR are one unit on meters' nameplates.
CURRENT = frozenset({"ma", "a", "ka"})
VOLTAGE = frozenset({"v", "kv"})
POWER = frozenset({"w", "kw", "mw", "var", "kvar", "mvar"})  # signed: flips with the wiring
APPARENT = frozenset({"va", "kva", "mva"})
ENERGY = frozenset({"wh", "kwh", "mwh", "varh", "kvarh", "mvarh", "vah", "kvah", "mvah"})
ELECTRICAL = CURRENT | VOLTAGE | POWER | APPARENT | ENERGY
