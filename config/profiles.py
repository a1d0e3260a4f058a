"""Meter profiles: a register map written once, used as `profile: eastron-sdm630`.

A profile is only data, `drivers/<protocol>/profiles/<vendor>-<model>.yaml`,
citing the datasheet it comes from: a protocol and its profiles are one
folder. Its `protocol:` names a family (modbus serves modbus_tcp and
modbus_rtu alike), and its points are validated with the family's point
model, the same as a device's own points; a device's own point of the same
name replaces the profile's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import Field, create_model

from config.base import PointBase, Strict
from config.errors import Document, NodePath
from drivers.registry import PROTOCOLS

FAMILIES: dict[str, type[PointBase]] = {}
"""Profile family -> the point model of its profiles, in the registry's order."""
for _spec in PROTOCOLS.values():
    FAMILIES.setdefault(_spec.family, _spec.point)

PROFILE_DIRS: tuple[Path, ...] = tuple(
    dict.fromkeys(spec.folder / "profiles" for spec in PROTOCOLS.values())
)
"""Where the profiles are: each protocol folder's `profiles/`."""


class Profile(Strict):
    """A meter's points, of one family; `protocol` names the family."""

    description: str = Field(description="The meter, in a line.")
    source: str = Field(
        description="The manual or standard the points come from: title, version, publisher."
    )
    caveats: str | None = Field(default=None, description="Quirks a technician should know.")
    protocol: str
    identify: list[PointBase] = Field(
        default_factory=list,
        description="Read-only values that tell this model from others (a model code "
        "register), each with the values it `expect`s; `scan` reads them.",
    )
    points: list[PointBase] = Field(min_length=1)


if TYPE_CHECKING:
    Family: TypeAlias = str  # the families of drivers.registry, known at run time
else:
    Family = Literal[tuple(FAMILIES)]


class ProfileHeader(Profile):
    """What every profile has; used to report a missing or unknown protocol."""

    protocol: Family
    identify: list[Any] = Field(default_factory=list)
    points: list[Any] = Field(min_length=1)


def _model(family: str, point: type[PointBase]) -> type[Profile]:
    """The profile model of one family: its name as `protocol`, its points."""
    identifying = create_model(
        f"{family.capitalize()}Identify",
        __base__=point,
        __module__=__name__,
        expect=(
            list[float],
            Field(min_length=1, description="The raw values this model answers with."),
        ),
    )
    fields: dict[str, Any] = {
        "protocol": (Literal[family], ...),
        # point models chosen at run time, which a type checker sees as variables
        "identify": (list[identifying], Field(default_factory=list)),  # type: ignore[valid-type]
        "points": (list[point], Field(min_length=1)),  # type: ignore[valid-type]
    }
    return create_model(
        f"{family.capitalize()}Profile", __base__=Profile, __module__=__name__, **fields
    )


_MODELS: dict[str, type[Profile]] = {family: _model(family, p) for family, p in FAMILIES.items()}


def profile_model(data: Any) -> type[Profile]:
    """The model to validate a profile file with, chosen by its `protocol`."""
    protocol = data.get("protocol") if isinstance(data, dict) else None
    return _MODELS.get(protocol, ProfileHeader) if isinstance(protocol, str) else ProfileHeader


def list_profiles() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(path.stem for folder in PROFILE_DIRS for path in folder.glob("*.yaml"))


def profile_path(name: str) -> Path:
    """The file of a profile `list_profiles` names."""
    found = (folder / f"{name}.yaml" for folder in PROFILE_DIRS)
    return next((path for path in found if path.is_file()), PROFILE_DIRS[0] / f"{name}.yaml")


@dataclass(frozen=True)
class Sourced:
    """A point and where it was written: a device's own list or a profile file."""

    point: PointBase
    doc: Document
    path: NodePath

    @property
    def name(self) -> str:
        return self.point.name


def merge_points(profile: Sequence[Sourced], own: Sequence[Sourced]) -> list[Sourced]:
    """Profile points in profile order, each replaced by the device's point of that name;
    the device's other points follow in its own order.

    A name the device repeats is kept twice, so the duplicate can be reported.
    """
    merged = list(profile)
    replaceable = {s.name: i for i, s in enumerate(merged)}
    for point in own:
        index = replaceable.pop(point.name, None)
        if index is None:
            merged.append(point)
        else:
            merged[index] = point
    return merged
