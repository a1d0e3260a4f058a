"""Which figure of which device goes out under which code: one answer for check and run.

A key of `codes:` is a figure (a point name, or a record figure such as
co2_kg) for every device of an MN that has it, or `device.figure` for one
device; the device's own key wins over the plain one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloud_sync.hj212.settings import Code, Hj212Settings
    from config.base import DeviceBase

RECORD_FIGURES = ("energy", "kwh", "co2_kg", "tce_kg")
"""Figures of an interval record itself, sent as its total (`Cou`)."""


@dataclass(frozen=True, slots=True)
class Sent:
    """One figure of one device, under the code it is sent as."""

    device: str
    figure: str
    key: str  # its key in codes:, for messages
    code: Code

    @property
    def from_record(self) -> bool:
        return self.figure in RECORD_FIGURES


def split_key(key: str) -> tuple[str | None, str]:
    """`device.figure` -> (device, figure); `figure` -> (None, figure)."""
    device, dot, figure = key.rpartition(".")
    return (device, figure) if dot else (None, figure)


def figures_of(
    settings: Hj212Settings, device: str, points: Collection[str], metered: bool
) -> list[Sent]:
    """What of `device` is sent: `points` are its point names, `metered` whether it has
    energy (so an interval record)."""
    chosen: dict[str, Sent] = {}
    for qualified in (False, True):
        for key, code in settings.codes.items():
            owner, figure = split_key(key)
            if (owner is not None) != qualified or owner not in (None, device):
                continue
            if (figure in RECORD_FIGURES and metered) or figure in points:
                chosen[figure] = Sent(device, figure, key, code)
    return list(chosen.values())


def mn_of(settings: Hj212Settings) -> dict[str, str]:
    """Device -> the MN it is sent under (the first, if a bad config names it twice)."""
    found: dict[str, str] = {}
    for point in settings.monitoring_points:
        for device in point.devices:
            found.setdefault(device, point.mn)
    return found


def statistics(
    settings: Hj212Settings, devices: Mapping[str, DeviceBase]
) -> Iterator[tuple[str, str]]:
    """The (device, point) pairs sent as Avg, Min or Max: the pipeline keeps their figures."""
    for name in mn_of(settings):
        device = devices.get(name)
        if device is None:
            continue
        points = [p.name for p in device.points]
        for sent in figures_of(settings, name, points, device.energy is not None):
            if not sent.from_record and {"Avg", "Min", "Max"} & set(sent.code.statistics):
                yield name, sent.figure
