"""The checks of each rule: what it watches, its limits, and the write it makes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from config.base import DeviceBase
from config.checks._parts import Parts, ValidDevice, shortest_interval
from config.errors import Document, NodePath, suggest, unknown
from config.models import Rule, RuleAction, protocol_of
from config.quantities import RULE_QUANTITIES
from config.units import format_duration
from domain.errors import Problem
from drivers.registry import PROTOCOLS, WRITES


def check_rules(parts: Parts, doc: Document) -> Iterator[Problem]:
    """A device a rule names is checked once every device validated, or if it is among them."""
    by_name: dict[str, ValidDevice] = {}  # the first of a name (a second is reported)
    for valid in parts.devices.values():
        by_name.setdefault(valid.model.name, valid)
    devices = {name: valid.model for name, valid in by_name.items()}
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
        yield from _quantity(doc, at, rule, parts, by_name.get(rule.device or ""))
        if (rule.above is None) == (rule.below is None):
            found = " (found both)" if rule.above is not None else ""
            yield doc.problem(at, f"a rule needs exactly one of above: or below:{found}")
        yield from _hysteresis(doc, at, "clear_below", rule.clear_below, "above", rule.above, -1)
        yield from _hysteresis(doc, at, "clear_above", rule.clear_above, "below", rule.below, 1)
        if rule.action is not None:
            yield from _action(doc, (*at, "action"), rule.action, devices, parts.every_device)


def _quantity(
    doc: Document, at: NodePath, rule: Rule, parts: Parts, valid: ValidDevice | None
) -> Iterator[Problem]:
    """A figure the agent computes (config/quantities.py says what each needs), or a point
    of the rule's device (`valid`, found by name: a rule per meter of 5,000 meters once
    looked through all of them each, 4 s)."""
    q, figures = rule.quantity, list(RULE_QUANTITIES)
    spec = RULE_QUANTITIES.get(q)
    where: NodePath = (*at, "quantity")
    shortest = shortest_interval(parts)
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
