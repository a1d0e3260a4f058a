"""The checks of each device: its points (a profile's too), its energy and wiring, and the
meters that share its serial port."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence

from config.base import DeviceBase, Energy, PointBase
from config.carriers import (
    ELECTRICAL,
    accepted_rates,
    accepted_units,
    conversion,
    needs_density,
    rate_conversion,
)
from config.checks._parts import Parts, shortest_interval
from config.errors import Document, NodePath, suggest
from config.profiles import Sourced
from config.units import format_duration
from domain.errors import Problem
from drivers.registry import PROTOCOLS, spec_of
from drivers.spec import SerialLine

_POINT_CHECKS = {s.point: s.check_point for s in PROTOCOLS.values() if s.check_point is not None}


def check_points(
    points: Sequence[Sourced], clean: dict[int, PointBase] | None = None
) -> list[Problem]:
    """Names unique, and what the point's protocol checks of it (its spec's check_point).

    `clean` holds the points (by identity) a protocol's check found nothing in, kept
    across calls: that check sees only the point (its Reporter merely words problems),
    so a point model that 5,000 meters share (config/valid_devices.py) is checked once.
    """
    clean = {} if clean is None else clean
    problems = []
    first: dict[str, Sourced] = {}
    for s in points:
        point = s.point
        if point.name in first:
            was = first[point.name]
            line = was.doc.position((*was.path, "name"))[0]
            where = f"line {line}" if was.doc is s.doc else f"{was.doc.file}:{line}"
            message = f"duplicate point name '{point.name}' (first at {where})"
            problems.append(s.doc.problem((*s.path, "name"), message))
        else:
            first[point.name] = s
        point_check = _POINT_CHECKS.get(type(point))
        if point_check is None or id(point) in clean:
            continue
        found = list(point_check(point, s.path, s.doc))
        if found:
            problems += found
        else:
            clean[id(point)] = point  # held, so that its id is not another's meanwhile
    return problems


def check_devices(parts: Parts, doc: Document) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    clean: dict[int, PointBase] = {}
    shortest = shortest_interval(parts)
    for i, valid in parts.devices.items():
        device, merged, at = valid.model, valid.points, ("devices", i)
        if device.name in seen:
            line = doc.position(("devices", seen[device.name], "name"))[0]
            message = f"duplicate device name '{device.name}' (first at line {line})"
            yield doc.problem((*at, "name"), message)
        seen.setdefault(device.name, i)
        yield from check_points(merged, clean)
        if device.energy is not None and (device.energy.counter is None) == (
            device.energy.power is None
        ):
            found = (
                " (found both: the counter is exact, drop power:)" if device.energy.power else ""
            )
            message = f"energy needs counter: (a cumulative total) or power: (a rate){found}"
            yield doc.problem((*at, "energy"), message, key=True)
        if shortest is not None and device.poll > shortest:
            message = (
                f"poll {format_duration(device.poll)} is longer than the shortest interval "
                f"{format_duration(shortest)}: those intervals get no reading of their own"
            )
            yield doc.problem((*at, "poll"), message, severity="warning")
        if not valid.complete:
            continue
        if not merged:
            message = (
                f"device '{device.name}' has no points: list them under points: or name a profile:"
            )
            yield doc.problem(at, message)
        by_name: dict[str, PointBase] = {}
        for s in merged:
            by_name.setdefault(s.name, s.point)
        for role in ("energy", "production"):
            ref = getattr(device, role)
            if ref is not None and ref.counter is not None:
                yield from _counter(doc, (*at, role, "counter"), role, ref.counter, by_name)
        protocol_check = spec_of(device).check
        if protocol_check is not None:
            yield from protocol_check(device, at, doc)
        if device.energy is not None and device.energy.counter is not None:
            yield from _energy_unit(doc, at, device.energy, by_name)
            if device.reverse:
                yield from _reversible(doc, at, device.energy.counter, by_name)
        elif device.energy is not None and device.energy.power is not None:
            yield from _power(doc, (*at, "energy", "power"), device.energy, by_name)
            if device.energy.modulus is not None:
                message = "modulus is where a counter rolls over; with power: there is none"
                yield doc.problem((*at, "energy", "modulus"), message, key=True)
        if device.energy is not None:
            yield from _density(doc, (*at, "energy"), device.energy, by_name)
        yield from _wiring(doc, at, device, by_name)


def _density(
    doc: Document, at: NodePath, energy: Energy, points: Mapping[str, PointBase]
) -> Iterator[Problem]:
    """Litres of a liquid fuel need the density the factors' kg come from, and only they."""
    point = points.get(energy.counter or energy.power or "")
    if point is None:
        return  # reported with the counter or power
    if needs_density(energy.carrier, point.unit) and energy.density is None:
        message = (
            f"'{point.name}' meters {energy.carrier} in {point.unit}, but its factors are per kg: "
            "add density: {value: <kg per litre>, source: <where the figure comes from>}"
        )
        yield doc.problem(at, message)
    elif energy.density is not None and not needs_density(energy.carrier, point.unit):
        message = (
            f"density is used only for a liquid fuel metered in L or m3; '{point.name}' "
            f"is in {point.unit or 'no unit'} ({energy.carrier}): remove it"
        )
        yield doc.problem((*at, "density"), message, key=True, severity="warning")


def _reversible(
    doc: Document, at: NodePath, counter: str, points: Mapping[str, PointBase]
) -> Iterator[Problem]:
    """reverse swaps import_* and export_*: the counter needs its counterpart to swap with."""
    for a, b in (("import_", "export_"), ("export_", "import_")):
        if counter.startswith(a) and b + counter.removeprefix(a) in points:
            return
    message = (
        f"reverse: true swaps import_* and export_* points, but '{counter}' has no "
        "counterpart here: add the meter's other direction register (e.g. export_kwh)"
    )
    yield doc.problem((*at, "reverse"), message)


def _wiring(
    doc: Document, at: NodePath, device: DeviceBase, points: Mapping[str, PointBase]
) -> Iterator[Problem]:
    """Ratios and reversal act by unit and by name: say what they will not touch."""
    if device.ct_ratio != 1 or device.pt_ratio != 1:
        for name, point in points.items():
            if point.unit and point.unit.casefold() not in ELECTRICAL | {"hz", ""}:
                message = (
                    f"'{name}' is in {point.unit!r}: ct_ratio and pt_ratio leave it as read "
                    "(they act on A, V, W, var, VA and their energies)"
                )
                yield doc.problem((*at, "ct_ratio"), message, severity="warning")
    if device.reverse:
        counter = device.energy.counter if device.energy is not None else None
        for name, point in points.items():
            # the energy counter without its counterpart is an error (_reversible), said once
            if point.kind == "counter" and name.startswith("import_") and name != counter:
                other = "export_" + name.removeprefix("import_")
                if other not in points:
                    message = (
                        f"'{name}' has no '{other}' to swap with: on this reversed meter it "
                        "keeps reading the register it names"
                    )
                    yield doc.problem((*at, "reverse"), message, severity="warning")


def check_serial_ports(parts: Parts, doc: Document) -> Iterator[Problem]:
    """Devices on one serial port share the line: one protocol at one setting, and each
    meter its own address (a wildcard address only when it is alone on the line). Where
    the protocol's driver switches the port's setting per device (Modbus RTU), devices may
    differ in speed and framing, with a warning: every switch costs the bus time.

    Each rule is checked on its own and on every device whose link validated, so one
    run lists every problem of a line.
    """
    lines: dict[str, list[tuple[int, str, str, SerialLine]]] = {}
    for i, link in sorted(parts.links.items()):
        line = link.spec.serial_line(link.settings)
        if line is not None:
            lines.setdefault(os.path.realpath(line.port), []).append(
                (i, link.name, link.spec.key, line)
            )
    for meters in lines.values():
        i0, first, protocol0, line0 = meters[0]
        expected = f"{protocol0} {line0.settings}"
        addresses: dict[tuple[str, object], tuple[int, str]] = {}
        for i, name, protocol, line in meters:
            key, address = line.key, line.address
            if protocol != protocol0 or (line.settings != line0.settings and not line.switches):
                message = (
                    f"{line.port} is shared with '{first}' (devices[{i0}]) as {expected}; "
                    f"one line carries one protocol at one setting "
                    f"(got {protocol} {line.settings})"
                )
                yield doc.problem(("devices", i, protocol), message)
            elif line.settings != line0.settings:
                message = (
                    f"{line.port} runs at {line0.settings} for '{first}' (devices[{i0}]) and at "
                    f"{line.settings} for this meter: the port is switched before each of its "
                    "requests, which works but slows the bus; set the meters to one speed and "
                    "framing (their menus) where you can"
                )
                yield doc.problem(("devices", i, protocol), message, severity="warning")
            if (key, address) in addresses:
                j, other = addresses[key, address]
                message = f"'{other}' (devices[{j}]) already has {key} {address} on {line.port}"
                yield doc.problem(("devices", i, protocol, key), message)
            elif line.wildcard and len(meters) > 1:
                message = (
                    f"the wildcard address answers for every meter on {line.port}, and "
                    f"{len(meters) - 1} more devices are on it: give each its own address"
                )
                yield doc.problem(("devices", i, protocol, key), message)
            addresses.setdefault((key, address), (i, name))


def _counter(
    doc: Document, at: NodePath, role: str, name: str, points: Mapping[str, PointBase]
) -> Iterator[Problem]:
    point = points.get(name)
    if point is None:
        yield doc.problem(at, f"no point '{name}' in this device" + suggest(name, list(points)))
    elif point.kind != "counter":
        message = (
            f"'{name}' is a {point.kind}; {role} needs a cumulative counter point (kind: counter)"
        )
        yield doc.problem(at, message)


def _power(
    doc: Document, at: NodePath, energy: Energy, points: Mapping[str, PointBase]
) -> Iterator[Problem]:
    """A rate to integrate: an instant value whose unit is the carrier's per hour."""
    name = energy.power
    assert name is not None
    point = points.get(name)
    if point is None:
        yield doc.problem(at, f"no point '{name}' in this device" + suggest(name, list(points)))
    elif point.kind != "gauge":
        message = f"'{name}' is a counter: write it as counter: (power: integrates a rate)"
        yield doc.problem(at, message)
    elif needs_density(energy.carrier, point.unit):
        return  # _density asks for the density
    elif rate_conversion(energy.carrier, point.unit) is None:
        unit = repr(point.unit) if point.unit else "no unit"
        units = ", ".join(accepted_rates(energy.carrier))
        message = (
            f"'{name}' is in {unit}, not a rate of {energy.carrier} ({units}): set the point's unit"
        )
        yield doc.problem(at, message)


def _energy_unit(
    doc: Document, at: NodePath, energy: Energy, points: Mapping[str, PointBase]
) -> Iterator[Problem]:
    """The counter's unit must convert to the carrier's: the carbon step never guesses."""
    point = None if energy.counter is None else points.get(energy.counter)
    if point is None or point.kind != "counter":
        return  # reported by _counter
    if conversion(energy.carrier, point.unit) is None and not needs_density(
        energy.carrier, point.unit
    ):
        unit = repr(point.unit) if point.unit else "no unit"
        units = ", ".join(accepted_units(energy.carrier))
        message = (
            f"'{point.name}' counts in {unit}, not a unit of {energy.carrier} ({units}): "
            "set the point's unit"
        )
        yield doc.problem((*at, "energy", "counter"), message)
