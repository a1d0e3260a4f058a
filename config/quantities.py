"""What a rule can watch besides a point of its device: one table for all of it.

`RULE_QUANTITIES` drives the `Rule.quantity` description (so the JSON Schema
and docs/configuration.md), the checks of config/checks/_rules.py, and the evaluation:
agent/rules.py has one function per name, in a table a test holds to exactly
these keys. Any other name is a point of the rule's device; a rule of the
whole site must name one of these.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quantity:
    """A figure the agent computes for rules.

    `energy`: computed from the device's energy counter, so a device rule needs
    `energy:` on its device (otherwise, for a device, it is that device's point of
    the same name). `blocks`: built from 15-minute block demand, so electricity
    only, and the shortest interval must divide 15 minutes. `device_only`: why the
    whole site has no such figure (then the rule needs `device:`).
    """

    unit: str  # shown after the value in alarm messages; "" where it is the carrier's
    meaning: str
    energy: bool = True
    blocks: bool = False
    device_only: str | None = None


RULE_QUANTITIES: dict[str, Quantity] = {
    "power_kw": Quantity(
        "kW", "the point power_kw (for the site: summed over the devices having it)", energy=False
    ),
    "demand_15m_kw": Quantity("kW", "15-minute block demand from the energy counter", blocks=True),
    "demand_max_today_kw": Quantity(
        "kW", "largest complete 15-minute block of the local day", blocks=True
    ),
    "demand_max_month_kw": Quantity(
        "kW", "largest complete 15-minute block of the month", blocks=True
    ),
    "energy_interval": Quantity(
        "",
        "energy of the last closed interval, in the carrier's unit",
        device_only="carriers do not add up",
    ),
    "co2_kg_h": Quantity("kg/h", "CO2 rate over the last closed interval"),
    "co2_kg_today": Quantity("kg", "CO2 since local midnight"),
    "co2_kg_month": Quantity("kg", "CO2 since the first of the month"),
    "tce_kg_today": Quantity("kgce", "standard coal since local midnight"),
    "tce_kg_month": Quantity("kgce", "standard coal since the first of the month"),
}


def described() -> str:
    """The `Rule.quantity` field's description, generated from the table."""
    figures = "; ".join(
        f"{name}{f' [{q.unit}]' if q.unit else ''}: {q.meaning}"
        + (" (electricity)" if q.blocks else "")
        + (" (needs device:)" if q.device_only else "")
        for name, q in RULE_QUANTITIES.items()
    )
    return (
        f"What is watched: a point name of the device, or a figure the agent computes. {figures}."
    )
