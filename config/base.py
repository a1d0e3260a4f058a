"""The config vocabulary every protocol's settings are written in.

A protocol's settings (drivers/<protocol>/settings.py) build on these and on
config.units only, so a protocol folder never reaches into the whole-file
models (config/models.py), which are themselves built from the protocols.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from config.units import Duration
from domain.errors import Problem, Severity

__all__ = [
    "ENV_VAR",
    "Carrier",
    "Check",
    "Density",
    "DestinationBase",
    "DeviceBase",
    "Energy",
    "Name",
    "NodePath",
    "PointBase",
    "PointKind",
    "Production",
    "Reporter",
    "Strict",
]

Name = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$",
        description="Letters, digits, '_' and '-', starting with a letter (at most 64).",
    ),
]

Carrier = Literal[
    "electricity",
    "natural_gas",
    "raw_coal",
    "diesel",
    "gasoline",
    "lpg",
    "fuel_oil",
    "steam",
    "heat",
    "water",
]
PointKind = Literal["gauge", "counter"]

NodePath = tuple[str | int, ...]
"""Keys and indices from the top of the config file: ("devices", 1, "opcua")."""


class Reporter(Protocol):
    """Where a check files what it finds: config.errors.Document, which knows positions."""

    def problem(
        self, path: NodePath, message: str, *, key: bool = False, severity: Severity = "error"
    ) -> Problem: ...


Check = Callable[[Any, NodePath, Reporter], Iterable[Problem]]
"""A protocol's own check of one of its models found at a path: the Problems, if any."""


ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
"""${VAR} or ${VAR:-default} in a path field."""


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt key must never be silently ignored.

    NaN and infinity are refused too: `scale: .nan` would poison every value.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


OWN_POINTS = (
    "Own points. Beside a profile, one named as a profile point replaces that point, and the "
    "others are added to the profile's."
)
"""What a device's `points:` are (config/profiles.py merge_points), in every protocol's docs."""


class PointBase(Strict):
    """What every point has, whatever the protocol reads it with."""

    name: Name
    unit: str = Field(default="", description="Unit of the decoded value (kWh, kW, m3, ...).")
    kind: PointKind = Field(
        default="gauge", description="counter: a cumulative total; gauge: an instant value."
    )
    scale: float = Field(default=1.0, description="Decoded value = raw x scale + offset.")
    offset: float = Field(default=0.0, description="Added after scaling.")
    source: str | None = Field(
        default=None,
        description="Where the point is documented: the manual's table or page. "
        "Every point of a shipped profile has one.",
    )


# --- what a device measures ---------------------------------------------------


class Density(Strict):
    """A liquid fuel's density, with where the figure comes from."""

    value: float = Field(gt=0, le=2, description="Kilograms per litre (diesel is about 0.84).")
    source: str = Field(
        min_length=1,
        description="Where the figure comes from: the supplier's delivery note, a lab report.",
    )


class Energy(Strict):
    """What the device meters, and the point that counts it."""

    carrier: Carrier = Field(description="What the device meters.")
    counter: str | None = Field(
        default=None,
        description="Name of the point holding the cumulative total (always preferred: "
        "it carries the energy of gaps).",
    )
    power: str | None = Field(
        default=None,
        description="Without a counter: the point of power or flow (kW, m3/h, t/h ...) "
        "integrated by the trapezoid rule; the energy of gaps is unknown, not invented.",
    )
    max_rate: float | None = Field(
        default=None,
        gt=0,
        description="Largest plausible advance of the counter per hour, in its unit "
        "(kW for a kWh counter, m3/h for gas): a faster rise is a bad reading, never energy. "
        "With power: the largest plausible power or flow, in the carrier's unit per hour.",
    )
    modulus: float | None = Field(
        default=None,
        gt=0,
        description="Where the counter returns to 0, in its unit as read (a 6-digit kWh "
        "display: 1000000): a drop to near 0 is then a rollover, its energy counted. Without "
        "it an unsigned integer or DL/T 645 register wraps at its range; a float never does.",
    )
    density: Density | None = Field(
        default=None,
        description="For diesel, gasoline, LPG or fuel oil metered in L or m3 (or L/h, m3/h): "
        "the density that turns volume into the kg the factors are per, with its source; "
        "both travel in every interval record.",
    )


class Production(Strict):
    """The point counting output, for carbon intensity (CO2 per unit)."""

    counter: str = Field(description="Name of the point counting units produced.")


class DeviceBase(Strict):
    """What every device has; a protocol's device adds its link (one key named after
    the protocol) and narrows `points` to its own point model."""

    name: Name
    profile: str | None = Field(
        default=None, description="Meter profile from the library, e.g. eastron-sdm630."
    )
    poll: Duration = Field(default=10.0, gt=0, description="Polling period.")
    energy: Energy | None = Field(default=None, description="Energy metered by this device.")
    production: Production | None = Field(default=None, description="Output counted here.")
    ct_ratio: float = Field(
        default=1.0,
        gt=0,
        description="Current transformer ratio (e.g. 200 for 1000/5 A): a meter behind "
        "transformers reports secondary values; currents, powers and energies are multiplied.",
    )
    pt_ratio: float = Field(
        default=1.0,
        gt=0,
        description="Voltage transformer ratio (e.g. 100 for 10 kV/100 V): voltages, powers "
        "and energies are multiplied.",
    )
    reverse: bool = Field(
        default=False,
        description="The meter is wired backwards: powers change sign and import and export "
        "counters swap (import_* <-> export_*).",
    )
    # a Sequence here, so that a protocol's device may narrow it to a list of its own points
    points: Sequence[PointBase] = Field(default=[], description=OWN_POINTS)


class DestinationBase(Strict):
    """What every entry of `destinations:` has; its kind adds its settings under one key
    named after the kind (cloud_sync/registry.py)."""

    # the name in status, metrics and logs; the buffer keeps the destination's cursor under
    # it (renaming it starts it afresh at the end of the buffer). No description of its
    # own: a wrong name is then told the form a Name takes
    name: Name
    max_age: Duration | None = Field(
        default=None,
        gt=0,
        description="Records older than this are no longer owed to this destination: they "
        "are not sent to it and do not hold the buffer for it (default: kept until sent).",
    )
