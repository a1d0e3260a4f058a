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
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from agent.scan_match import Score, choose, examine
from agent.scan_report import Meter, devices_in, render, snippet, write
from config.loader import load_profile
from config.profiles import Profile, list_profiles
from domain.errors import Disconnected, EdgeAgentError, InitError
from drivers.modbus import scan as modbus_scan

__all__ = ["Meter", "modbus_profiles", "run", "scan_dlt645", "scan_modbus", "scan_opcua"]


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
    """The meters of a sweep, each judged against every profile; `run` names them and
    settles each port's line once, over the meters of every protocol scanned."""
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
    _set_aside_unjudged(meters)
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


DLT645_SPEEDS = (2400, 1200, 4800, 9600)  # 2400 first: the speed most meters ship at


async def scan_dlt645(
    port: str,
    addresses: Sequence[str],
    speeds: Sequence[int] | None,
    parities: Sequence[str],
    timeout: float,
) -> tuple[list[Meter], modbus_scan.Sweep]:
    """The DL/T 645 meters on a port, each with the energy profile of the edition it
    answered in; what answered but was no meter goes in the sweep's `garbled`.

    Raises Disconnected (the port cannot be had; nothing was sent) and ValueError (an
    address that is not 12 digits)."""
    from drivers.dlt645 import scan as dlt645_scan

    sweep = modbus_scan.Sweep()
    started = time.monotonic()
    found: dict[str, dlt645_scan.Dlt645Found] = {}
    for parity in parities:
        for one in await dlt645_scan.scan_port(
            port,
            baudrates=speeds or DLT645_SPEEDS,
            addresses=[a for a in addresses if a not in found],
            parity=parity,
            timeout=timeout,
            heard=sweep.garbled,
        ):
            found.setdefault(one.address, one)
    sweep.seconds = time.monotonic() - started
    meters = []
    for f in found.values():
        link: dict[str, object] = {
            "port": port,
            "baudrate": f.baudrate,
            "parity": f.parity,
            "address": f.address,
        }
        if f.edition == "1997":  # 2007 is what a device without `edition` speaks
            link["edition"] = 1997
        where = f"{port} @{f.baudrate} 8{f.parity}1"
        meter = Meter(f"meter_{f.address.lstrip('0') or '0'}", "dlt645", link, where, f.evidence[0])
        meter.profile = f"dlt645-{f.edition}-energy"
        meter.why = f"a DL/T 645-{f.edition} meter: the {f.edition} energy profile"
        meter.evidence = list(f.evidence[1:])
        meters.append(meter)
    return meters, sweep


def _name(meters: list[Meter]) -> None:
    """meter_u5, and meter_u5_2 for a second unit 5 (another port or speed)."""
    seen: Counter[str] = Counter()
    for meter in meters:
        seen[meter.name] += 1
        if seen[meter.name] > 1:
            meter.name = f"{meter.name}_{seen[meter.name]}"


def _set_aside_unjudged(meters: list[Meter]) -> None:
    """A meter without a profile is written commented out, saying what to do about it."""
    for m in meters:
        if m.profile is not None:
            continue
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


SERIAL = ("modbus_rtu", "dlt645")  # the protocols whose meters share a port
SWITCHING = ("modbus_rtu",)  # its driver sets each meter's speed on the port (modbus/rtu.py)


def _setting(meter: Meter) -> str:
    """The meter's line setting as a technician writes it: 9600 8N1 (DL/T 645: stop bit 1)."""
    return f"{meter.link['baudrate']} 8{meter.link['parity']}{meter.link.get('stopbits', 1)}"


def _one_line_per_port(meters: list[Meter]) -> None:
    """A serial port carries one protocol (what `check` asks): the one most matched meters
    speak is written, a meter speaking another is kept out, with how to bring it in. The
    same for the speed and framing of DL/T 645 meters; Modbus RTU meters at another
    setting than most are written, with a note (the driver switches the port for them)."""
    ports: dict[str, list[Meter]] = {}
    for m in meters:
        if m.protocol in SERIAL and m.active:
            ports.setdefault(str(m.link["port"]), []).append(m)
    for port, on in ports.items():
        protocols = Counter(m.protocol for m in on)
        protocol, count = protocols.most_common(1)[0]
        speed = Counter(_setting(m) for m in on if m.protocol == protocol).most_common(1)[0][0]
        for m in on:
            setting = _setting(m)
            if m.protocol != protocol:
                m.active = False
                m.note = (
                    f"{port} carries {protocol} for {count} other meters, and one port "
                    f"carries one protocol: wire this {m.protocol} meter to a port of its "
                    "own (another RS-485 adapter), change `port` here, then uncomment"
                )
            elif setting != speed and m.protocol in SWITCHING:
                m.note = (
                    f"found at {setting}, the others on {port} at {speed}: the agent switches "
                    f"the port to {setting} for this meter's requests, which slows the bus; "
                    f"set it to {speed} (its menu, then here) where you can"
                )
            elif setting != speed:
                fields = "baudrate/parity/stopbits" if "stopbits" in m.link else "baudrate/parity"
                m.active = False
                m.note = (
                    f"found at {setting}; {port} runs at {speed} for the others: set this "
                    f"meter to {speed} (its menu), change {fields} here, then uncomment"
                )


async def run(
    *,
    rtu: str | None = None,
    tcp: str | None = None,
    opcua: str | None = None,
    dlt645: str | None = None,
    addresses: Sequence[str] = (),
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
    could not be asked, 78 when --write refused. --dlt645 may go with --rtu (two ports,
    or one port wired with both kinds of meter): the meters of both are written."""
    if write_to is not None and write_to.exists() and not force:
        print(
            f"{write_to}: exists{devices_in(write_to)}; keep it, or pass --force to overwrite it",
            file=sys.stderr,
        )
        return 78
    if rtu is None and tcp is None and opcua is None and dlt645 is None:
        print(
            "scan: name what to scan: --rtu PORT, --dlt645 PORT, --tcp HOST[:PORT] or --opcua URL",
            file=sys.stderr,
        )
        return 64
    sweep: modbus_scan.Sweep | None = None
    try:
        candidates = modbus_profiles(profiles)
    except InitError as exc:
        print(f"scan {exc}", file=sys.stderr)
        return 64
    progress = modbus_scan.tty_progress()
    where = rtu or tcp or opcua or dlt645
    meters: list[Meter] = []
    try:
        if rtu is not None:
            rtu_speeds = speeds or modbus_scan.SPEEDS
            rtu_framings = framings or modbus_scan.FRAMINGS
            rtu_timeout = timeout or 0.1
            wanted = list(units) if units is not None else list(range(1, 248))
            settings = len(rtu_speeds) * len(rtu_framings)
            seconds = modbus_scan.estimate(len(wanted), settings, rtu_timeout)
            if sys.stderr.isatty():
                print(
                    f"{rtu}: {len(wanted)} unit ids x {settings} settings, up to {seconds:.0f} s",
                    file=sys.stderr,
                )
            sweep = await modbus_scan.sweep_serial(
                rtu, rtu_speeds, rtu_framings, wanted, rtu_timeout, progress
            )
            meters += await scan_modbus(sweep, "modbus_rtu", max(rtu_timeout * 3, 0.3), candidates)
        elif tcp is not None:
            timeout = timeout or 0.3
            host, _, port = tcp.rpartition(":") if ":" in tcp else (tcp, "", "502")
            if not port.isdigit():
                print(f"scan --tcp {tcp}: the port must be a number", file=sys.stderr)
                return 64
            wanted = list(units) if units is not None else list(range(1, 248))
            sweep = await modbus_scan.sweep_tcp(host, int(port), framer, wanted, timeout, progress)
            meters += await scan_modbus(sweep, "modbus_tcp", max(timeout, 0.5), candidates)
        elif opcua is not None:
            meters += await scan_opcua(opcua, timeout or 5.0)
        if dlt645 is not None:
            where = dlt645
            parities = list(dict.fromkeys(f[1] for f in framings)) if framings else ["E"]
            found, heard = await scan_dlt645(dlt645, addresses, speeds, parities, timeout or 0.5)
            meters += found
            sweep = _merged(sweep, heard)
    except ValueError as exc:  # a DL/T 645 address that is not 12 digits
        print(f"scan --address: {exc}", file=sys.stderr)
        return 64
    except modbus_scan.PortBusy as exc:
        print(f"{rtu or tcp}: {exc}; not scanned{_in_use(exc)}", file=sys.stderr)
        return 69
    except Disconnected as exc:
        print(f"{exc}{_in_use(exc)}", file=sys.stderr)
        return 69
    except EdgeAgentError as exc:
        print(f"{where}: {exc}", file=sys.stderr)
        return 69
    finally:
        if sys.stderr.isatty():
            print("\r\033[K", end="", file=sys.stderr)
    _name(meters)
    _one_line_per_port(meters)
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


def _merged(first: modbus_scan.Sweep | None, then: modbus_scan.Sweep) -> modbus_scan.Sweep:
    """One account of two scans (--rtu and --dlt645 together)."""
    if first is None:
        return then
    first.refused += then.refused
    first.garbled += then.garbled
    first.seconds += then.seconds
    return first


def _in_use(exc: Exception) -> str:
    """The hint for a port another process holds: most often the agent itself."""
    if "in use" in str(exc):
        return " (a running edge-agent? `systemctl stop edge-agent` for the scan)"
    return ""
