"""What `check` says of an HJ 212 destination beyond its own fields: its devices, figures,
codes and intervals, against the rest of the file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from cloud_sync.hj212.settings.figures import RECORD_FIGURES, figures_of, split_key
from config.base import NodePath, Reporter
from config.units import DAY, HOUR, format_duration
from domain.errors import Problem

if TYPE_CHECKING:
    from cloud_sync.hj212.settings import Hj212Settings
    from config.checks._parts import Parts


NOT_IN_2025 = (
    "HJ 212-2025 is not implemented: its full text (the new frame version, the commands for "
    "facility electricity data and the encryption it requires) could not be confirmed from a "
    "public source (docs/hj212.md); use version: 2017 unless the platform refuses it"
)


def cross_check(
    settings: Hj212Settings, at: NodePath, doc: Reporter, parts: Parts
) -> Iterator[Problem]:
    if settings.version == 2025:
        yield doc.problem((*at, "version"), NOT_IN_2025)
    yield from _devices(settings, at, doc, parts)
    yield from _codes(settings, at, doc, parts)
    yield from _data(settings, at, doc, parts)


def _devices(
    settings: Hj212Settings, at: NodePath, doc: Reporter, parts: Parts
) -> Iterator[Problem]:
    valid = {d.model.name: d for d in parts.devices.values()}
    mns: dict[str, int] = {}
    owner: dict[str, str] = {}
    for i, point in enumerate(settings.monitoring_points):
        here: NodePath = (*at, "monitoring_points", i)
        if point.mn in mns:
            yield doc.problem(
                (*here, "mn"), f"MN {point.mn} is already monitoring point {mns[point.mn] + 1}"
            )
        mns.setdefault(point.mn, i)
        for j, name in enumerate(point.devices):
            where = (*here, "devices", j)
            device = valid.get(name)
            if device is None:
                if parts.every_device:
                    yield doc.problem(where, f"no device named '{name}' in devices:")
                continue
            if name in owner:
                message = (
                    f"'{name}' is already sent under MN {owner[name]}: a device belongs to one MN"
                )
                yield doc.problem(where, message)
            owner.setdefault(name, point.mn)
            if device.model.energy is None:
                message = (
                    f"'{name}' meters no energy: an HJ 212 platform is sent its intervals, "
                    "so give it energy: (a counter or a power point)"
                )
                yield doc.problem(where, message)


def _codes(settings: Hj212Settings, at: NodePath, doc: Reporter, parts: Parts) -> Iterator[Problem]:
    valid = {d.model.name: d for d in parts.devices.values()}
    sent_devices = [n for p in settings.monitoring_points for n in p.devices if n in valid]
    used: set[str] = set()
    codes: dict[str, dict[str, str]] = {}  # MN -> code -> what it was first given to
    for point in settings.monitoring_points:
        taken = codes.setdefault(point.mn, {})
        for name in point.devices:
            device = valid.get(name)
            if device is None or not device.complete:
                continue
            energy = device.model.energy
            for sent in figures_of(
                settings, name, [p.name for p in device.points], energy is not None
            ):
                used.add(sent.key)
                here = (*at, "codes", sent.key)
                stats = sent.code.statistics
                counter = energy is not None and sent.figure == energy.counter
                if "Cou" in stats and not (sent.from_record or counter):
                    message = (
                        f"Cou of '{sent.figure}' on '{name}': only an energy counter or a record "
                        f"figure ({', '.join(RECORD_FIGURES)}) has an interval total; use Avg, "
                        "Min or Max"
                    )
                    yield doc.problem((*here, "as"), message)
                if sent.from_record and set(stats) - {"Cou"}:
                    message = f"{sent.figure} is an interval total: send it as Cou"
                    yield doc.problem((*here, "as"), message)
                first = taken.get(sent.code.code)
                if first is not None:
                    message = (
                        f"code {sent.code.code} would be sent twice under MN {point.mn} ({first}, "
                        f"and {sent.key} of '{name}'): give each device its own code, e.g. "
                        f"'{name}.{sent.figure}'"
                    )
                    yield doc.problem(here, message, key=True)
                taken.setdefault(sent.code.code, f"{sent.key} of '{name}'")
    for key in settings.codes:
        owner, figure = split_key(key)
        here = (*at, "codes", key)
        if (
            owner is not None
            and owner not in sent_devices
            and (parts.every_device or owner in valid)
        ):
            yield doc.problem(here, f"'{owner}' is not a device of any monitoring point", key=True)
        elif key not in used and all(d.complete for d in valid.values()) and parts.every_device:
            figures = ", ".join(RECORD_FIGURES)
            message = f"no device of a monitoring point has '{figure}' (a point, or {figures})"
            yield doc.problem(here, message, key=True)


def _data(settings: Hj212Settings, at: NodePath, doc: Reporter, parts: Parts) -> Iterator[Problem]:
    if parts.emissions is None:
        return
    intervals = sorted(s for s in parts.emissions.intervals if s >= 1)
    if not intervals:
        return
    if settings.data is None and intervals[0] >= HOUR:
        message = (
            "no minute data: the shortest interval is "
            f"{format_duration(intervals[0])}; add a shorter one (e.g. 1m or 10m) to "
            "emissions.intervals, or say data: [hour] or [day]"
        )
        yield doc.problem(at, message, severity="warning")
    needs = {"hour": HOUR, "day": DAY}
    for i, what in enumerate(settings.data or []):
        here = (*at, "data", i)
        if what == "minute" and intervals[0] >= HOUR:
            message = (
                "minute data come from the shortest interval, which is "
                f"{format_duration(intervals[0])}: add a shorter one (e.g. 1m or 10m) to "
                "emissions.intervals"
            )
            yield doc.problem(here, message)
        elif what in needs and needs[what] not in intervals:
            length = format_duration(needs[what])
            message = (
                f"{what} data need {length} in emissions.intervals: add it there, or drop "
                f"{what} here"
            )
            yield doc.problem(here, message)
