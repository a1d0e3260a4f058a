"""Meter profiles: a register map written once, used as `profile: eastron-sdm630`.

A profile is only data, `config/profiles/<vendor>-<model>.yaml`, citing the
datasheet it comes from. Its points are validated with the same point model
as a device's own points, and a device's own point of the same name replaces
the profile's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from config.errors import Document, NodePath
from config.models import AnyPoint, Dlt645Point, ModbusPoint, OpcUaPoint, Strict

PROFILE_DIR = Path(__file__).parent / "profiles"
FAMILY = {"modbus_tcp": "modbus", "modbus_rtu": "modbus", "opcua": "opcua", "dlt645": "dlt645"}
"""Which profiles a device can use: Modbus maps serve TCP and RTU alike."""


class _ProfileBase(Strict):
    description: str = Field(description="The meter, in a line.")
    source: str = Field(description="The datasheet or standard the points come from.")
    caveats: str | None = Field(default=None, description="Quirks a technician should know.")


class ProfileHeader(_ProfileBase):
    """What every profile has; used to report a missing or unknown protocol."""

    protocol: Literal["modbus", "dlt645", "opcua"]
    points: list[Any] = Field(min_length=1)


class ModbusProfile(_ProfileBase):
    protocol: Literal["modbus"]
    points: list[ModbusPoint] = Field(min_length=1)


class Dlt645Profile(_ProfileBase):
    protocol: Literal["dlt645"]
    points: list[Dlt645Point] = Field(min_length=1)


class OpcUaProfile(_ProfileBase):
    protocol: Literal["opcua"]
    points: list[OpcUaPoint] = Field(min_length=1)


Profile = ModbusProfile | Dlt645Profile | OpcUaProfile
_MODELS: dict[Any, type[Profile]] = {
    "modbus": ModbusProfile,
    "dlt645": Dlt645Profile,
    "opcua": OpcUaProfile,
}


def profile_model(data: Any) -> type[Profile] | type[ProfileHeader]:
    """The model to validate a profile file with, chosen by its `protocol`."""
    protocol = data.get("protocol") if isinstance(data, dict) else None
    return _MODELS.get(protocol, ProfileHeader) if isinstance(protocol, str) else ProfileHeader


def list_profiles() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(path.stem for path in PROFILE_DIR.glob("*.yaml"))


def profile_path(name: str) -> Path:
    return PROFILE_DIR / f"{name}.yaml"


@dataclass(frozen=True)
class Sourced:
    """A point and where it was written: a device's own list or a profile file."""

    point: AnyPoint
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


def resolved(point: AnyPoint) -> AnyPoint:
    """A coil or discrete input without a type reads one bit: its type is bool."""
    if (
        isinstance(point, ModbusPoint)
        and point.function in ("coil", "discrete")
        and "type" not in point.model_fields_set
    ):
        return point.model_copy(update={"type": "bool"})
    return point
