"""`edge-agent scan`: find the meters on a port, a host or an OPC UA server, tell which
profile each is, and write the devices of a config that passes `check`.

The sweeps live with their protocols (drivers/modbus/scan.py, drivers/opcua/scan.py);
here is what is judged from what they read. Every Modbus profile is scored against
every meter found by reading its points (read-only), and a profile is named only when
the evidence clearly favours it (see `choose`): a meter that fits none, or two alike,
is listed as unknown with what it answered, never guessed into a profile.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from agent.scan_match import Score, choose, examine
from config.loader import load_config, load_profile
from config.profiles import Profile, list_profiles
from domain.errors import ConfigInvalid, EdgeAgentError, InitError
from drivers.modbus import scan as modbus_scan
from drivers.spec import StarterPoint

__all__ = ["Meter", "render", "run", "scan_modbus", "scan_opcua", "snippet", "write"]

ELECTRICAL = ("kWh", "Wh", "MWh")  # counter units of the electricity carrier (config/carriers.py)


@dataclass
class Meter:
    """A meter found, how to reach it, and the profile it is judged to be (or None)."""

    name: str
    protocol: str  # modbus_rtu | modbus_tcp | opcua (dlt645 when the lead wires it)
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


def modbus_profiles(only: Sequence[str] | None = None) -> dict[str, Profile]:
    """The shipped Modbus profiles, by name; `only` those (the models the cabinet's
    drawings name). Raises InitError for a name that is no Modbus profile."""
    found = {name: load_profile(name).profile for name in list_profiles()}
    modbus = {name: p for name, p in found.items() if p.protocol == "modbus"}
    unknown = [name for name in only or () if name not in modbus]
    if unknown:
        raise InitError(
            f"--profiles: no Modbus profile {', '.join(unknown)} (known: {', '.join(modbus)})"
        )
    return {name: modbus[name] for name in only} if only else modbus


async def scan_modbus(
    sweep: modbus_scan.Sweep, protocol: str, timeout: float, profiles: Mapping[str, Profile]
) -> list[Meter]:
    """The meters of a sweep, each judged against every profile."""
    meters = []
    for found in sweep.found:
        scores, evidence = await examine(found, profiles, timeout)
        profile, why, fitting = choose(scores)
        meter = Meter(f"meter_u{found.unit}", protocol, found.line, found.how, found.answer)
        meter.profile, meter.why, meter.candidates = profile, why, fitting
        meter.evidence = evidence
        for score in scores:
            if score.profile == profile or (profile is None and score.profile in fitting):
                meter.evidence += [f"{score.profile}: {v.text}" for v in score.verdicts]
        if profile is None and not fitting:
            # the profile explaining most: one with nothing implausible first
            def rank(s: Score) -> tuple[bool, int]:
                return s.count("bad") == 0 and s.plausible > 0, s.plausible

            nearest = max(scores, key=rank, default=None)
            if nearest is not None and nearest.plausible:
                meter.evidence.append(f"nearest, {nearest.profile}: {nearest.summary()}")
                if nearest.weak_only:
                    meter.nearest = nearest.profile
                meter.evidence += [
                    f"{nearest.profile}: {v.text}" for v in nearest.verdicts if v.kind != "none"
                ]
        meters.append(meter)
    _name(meters)
    _one_setting_per_port(meters)
    return meters


async def scan_opcua(url: str, timeout: float) -> list[Meter]:
    """The energy-like variables of an OPC UA server, as one device's points."""
    from drivers.opcua import scan as opcua_scan

    points = await opcua_scan.propose(url, timeout)
    meter = Meter("meter_opcua", "opcua", {"endpoint": url}, url, f"{len(points)} variables")
    meter.points = points
    meter.why = "its variables with energy-like engineering units"
    meter.active = any(p.fields for p in points)
    if not meter.active:
        meter.note = "no variable with an energy-like engineering unit"
    return [meter]


# --dlt645 PORT [--address A ...]: the lead wires drivers/dlt645/scan.py (helper dlt1997)
# here: an `async def scan_dlt645(port, addresses, timeout) -> list[Meter]` that turns
# each meter it finds into a Meter(protocol="dlt645", link={port, baudrate, parity,
# address}, profile=<the 1997 or 2007 profile>, evidence=[which edition answered]);
# `render`, `snippet` and `write` below take it as they take the Modbus meters.


def _name(meters: list[Meter]) -> None:
    """meter_u5, and meter_u5_2 for a second unit 5 (another port or speed)."""
    seen: Counter[str] = Counter()
    for meter in meters:
        seen[meter.name] += 1
        if seen[meter.name] > 1:
            meter.name = f"{meter.name}_{seen[meter.name]}"


def _one_setting_per_port(meters: list[Meter]) -> None:
    """A serial port carries one speed and framing: the setting most matched meters use
    is written; a meter found at another is kept out, with how to bring it in."""
    by_port: dict[str, Counter[tuple[object, ...]]] = {}
    for m in meters:
        if m.protocol == "modbus_rtu":
            key = (m.link["baudrate"], m.link["parity"], m.link["stopbits"])
            by_port.setdefault(str(m.link["port"]), Counter())[key] += m.profile is not None
    for m in meters:
        if m.profile is None:
            m.active = False
            m.note = "no profile chosen: give it `points:` (or a profile) and uncomment"
            if m.nearest:
                m.note = (
                    f"{m.nearest} reads plausibly, but nothing only a live meter gives (a "
                    "voltage, a frequency, a counter that rose): compare `probe` with its "
                    "display, then uncomment"
                )
            if m.candidates:
                m.note = (
                    f"{', '.join(m.candidates[:-1])} and {m.candidates[-1]} read alike here: "
                    "keep the one on its "
                    "label and uncomment (scan --profiles NAME,... names the models installed)"
                )
            continue
        if m.protocol != "modbus_rtu":
            continue
        port = str(m.link["port"])
        best = by_port[port].most_common(1)[0][0]
        if (m.link["baudrate"], m.link["parity"], m.link["stopbits"]) != best:
            speed = f"{best[0]} 8{best[1]}{best[2]}"
            m.active = False
            m.note = (
                f"found at {m.link['baudrate']} 8{m.link['parity']}{m.link['stopbits']}; "
                f"{port} runs at {speed} for the others: set this meter to {speed} "
                "(its menu), change baudrate/parity/stopbits here, then uncomment"
            )


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
            out += [f"  {line}" for line in lines]
            continue
        out.append(
            f"  # {meter.name} ({meter.where}, unit {meter.link.get('unit', '-')}): {meter.note}"
        )
        out.append(f"  #   {meter.why}")
        out += [f"  # {line}" for line in lines]
    return "\n".join(out) + "\n"


HEADER = """\
# Written by `edge-agent scan`. Replace every CHANGE below, put the sync token in
# /etc/edge-agent/sync-token, then check the file as the service will start with it:
#   sudo edge-agent check --for-systemd -c THIS_FILE
# then read each meter once: edge-agent probe -c THIS_FILE meter_u1
gateway:
  id: plant-gw1                          # CHANGE: this gateway's id on the platform
  enterprise_id: 91510100MA6123456W      # CHANGE: the enterprise's unified social credit code
  region_code: "510100"                  # CHANGE: GB/T 2260 division (510100 is Chengdu)
  industry_code: C3011                   # CHANGE: GB/T 4754-2017 industry class
  timezone: Asia/Shanghai

sync:
  url: https://central.example/api/v1/batches   # CHANGE: the platform's batch endpoint
  token_file: ${CREDENTIALS_DIRECTORY}/sync-token   # the systemd credential (sync-token)
  every: 60s

emissions:
  factor_set: cn-mee-2022

devices:
"""


def write(path: Path, meters: Sequence[Meter], *, force: bool) -> str:
    """Write a config with the meters found, validated first; returns what to print.
    Raises InitError: the file is there (and how many devices it has), nothing to
    write, or the text would not pass `check`."""
    if path.exists() and not force:
        raise InitError(
            f"exists{_devices_in(path)}; keep it, or pass --force to overwrite it "
            "(without --write, scan prints the devices to paste in)"
        )
    if not any(m.active for m in meters):
        raise InitError("not written: no meter was matched to a profile (see the list above)")
    text = HEADER + snippet(meters)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".agent-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        try:
            load_config(tmp)
        except ConfigInvalid as exc:
            errors = [p for p in exc.problems if p.severity != "warning"]
            lines = "\n".join(str(p).replace(tmp, str(path)) for p in errors)
            raise InitError(f"the config would not pass check:\n{lines}") from None
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    active = sum(1 for m in meters if m.active)
    kept = len(meters) - active
    return (
        f"{path}: written ({active} devices" + (f", {kept} commented out" if kept else "") + ")\n"
        f"next: replace the CHANGE lines, then `edge-agent check --for-systemd -c {path}` and "
        f"`edge-agent probe -c {path} DEVICE`"
    )


def _devices_in(path: Path) -> str:
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


def _judged(meter: Meter) -> str:
    """The PROFILE column: the profile, the points proposed, or unknown."""
    if meter.profile:
        return meter.profile
    written = sum(1 for p in meter.points if p.fields)
    return f"{written} points proposed" if written else "unknown"


def render(meters: Sequence[Meter], sweep: modbus_scan.Sweep | None, as_json: bool) -> str:
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
    rows = [("NAME", "WHERE", "UNIT", "PROFILE")]
    rows += [(m.name, m.where, str(m.link.get("unit", "-")), _judged(m)) for m in meters]
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


async def run(
    *,
    rtu: str | None = None,
    tcp: str | None = None,
    opcua: str | None = None,
    speeds: Sequence[int] | None = None,
    framings: Sequence[str] | None = None,
    units: Sequence[int] | None = None,
    framer: str = "socket",
    timeout: float | None = None,
    as_json: bool = False,
    write_to: Path | None = None,
    force: bool = False,
    profiles: Sequence[str] | None = None,
) -> int:
    """`edge-agent scan`: 0 when a meter was found, 1 when none, 69 when the port or host
    could not be asked, 78 when --write refused."""
    if write_to is not None and write_to.exists() and not force:
        print(
            f"{write_to}: exists{_devices_in(write_to)}; keep it, or pass --force to overwrite it",
            file=sys.stderr,
        )
        return 78
    sweep: modbus_scan.Sweep | None = None
    try:
        candidates = modbus_profiles(profiles)
    except InitError as exc:
        print(f"scan {exc}", file=sys.stderr)
        return 64
    progress = modbus_scan.tty_progress()
    speeds, framings = speeds or modbus_scan.SPEEDS, framings or modbus_scan.FRAMINGS
    try:
        if rtu is not None:
            timeout = timeout or 0.1
            wanted = list(units) if units is not None else list(range(1, 248))
            seconds = modbus_scan.estimate(len(wanted), len(speeds) * len(framings), timeout)
            if sys.stderr.isatty():
                print(
                    f"{rtu}: {len(wanted)} unit ids x {len(speeds) * len(framings)} settings, "
                    f"up to {seconds:.0f} s",
                    file=sys.stderr,
                )
            sweep = await modbus_scan.sweep_serial(rtu, speeds, framings, wanted, timeout, progress)
            meters = await scan_modbus(sweep, "modbus_rtu", max(timeout * 3, 0.3), candidates)
        elif tcp is not None:
            timeout = timeout or 0.3
            host, _, port = tcp.rpartition(":") if ":" in tcp else (tcp, "", "502")
            if not port.isdigit():
                print(f"scan --tcp {tcp}: the port must be a number", file=sys.stderr)
                return 64
            wanted = list(units) if units is not None else list(range(1, 248))
            sweep = await modbus_scan.sweep_tcp(host, int(port), framer, wanted, timeout, progress)
            meters = await scan_modbus(sweep, "modbus_tcp", max(timeout, 0.5), candidates)
        elif opcua is not None:
            meters = await scan_opcua(opcua, timeout or 5.0)
        else:
            raise InitError("name what to scan: --rtu PORT, --tcp HOST[:PORT] or --opcua URL")
    except modbus_scan.PortBusy as exc:
        hint = ""
        if "in use" in str(exc):
            hint = " (a running edge-agent? `systemctl stop edge-agent` for the scan)"
        print(f"{rtu or tcp}: {exc}; not scanned{hint}", file=sys.stderr)
        return 69
    except EdgeAgentError as exc:
        print(f"{opcua or tcp or rtu}: {exc}", file=sys.stderr)
        return 69
    finally:
        if sys.stderr.isatty():
            print("\r\033[K", end="", file=sys.stderr)
    print(render(meters, sweep, as_json))
    if write_to is not None:
        try:  # beside --json, what was written is said on stderr: stdout stays one object
            print(write(write_to, meters, force=force), file=sys.stderr if as_json else None)
        except InitError as exc:
            print(f"{write_to}: {exc}", file=sys.stderr)
            return 78
    elif not as_json and meters:
        print("\n# the devices found, to paste under `devices:` (or scan again with --write FILE)")
        print("devices:\n" + snippet(meters), end="")
    return 0 if meters else 1
