"""What the checks run on: the parts of a config file that validated, each on its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloud_sync.http.settings import HttpSettings
from config.base import DestinationBase, DeviceBase
from config.models import Buffer, Emissions, Gateway, Rule
from config.profiles import Sourced
from drivers.spec import ProtocolSpec


@dataclass(frozen=True)
class ValidDevice:
    """A device that validated, with its points: its profile's merged with its own.

    `complete` is False when its profile could not be used (unknown, broken or
    of another protocol; reported where the profiles are loaded): `points` are
    then only its own, and what needs all of them (the energy counter, "no
    points") is not checked.
    """

    model: DeviceBase
    points: list[Sourced]
    complete: bool = True


@dataclass(frozen=True)
class DeviceLink:
    """A device's link settings (its modbus_rtu: ...), validated on their own: a device
    with an error elsewhere still holds its place on its serial line."""

    name: str
    spec: ProtocolSpec
    settings: Any  # the spec's settings model


@dataclass(frozen=True)
class Parts:
    """The parts of a file that validated, each on its own.

    A section that did not validate is None; a device or rule that did not is
    left out of `devices` or `rules`, which are keyed by index in the file.
    `every_device`: all devices validated, so a name not among them is unknown.
    `links` holds the link of every device whose link validated, whole or not.
    """

    gateway: Gateway | None
    buffer: Buffer | None
    sync: HttpSettings | None
    emissions: Emissions | None
    devices: dict[int, ValidDevice]
    rules: dict[int, Rule]
    every_device: bool
    destinations: dict[int, DestinationBase] = field(default_factory=dict)
    links: dict[int, DeviceLink] = field(default_factory=dict)  # by index, as devices


def shortest_interval(parts: Parts) -> float | None:
    """The shortest interval that is valid (under 1s is reported with the emissions), if any."""
    intervals = parts.emissions.intervals if parts.emissions is not None else []
    return min((s for s in intervals if s >= 1), default=None)
