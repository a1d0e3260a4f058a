"""`edge-agent scan`: find the meters on a port, a host or an OPC UA server, tell which
profile each is, and write the devices of a config that passes `check`.

The sweeps live with their protocols (drivers/modbus/scan.py, drivers/opcua/scan.py);
here is what is judged from what they read. Every Modbus profile is scored against
every meter found by reading its points (read-only), and a profile is named only when
the evidence clearly favours it (see `choose`): a meter that fits none, or two alike,
is listed as unknown with what it answered, never guessed into a profile.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from agent.scan_match import Score, choose, examine
from agent.scan_report import Meter, devices_in, render, snippet, write
from config.loader import load_profile
from config.profiles import Profile, list_profiles
from domain.errors import EdgeAgentError, InitError
from drivers.modbus import scan as modbus_scan

__all__ = ["Meter", "modbus_profiles", "run", "scan_modbus", "scan_opcua"]


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
# `render`, `snippet` and `write` (agent/scan_report.py) take it as they take the
# Modbus meters; its `run` branch goes beside --rtu/--tcp/--opcua below.


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
            f"{write_to}: exists{devices_in(write_to)}; keep it, or pass --force to overwrite it",
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
