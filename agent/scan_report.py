"""What `edge-agent scan` found, and how it is shown and written: the table (or JSON),
the `devices:` entries, and a whole config validated before it is written.

A meter judged is written as a device; any other (unknown, a tie between profiles
that read alike, found at a speed the port's other meters do not use) is written
commented out, with the reason and what to change to bring it in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from agent.init import header, write_checked
from config.loader import load_profile
from domain.errors import InitError
from drivers.modbus.scan import Sweep
from drivers.spec import StarterPoint

__all__ = ["ELECTRICAL", "Meter", "devices_in", "render", "snippet", "write"]

ELECTRICAL = ("kWh", "Wh", "MWh")  # counter units of the electricity carrier (config/carriers.py)


@dataclass
class Meter:
    """A meter found, how to reach it, and the profile it is judged to be (or None)."""

    name: str
    protocol: str  # modbus_rtu | modbus_tcp | dlt645 | opcua
    link: dict[str, object]  # the YAML fields of its link
    where: str
    answer: str  # what the detection read got
    profile: str | None = None
    why: str = ""  # the choice, in a line
    evidence: list[str] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)  # profiles that fit, when none was chosen
    points: list[StarterPoint] = field(default_factory=list)  # OPC UA: proposed points
    nearest: str | None = None  # fits but for strong evidence: offered, commented out
    active: bool = True  # written as a device (False: commented out, with the reason)
    note: str = ""


def _counters(profile: str | None, points: Sequence[StarterPoint]) -> list[tuple[str, str]]:
    """(name, unit) of the counters: the profile's, or those found on a server."""
    if profile is not None:
        found = load_profile(profile).profile.points
        return [(p.name, p.unit) for p in found if p.kind == "counter"]
    return [
        (str(p.fields["name"]), str(p.fields.get("unit", "")))
        for p in points
        if p.fields.get("kind") == "counter"
    ]


def _energy(profile: str | None, points: Sequence[StarterPoint]) -> str | None:
    """The energy line: an electrical counter (import_kwh first) for electricity; for a
    water, gas or heat counter the carrier is the technician's to say, so it is left a
    comment; None without a counter."""
    counters = _counters(profile, points)
    electrical = [name for name, unit in counters if unit in ELECTRICAL]
    if electrical:
        counter = "import_kwh" if "import_kwh" in electrical else electrical[0]
        return f"energy: {{carrier: electricity, counter: {counter}}}"
    if counters:
        name, unit = counters[0]
        return f"# energy: {{carrier: CHANGE, counter: {name}}}   # {unit}: water, gas, heat ...?"
    return None


def _device(meter: Meter) -> list[str]:
    """The device's YAML lines (flow style, like `init`)."""
    link = ", ".join(f"{k}: {json.dumps(v)}" for k, v in meter.link.items())
    lines = [f"- name: {meter.name}"]
    if meter.profile:
        lines.append(f"  profile: {meter.profile}")
    elif meter.candidates:  # a tie: written commented out, the technician picks
        others = ", ".join(meter.candidates[1:])
        lines.append(f"  profile: {meter.candidates[0]}   # CHANGE: or {others}")
    elif meter.nearest:
        lines.append(f"  profile: {meter.nearest}   # CHANGE: nearest by its values, unconfirmed")
    lines += [f"  {meter.protocol}: {{{link}}}", "  poll: 10s"]
    if meter.points:
        lines.append("  points:")
        for point in meter.points:
            mark = "CHANGE: " if point.change else ""
            if not point.fields:
                lines.append(f"    # {mark}{point.note}")
                continue
            body = ", ".join(f"{k}: {json.dumps(v)}" for k, v in point.fields.items())
            lines.append(f"    - {{{body}}}   # {mark}{point.note}")
    energy = _energy(
        meter.profile or next(iter(meter.candidates), None) or meter.nearest, meter.points
    )
    if energy:
        lines.append(f"  {energy}")
    return lines


def snippet(meters: Sequence[Meter]) -> str:
    """The `devices:` entries: meters judged, written; the others commented out, each
    with the reason and what it answered."""
    out = []
    for meter in meters:
        lines = _device(meter)
        if meter.active:
            out += [f"  # {meter.name}: {meter.note}"] if meter.note else []
            out += [f"  {line}" for line in lines]
            continue
        out.append(f"  # {meter.name} ({meter.where}, {_address(meter)}): {meter.note}")
        out.append(f"  #   {meter.why}")
        out += [f"  # {line}" for line in lines]
    return "\n".join(out) + "\n"


HEADER = header("scan", "# then read each meter once: edge-agent probe -c THIS_FILE meter_u1\n")


def write(path: Path, meters: Sequence[Meter], *, force: bool) -> str:
    """Write a config with the meters found, validated first; returns what to print.
    Raises InitError: the file is there (and how many devices it has), nothing to
    write, or the text would not pass `check`."""
    if path.exists() and not force:
        raise InitError(
            f"exists{devices_in(path)}; keep it, or pass --force to overwrite it "
            "(without --write, scan prints the devices to paste in)"
        )
    if not any(m.active for m in meters):
        raise InitError("not written: no meter was matched to a profile (see the list above)")
    write_checked(path, HEADER + snippet(meters), "the config")
    active = sum(1 for m in meters if m.active)
    kept = len(meters) - active
    return (
        f"{path}: written ({active} devices" + (f", {kept} commented out" if kept else "") + ")\n"
        f"next: replace the CHANGE lines, then `edge-agent check --for-systemd -c {path}` and "
        f"`edge-agent probe -c {path} DEVICE`"
    )


def devices_in(path: Path) -> str:
    """', with 3 devices (a, b, c)' for an agent.yaml that has them."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return ""
    devices = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(devices, list) or not devices:
        return ""
    names = [str(d.get("name", "?")) for d in devices if isinstance(d, dict)]
    return f" with {len(devices)} devices ({', '.join(names)})"


def _address(meter: Meter) -> str:
    """The meter's place on its line: unit 3 (Modbus), address 000012345678 (DL/T 645)."""
    if "address" in meter.link:
        return f"address {meter.link['address']}"
    return f"unit {meter.link.get('unit', '-')}"


def _judged(meter: Meter) -> str:
    """The PROFILE column: the profile, the points proposed, or unknown."""
    if meter.profile:
        return meter.profile
    written = sum(1 for p in meter.points if p.fields)
    return f"{written} points proposed" if written else "unknown"


def render(meters: Sequence[Meter], sweep: Sweep | None, as_json: bool) -> str:
    """The table of meters with their evidence (or one JSON object)."""
    if as_json:
        data = {
            "meters": [
                {
                    "name": m.name,
                    "protocol": m.protocol,
                    "link": m.link,
                    "where": m.where,
                    "answer": m.answer,
                    "profile": m.profile,
                    "why": m.why,
                    "candidates": m.candidates,
                    "evidence": m.evidence,
                    "written": m.active,
                    "note": m.note,
                    "points": [dict(p.fields) | {"note": p.note} for p in m.points if p.fields],
                }
                for m in meters
            ],
            "refused": sweep.refused if sweep else [],
            "garbled": sweep.garbled if sweep else [],
            "seconds": round(sweep.seconds, 3) if sweep else None,
        }
        return json.dumps(data, ensure_ascii=False)
    unit = "ADDRESS" if any("address" in m.link for m in meters) else "UNIT"
    rows = [("NAME", "WHERE", unit, "PROFILE")]
    rows += [(m.name, m.where, _address(m).split()[-1], _judged(m)) for m in meters]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for i, row in enumerate(rows):
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        )
        if i == 0:
            continue
        meter = meters[i - 1]
        lines.append(f"    answered: {meter.answer}; {meter.why}")
        lines += [f"    {e}" for e in meter.evidence]
        lines += [f"    {p.fields['name']}: {p.note}" for p in meter.points if p.fields]
        if meter.note:
            lines.append(f"    note: {meter.note}")
    if sweep is not None:
        lines += [f"skipped {r}" for r in sweep.refused]
        lines += [f"not a meter: {g}" for g in sweep.garbled]
        lines.append(f"{len(meters)} meters found in {sweep.seconds:.1f} s")
    return "\n".join(lines)
