"""The rules a config must follow that span fields, each reported at its node.

The models check each field alone; what needs two fields, the profile library
or the factor data (a counter that names a point, a grid that matches the
region) is checked here. The checks run on the parts of the file that passed
the models (each section, device and rule on its own), even when other parts
did not, so that one run reports every problem; a check that needs a part
which did not validate waits for the next run. Warnings are for what is legal
but probably not meant.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from config.base import ENV_VAR, Carrier, DeviceBase, Energy, PointBase
from config.carriers import (
    ELECTRICAL,
    accepted_rates,
    accepted_units,
    conversion,
    needs_density,
    rate_conversion,
)
from config.errors import Document, NodePath, Severity, suggest, unknown
from config.factors import FactorSet, UnknownFactorSet, factor_set_names, load_factor_set
from config.models import (
    Buffer,
    Emissions,
    Gateway,
    Rule,
    RuleAction,
    Sync,
    protocol_of,
    uscc_check_digit,
)
from config.profiles import Sourced
from config.quantities import RULE_QUANTITIES
from config.units import format_duration
from domain.errors import Problem
from drivers.registry import PROTOCOLS, WRITES, spec_of
from drivers.spec import SerialLine

HOUR, DAY = 3600, 86_400
_POINT_CHECKS = {s.point: s.check_point for s in PROTOCOLS.values() if s.check_point is not None}
_SYSTEMD_DIRS = {
    "CREDENTIALS_DIRECTORY": "LoadCredential=",
    "STATE_DIRECTORY": "StateDirectory=",
    "RUNTIME_DIRECTORY": "RuntimeDirectory=",
    "CACHE_DIRECTORY": "CacheDirectory=",
    "LOGS_DIRECTORY": "LogsDirectory=",
    "CONFIGURATION_DIRECTORY": "ConfigurationDirectory=",
}


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
class Parts:
    """The parts of a file that validated, each on its own.

    A section that did not validate is None; a device or rule that did not is
    left out of `devices` or `rules`, which are keyed by index in the file.
    `every_device`: all devices validated, so a name not among them is unknown.
    """

    gateway: Gateway | None
    buffer: Buffer | None
    sync: Sync | None
    emissions: Emissions | None
    devices: dict[int, ValidDevice]
    rules: dict[int, Rule]
    every_device: bool


def check_config(parts: Parts, doc: Document) -> list[Problem]:
    """Every cross-field problem among the parts that validated."""
    return [
        *_gateway(parts, doc),
        *_devices(parts, doc),
        *_serial_ports(parts, doc),
        *_emissions(parts, doc),
        *_rules(parts, doc),
    ]


def check_points(points: Sequence[Sourced]) -> list[Problem]:
    """Names unique, and what the point's protocol checks of it (its spec's check_point)."""
    problems = []
    first: dict[str, Sourced] = {}
    for s in points:
        if s.name in first:
            was = first[s.name]
            line = was.doc.position((*was.path, "name"))[0]
            where = f"line {line}" if was.doc is s.doc else f"{was.doc.file}:{line}"
            message = f"duplicate point name '{s.name}' (first at {where})"
            problems.append(s.doc.problem((*s.path, "name"), message))
        first.setdefault(s.name, s)
        point_check = _POINT_CHECKS.get(type(s.point))
        if point_check is not None:
            problems += point_check(s.point, s.path, s.doc)
    return problems


def _gateway(parts: Parts, doc: Document) -> Iterator[Problem]:
    if parts.gateway is not None:
        code = parts.gateway.enterprise_id
        expected = uscc_check_digit(code)
        if code[17] != expected:
            message = (
                f"check digit is '{code[17]}' but GB 32100 gives '{expected}' for {code[:17]}: "
                "check the code for a typo"
            )
            yield doc.problem(("gateway", "enterprise_id"), message, severity="warning")
    if parts.sync is None:
        return
    url = parts.sync.url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = url
    if url.startswith("http://") and not _loopback(host):
        message = f"plain http to {host}: the token would travel in clear text; use https://"
        yield doc.problem(("sync", "url"), message, severity="warning")


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _devices(parts: Parts, doc: Document) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    shortest = _shortest(parts)
    for i, valid in parts.devices.items():
        device, merged, at = valid.model, valid.points, ("devices", i)
        if device.name in seen:
            line = doc.position(("devices", seen[device.name], "name"))[0]
            message = f"duplicate device name '{device.name}' (first at line {line})"
            yield doc.problem((*at, "name"), message)
        seen.setdefault(device.name, i)
        yield from check_points(merged)
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


def _shortest(parts: Parts) -> float | None:
    """The shortest interval that is valid (under 1s is reported by _emissions), if any."""
    intervals = parts.emissions.intervals if parts.emissions is not None else []
    return min((s for s in intervals if s >= 1), default=None)


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


def _serial_ports(parts: Parts, doc: Document) -> Iterator[Problem]:
    """Devices on one serial port share the line: one protocol at one setting, and each
    meter its own address (a wildcard address only when it is alone on the line)."""
    lines: dict[str, list[tuple[int, str, str, SerialLine]]] = {}
    for i, valid in parts.devices.items():
        spec = spec_of(valid.model)
        line = spec.serial_line(spec.link(valid.model))
        if line is not None:
            lines.setdefault(os.path.realpath(line.port), []).append(
                (i, valid.model.name, spec.key, line)
            )
    for meters in lines.values():
        i0, first, protocol0, line0 = meters[0]
        expected = f"{protocol0} {line0.settings}"
        addresses: dict[object, tuple[int, str]] = {}
        for i, name, protocol, line in meters:
            key, address = line.key, line.address
            if f"{protocol} {line.settings}" != expected:
                message = (
                    f"{line.port} is shared with '{first}' (devices[{i0}]) as {expected}; "
                    f"one line carries one protocol at one setting "
                    f"(got {protocol} {line.settings})"
                )
                yield doc.problem(("devices", i, protocol), message)
            elif address in addresses:
                j, other = addresses[address]
                message = f"'{other}' (devices[{j}]) already has {key} {address} on {line.port}"
                yield doc.problem(("devices", i, protocol, key), message)
            elif line.wildcard and len(meters) > 1:
                message = (
                    f"the wildcard address answers for every meter on {line.port}, and "
                    f"{len(meters) - 1} more devices are on it: give each its own address"
                )
                yield doc.problem(("devices", i, protocol, key), message)
            addresses.setdefault(address, (i, name))


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


def _emissions(parts: Parts, doc: Document) -> Iterator[Problem]:
    emissions = parts.emissions
    if emissions is None:
        return
    seen: set[int] = set()
    for i, seconds in enumerate(emissions.intervals):
        at: NodePath = ("emissions", "intervals", i)
        millis, text = round(seconds * 1000), format_duration(seconds)
        if seconds < 1:
            yield doc.problem(at, f"must be at least 1s (got {text})")
        elif millis != seconds * 1000 or not (HOUR * 1000 % millis == 0 or millis == DAY * 1000):
            # Aligned on the local clock: a day runs from local midnight (23h or 25h on DST days).
            message = f"must divide an hour (1m, 5m, 15m, 30m, 1h ...) or be 1d (got {text})"
            yield doc.problem(at, message)
        elif millis in seen:
            yield doc.problem(at, f"duplicate interval {text}")
        seen.add(millis)
    for carrier, override in emissions.overrides.items():
        at = ("emissions", "overrides", carrier)
        if override.co2 is None and override.tce is None:
            yield doc.problem(at, "an override needs co2: or tce: (or both)", key=True)
        elif carrier == "water" and override.co2 is not None:
            yield doc.problem((*at, "co2"), "water carries no CO2: remove co2:", key=True)
        elif carrier == "electricity" and override.co2 is not None:
            message = (
                "replaces the MEE/NBS grid factor in every interval; reporting to the "
                "government platform normally expects the official one"
            )
            yield doc.problem((*at, "co2"), message, severity="warning")
    try:
        factors = load_factor_set(emissions.factor_set)
    except UnknownFactorSet:
        message = unknown("factor set", emissions.factor_set, factor_set_names())
        yield doc.problem(("emissions", "factor_set"), message)
        return
    grid = emissions.grid
    if grid is not None and grid not in factors.grids:
        yield doc.problem(("emissions", "grid"), unknown("grid", grid, list(factors.grids)))
        return
    if parts.gateway is None:
        return  # the grid follows gateway.region_code: checked once that validates
    code = parts.gateway.region_code
    province = factors.province_for(code)
    if grid is None:
        if province not in factors.grids:
            message = (
                f"no provincial grid factor for region {code} in {factors.name}; set "
                "emissions.grid: national if your programme prescribes the national factor"
            )
            yield doc.problem(("gateway", "region_code"), message)
    elif grid not in ("national", province):
        where = f"which is in {province}" if province else f"which is not in {grid}"
        message = f"{grid} contradicts gateway.region_code {code}, {where}"
        yield doc.problem(("emissions", "grid"), message)
    yield from _unconfirmed(parts, doc, factors, grid or province)


_UNCONFIRMED = {
    "single_source": "taken from one public transcription",
    "memory": "recalled, not yet seen in a source",
}


def _unconfirmed(
    parts: Parts, doc: Document, factors: FactorSet, province: str | None
) -> Iterator[Problem]:
    """A shipped figure nobody could confirm is used only with a warning that says so,
    once per carrier metered, unless the plant overrides it with its own source."""
    emissions = parts.emissions
    assert emissions is not None
    metered: dict[Carrier, NodePath] = {}
    for i, device in parts.devices.items():
        if device.model.energy is not None:
            metered.setdefault(device.model.energy.carrier, ("devices", i, "energy", "carrier"))
    for carrier, at in metered.items():
        override = emissions.overrides.get(carrier)
        if carrier == "electricity":
            found = [factors.grids.get(province or "")]
        else:
            found = [factors.co2_factors.get(carrier), factors.standard_coal(carrier)]
        for factor in found:
            if factor is None or factor.verification not in _UNCONFIRMED:
                continue
            is_co2 = factor.unit.startswith("kgCO2")
            if override is not None and (override.co2 if is_co2 else override.tce) is not None:
                continue
            message = (
                f"the {factor.id} factor {factor.value:g} {factor.unit} is "
                f"{_UNCONFIRMED[factor.verification]}: check it against {factor.source}, "
                f"or set emissions.overrides.{carrier}.{'co2' if is_co2 else 'tce'} "
                "with the figure and its source"
            )
            yield doc.problem(at, message, severity="warning")


def _rules(parts: Parts, doc: Document) -> Iterator[Problem]:
    """A device a rule names is checked once every device validated, or if it is among them."""
    devices = {d.model.name: d.model for d in parts.devices.values()}
    seen: dict[str, int] = {}
    for i, rule in parts.rules.items():
        at: NodePath = ("rules", i)
        if rule.name in seen:
            line = doc.position(("rules", seen[rule.name], "name"))[0]
            message = f"duplicate rule name '{rule.name}' (first at line {line})"
            yield doc.problem((*at, "name"), message)
        seen.setdefault(rule.name, i)
        if rule.device is not None and rule.device not in devices and parts.every_device:
            yield doc.problem((*at, "device"), unknown("device", rule.device, list(devices)))
        yield from _quantity(doc, at, rule, parts)
        if (rule.above is None) == (rule.below is None):
            found = " (found both)" if rule.above is not None else ""
            yield doc.problem(at, f"a rule needs exactly one of above: or below:{found}")
        yield from _hysteresis(doc, at, "clear_below", rule.clear_below, "above", rule.above, -1)
        yield from _hysteresis(doc, at, "clear_above", rule.clear_above, "below", rule.below, 1)
        if rule.action is not None:
            yield from _action(doc, (*at, "action"), rule.action, devices, parts.every_device)


def _quantity(doc: Document, at: NodePath, rule: Rule, parts: Parts) -> Iterator[Problem]:
    """A figure the agent computes (config/quantities.py says what each needs), or a point
    of the rule's device."""
    q, figures = rule.quantity, list(RULE_QUANTITIES)
    spec = RULE_QUANTITIES.get(q)
    where: NodePath = (*at, "quantity")
    shortest = _shortest(parts)
    if spec is not None and spec.blocks and shortest and 900 % shortest:
        message = (
            f"{q} is built from the shortest interval, which must divide 15 minutes "
            f"(got {format_duration(shortest)}): add 1m, 5m or 15m to emissions.intervals"
        )
        yield doc.problem(where, message)
    if rule.device is None:
        if spec is None:
            message = (
                f"unknown site quantity '{q}'{suggest(q, figures, 'site quantities')}; "
                "a point needs device:"
            )
            yield doc.problem(where, message)
        elif spec.device_only:
            yield doc.problem(where, f"{q} needs device: ({spec.device_only})")
        return
    valid = next((d for d in parts.devices.values() if d.model.name == rule.device), None)
    if valid is None or not valid.complete:
        return  # an unknown or broken device is reported where it is
    device, points = valid.model, [s.name for s in valid.points]
    if spec is not None and spec.energy:
        if device.energy is None:
            message = f"{q} is computed from an energy counter, and '{device.name}' has no energy:"
            yield doc.problem(where, message)
        elif spec.blocks and device.energy.carrier != "electricity":
            message = (
                f"{q} needs an electricity meter ('{device.name}' meters {device.energy.carrier})"
            )
            yield doc.problem(where, message)
    elif q not in points:
        known = ", ".join([*figures, *points])
        hint = suggest(q, [*figures, *points], "known")
        if "did you mean" not in hint:
            hint = f" (known: {known})"
        yield doc.problem(
            where, f"'{q}' is neither a computed figure nor a point of '{device.name}'{hint}"
        )


def _hysteresis(
    doc: Document,
    at: NodePath,
    clear: str,
    level: float | None,
    trigger: str,
    limit: float | None,
    side: int,
) -> Iterator[Problem]:
    """clear_below goes with above and lies below it; clear_above mirrors it."""
    if level is None:
        return
    if limit is None:
        message = f"{clear} goes with {trigger}: (it is the level where the alarm clears)"
        yield doc.problem((*at, clear), message, key=True)
    elif (level - limit) * side < 0:
        bound = "at most" if side < 0 else "at least"
        yield doc.problem((*at, clear), f"must be {bound} {trigger}: {limit:g} (got {level:g})")


def _action(
    doc: Document,
    at: NodePath,
    action: RuleAction,
    devices: Mapping[str, DeviceBase],
    every_device: bool,
) -> Iterator[Problem]:
    """Exactly one write; its device must speak a protocol serving that write."""
    given = action.writes()
    if len(given) != 1:
        found = " (found both)" if len(given) == 2 else f" (found {len(given)})" if given else ""
        keys = " or ".join(f"{key}:" for key in WRITES)
        yield doc.problem(at, f"needs exactly one of {keys}{found}")
        return
    key, write = given[0]
    at = (*at, key)
    yield from _write_target(doc, at, write.device, devices, every_device)
    values = WRITES[key].check
    if values is not None:
        yield from values(write, at, doc)


def _write_target(
    doc: Document,
    at: NodePath,
    name: str,
    devices: Mapping[str, DeviceBase],
    every_device: bool,
) -> Iterator[Problem]:
    """The device a write names: known (said once every device validated), and speaking
    a protocol whose spec serves the write at `at`."""
    target = devices.get(name)
    if target is None:
        if every_device:
            yield doc.problem((*at, "device"), unknown("device", name, list(devices)))
        return
    key = at[-1]
    serving = [p for p, spec in PROTOCOLS.items() if spec.write and spec.write.key == key]
    if protocol_of(target) not in serving:
        wanted = " or ".join(serving)
        article = "an" if wanted[:1] in "aeiou" else "a"
        message = f"'{name}' speaks {protocol_of(target)}; {key} needs {article} {wanted} device"
        yield doc.problem((*at, "device"), message)


# --- ${VAR} in path fields ----------------------------------------------------


def expand_env(
    parts: Parts, doc: Document, environ: Mapping[str, str] | None, require_env: bool
) -> tuple[Parts, list[Problem]]:
    """Path fields with ${VAR} and ${VAR:-default} expanded; an unset VAR stays as written.

    An unset VAR is a warning for `check` on a workstation, an error for the
    daemon (`require_env`), which would otherwise open a path that is not there.
    """
    env = os.environ if environ is None else environ
    problems: list[Problem] = []
    severity: Severity = "error" if require_env else "warning"

    def expand(value: str | None, at: NodePath) -> str | None:
        def one(match: re.Match[str]) -> str:
            name, default = match.groups()
            if default is not None and not env.get(name):
                return default
            if name in env:
                return env[name]
            message = f"${{{name}}} is not set ({_hint(name)})"
            problems.append(doc.problem(at, message, severity=severity))
            return match.group()

        return None if value is None else ENV_VAR.sub(one, value)

    buffer, sync, devices = parts.buffer, parts.sync, dict(parts.devices)
    if buffer is not None:
        buffer = buffer.model_copy(update={"path": expand(buffer.path, ("buffer", "path"))})
    if sync is not None:
        files = {
            name: expand(getattr(sync, name), ("sync", name))
            for name in ("token_file", "ca_file", "client_cert", "client_key")
        }
        sync = sync.model_copy(update=files)
    for i, valid in devices.items():
        spec = spec_of(valid.model)
        if spec.path_fields:
            link = spec.link(valid.model)
            files = {
                name: expand(getattr(link, name), ("devices", i, spec.key, name))
                for name in spec.path_fields
            }
            link = link.model_copy(update=files)
            devices[i] = replace(valid, model=valid.model.model_copy(update={spec.key: link}))
    return replace(parts, buffer=buffer, sync=sync, devices=devices), problems


def _hint(name: str) -> str:
    if name in _SYSTEMD_DIRS:
        return f"systemd sets it with {_SYSTEMD_DIRS[name]}"
    return f"set it in the environment, or give a default: ${{{name}:-value}}"
