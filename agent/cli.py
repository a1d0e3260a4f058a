"""`edge-agent`: the commands a technician types.

Exit codes follow sysexits: 0 ok, 78 (EX_CONFIG) for a configuration problem,
so systemd's RestartPreventExitStatus=78 never crash-loops on a bad file;
64 (EX_USAGE) when `check --for-systemd` finds no unit to read; 69
(EX_UNAVAILABLE) when `init` cannot ask the server it was to browse, or when
`receiver` or `demo` finds the receiver's extra (FastAPI, uvicorn) missing.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from agent import logs
from agent.demo_command import demo_arguments
from agent.logs import priority
from agent.receiver_command import cmd_receiver, receiver_arguments, receiver_missing
from config.loader import LoadedConfig, load_config, load_config_apart
from config.schema import config_json_schema
from domain.errors import ConfigInvalid, EdgeAgentError, InitError, Problem
from drivers.registry import PROTOCOLS

EX_OK = 0
EX_USAGE = 64
EX_UNAVAILABLE = 69
EX_CONFIG = 78
_IMPORT_SERVICE = lambda: __import__("agent.service")  # noqa: E731  (what `run` runs)


def _print_problems(problems: Sequence[Problem]) -> None:
    for problem in problems:
        warning = problem.severity == "warning"
        level = priority("WARNING" if warning else "ERROR")  # the journal's <N>, or ''
        print(f"{level}{'warning: ' if warning else ''}{problem}", file=sys.stderr)


def _print_total(path: str, problems: Sequence[Problem]) -> None:
    errors = sum(1 for p in problems if p.severity != "warning")
    total = f"{path}: {errors} error{'s' if errors != 1 else ''}"
    print(f"{priority('ERROR')}{total}", file=sys.stderr)


def _load(
    path: str,
    *,
    require_env: bool,
    apart: bool = False,
    environ: Mapping[str, str] | None = None,
) -> LoadedConfig | None:
    try:
        if apart:  # the daemon: it imports agent.service while its child loads (0.1 s)
            loaded = load_config_apart(path, require_env, meanwhile=_IMPORT_SERVICE)
        else:
            loaded = load_config(path, require_env, environ=environ)
    except ConfigInvalid as exc:
        _print_problems(exc.problems)
        _print_total(path, exc.problems)
        return None
    _print_problems(loaded.warnings)
    return loaded


def cmd_check(args: argparse.Namespace) -> int:
    """The file as `run` will start with it: valid, every ${VAR} set, and every file it
    opens at start usable; with --for-systemd, as the service will see them."""
    from agent.preflight import preflight
    from agent.systemd_unit import ServiceView, UnitNotFound, find_unit, read_unit

    service: ServiceView | None = None
    environ = None
    if args.for_systemd is not None:
        try:
            service = read_unit(find_unit(args.for_systemd or None))
        except (UnitNotFound, OSError) as exc:
            print(f"check --for-systemd: {exc}", file=sys.stderr)
            return EX_USAGE
        environ = {**os.environ, **service.environ}
    loaded = _load(args.config, require_env=True, environ=environ)
    if loaded is None:
        return EX_CONFIG
    problems = asyncio.run(preflight(loaded, service))
    _print_problems(problems)
    if any(p.severity != "warning" for p in problems):
        _print_total(args.config, problems)
        return EX_CONFIG
    config = loaded.config
    print(f"{args.config}: ok ({len(config.devices)} devices, {len(config.rules)} rules)")
    return EX_OK


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2, ensure_ascii=False))
    return EX_OK


def cmd_profiles(args: argparse.Namespace) -> int:
    from config.loader import load_profile
    from config.profiles import list_profiles

    unknown = [n for n in args.name if n not in list_profiles()]
    if unknown:
        print(f"unknown profile {', '.join(unknown)}; known: {', '.join(list_profiles())}")
        return 2
    if not args.name and not args.verbose:
        names = list_profiles()
        print(f"{len(names)} meter profiles; `edge-agent profiles NAME` shows one in full")
        width = max(map(len, names))
        for name in names:
            profile = load_profile(name).profile
            line = f"{profile.protocol:<6}  {profile.description} | {manual(profile.source)}"
            print(f"{name:<{width}}  {line}")
        return EX_OK
    for name in args.name or list_profiles():
        profile = load_profile(name).profile
        print(f"{name}  ({profile.protocol}) {profile.description}")
        print(f"  source: {' '.join(profile.source.split())}")
        if profile.caveats:
            print(f"  caveats: {' '.join(profile.caveats.split())}")
        for title, points in (("identify", profile.identify), ("reads", profile.points)):
            if points:
                print(f"  {title}:")
            for point in points:
                what = ", ".join(
                    filter(None, ["counter" if point.kind == "counter" else "", point.unit or ""])
                )
                print(f"    {point.name}{f' ({what})' if what else ''}: {point.source or '?'}")
    return EX_OK


def manual(source: str) -> str:
    """The manual a profile's `source` names: its text up to the first ': ' (the place in
    the manual follows), on one line."""
    return " ".join(source.split(": ", 1)[0].split())


def cmd_run(args: argparse.Namespace) -> int:
    # systemd's watchdog kills a hung daemon with SIGABRT: print every thread's stack
    # first, so the journal shows where it hung
    faulthandler.enable()
    logs.setup(args.verbose)
    loaded = _load(args.config, require_env=True, apart=True)
    if loaded is None:
        return EX_CONFIG
    from agent.service import run

    try:
        return asyncio.run(run(loaded))
    except ConfigInvalid as exc:  # found while starting: the buffer path, a token file ...
        _print_problems(exc.problems)
        return EX_CONFIG


def cmd_probe(args: argparse.Namespace) -> int:
    logs.setup(args.verbose, quiet=True)
    loaded = _load(args.config, require_env=False)
    if loaded is None:
        return EX_CONFIG
    from agent.probe import probe

    return asyncio.run(
        probe(
            loaded,
            args.device,
            as_json=args.json,
            plan_only=args.plan,
            identify=args.identify,
            browse=args.browse,
        )
    )


def cmd_ping(args: argparse.Namespace) -> int:
    logs.setup(args.verbose, quiet=True)
    loaded = _load(args.config, require_env=False)
    if loaded is None:
        return EX_CONFIG
    from agent.ping import ping

    try:
        return asyncio.run(ping(loaded, args.destination))
    except ConfigInvalid as exc:  # a credential file it cannot read
        _print_problems(exc.problems)
        return EX_CONFIG


def cmd_status(args: argparse.Namespace) -> int:
    loaded = _load(args.config, require_env=False)
    if loaded is None:
        return EX_CONFIG
    from agent.status import status

    return status(loaded, as_json=args.json)


def cmd_init(args: argparse.Namespace) -> int:
    from agent.init import Meter, make_starter

    protocol, target = next(
        (key, value) for key in PROTOCOLS if (value := getattr(args, key)) is not None
    )
    options = {name: getattr(args, name) for name in ("unit", "baudrate", "parity", "address")}
    meter = Meter(protocol, target, profile=args.profile, name=args.name, options=options)
    starter = make_starter(Path(args.config), meter, force=args.force, offline=args.offline)
    try:
        print(asyncio.run(starter))
    except InitError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return EX_CONFIG
    except EdgeAgentError as exc:  # the server to browse is not there, or refuses
        print(
            f"{args.config}: not written: {exc}; --offline writes the profile's points "
            "instead, each marked # CHANGE",
            file=sys.stderr,
        )
        return EX_UNAVAILABLE
    return EX_OK


def cmd_scan(args: argparse.Namespace) -> int:
    logs.setup(args.verbose, quiet=True)
    from agent.scan import run

    try:
        units = _numbers(args.units) if args.units else None
        speeds = _numbers(args.baud) if args.baud else None
    except ValueError:
        print("scan: --units and --baud take numbers and ranges: 1-32,40", file=sys.stderr)
        return EX_USAGE
    framings = args.framing.upper().split(",") if args.framing else None
    if framings and any(f not in ("8N1", "8E1", "8O1", "8N2") for f in framings):
        print(f"scan: --framing {args.framing}: one or more of 8N1,8E1,8O1,8N2", file=sys.stderr)
        return EX_USAGE
    return asyncio.run(
        run(
            rtu=args.rtu,
            tcp=args.tcp,
            opcua=args.opcua,
            dlt645=args.dlt645,
            addresses=[a for given in args.address for a in given.split(",") if a],
            units=units,
            framer=args.framer,
            timeout=args.timeout,
            as_json=args.json,
            force=args.force,
            write_to=Path(args.write) if args.write else None,
            profiles=args.profiles.split(",") if args.profiles else None,
            speeds=speeds,
            framings=framings,
        )
    )


def _numbers(text: str) -> list[int]:
    """'1-32,40' -> [1, ..., 32, 40]."""
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        out += range(int(low), int(high or low) + 1)
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    logs.setup(args.verbose, quiet=True)
    try:
        from agent.demo import demo
    except ImportError as exc:  # the demo runs the reference receiver
        missing = receiver_missing(exc)
        if missing is None:
            raise
        return missing

    return asyncio.run(demo(args.duration, args.json, args.keep, args.interval))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="edge-agent",
        description="Poll energy meters, compute energy, coal equivalent and CO2, "
        "buffer and deliver them to the central platform.",
    )
    top.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help: str, config: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        if config:
            p.add_argument("-c", "--config", required=True, metavar="FILE", help="agent.yaml")
        return p

    command("run", cmd_run, "run the daemon")
    p = command("check", cmd_check, "validate a config file (exit 0, or 78 with the problems)")
    p.add_argument(
        "--for-systemd",
        nargs="?",
        const="",
        metavar="UNIT",
        help="check as the service will start: ${CREDENTIALS_DIRECTORY} and the other "
        "directories as the unit sets them, each credential read from where the unit loads "
        "it (UNIT: the unit file, default the installed edge-agent.service)",
    )
    command("schema", cmd_schema, "print the JSON Schema of the config file", config=False)
    p = command("profiles", cmd_profiles, "list the meter profiles, each with its manual", False)
    p.add_argument(
        "name", nargs="*", help="show these profiles in full (manual, caveats, where each point is)"
    )
    p = command("probe", cmd_probe, "read one device now and print its points")
    p.add_argument("device", help="device name from the config")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--plan", action="store_true", help="only show the requests it would send")
    p.add_argument(
        "--browse",
        nargs="?",
        const="",
        metavar="NODE",
        help="list an OPC UA server's variables (under NODE, default Objects) to find node ids",
    )
    p.add_argument(
        "--identify",
        action="store_true",
        help="ask the one meter on the line its address (DL/T 645, wildcard AAAAAAAAAAAA)",
    )
    p = command("init", cmd_init, "write a starter config for one meter", config=False)
    p.add_argument("-c", "--config", default="agent.yaml", metavar="FILE", help="file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--profile", help="meter profile (`edge-agent profiles` lists them)")
    p.add_argument("--name", default="meter1", help="device name (default meter1)")
    how = p.add_mutually_exclusive_group(required=True)
    for key, spec in PROTOCOLS.items():  # one flag per protocol: --modbus-tcp HOST[:PORT] ...
        how.add_argument(spec.init.flag, dest=key, metavar=spec.init.metavar, help=spec.init.help)
    p.add_argument("--unit", type=int, help="Modbus unit id (default 1)")
    p.add_argument("--baudrate", type=int, help="serial speed (default 9600; DL/T 645: 2400)")
    p.add_argument("--parity", choices=["N", "E", "O"], help="serial parity (default N; 645: E)")
    p.add_argument("--address", help="DL/T 645 meter address, 12 digits as printed on it")
    p.add_argument(
        "--offline",
        action="store_true",
        help="ask nothing (--opcua browses the server for its node ids; offline, the "
        "generic profile's are written, each marked # CHANGE)",
    )
    p = command("scan", cmd_scan, "find the meters on a port, host or server", config=False)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--rtu", metavar="PORT", help="Modbus RTU meters on a serial port")
    where.add_argument("--tcp", metavar="HOST[:PORT]", help="Modbus TCP meters or a gateway")
    where.add_argument("--opcua", metavar="URL", help="an OPC UA server: energy-like variables")
    p.add_argument("--dlt645", metavar="PORT", help="DL/T 645 meters (2007, 1997) on a port")
    p.add_argument(
        "--address",
        action="append",
        default=[],
        metavar="A",
        help="--dlt645: a meter's 12-digit address (repeat; default: the wildcard)",
    )
    p.add_argument(
        "--baud", metavar="LIST", help="speeds (--rtu 9600,19200,4800,2400; --dlt645 2400,1200,...)"
    )
    p.add_argument("--framing", metavar="LIST", help="framings (--rtu 8N1,8E1,8N2; --dlt645 8E1)")
    p.add_argument("--units", metavar="LIST", help="unit ids: 1-32,40 (default 1-247; TCP 255 too)")
    p.add_argument(
        "--profiles", metavar="LIST", help="judge against these profiles only (default: all)"
    )
    p.add_argument(
        "--framer",
        choices=["socket", "rtu"],
        default="socket",
        help="--tcp: rtu for a serial-to-Ethernet converter in transparent mode",
    )
    p.add_argument(
        "--timeout", type=float, metavar="S", help="reply timeout (0.1 s --rtu, 0.5 s --dlt645)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--write", metavar="FILE", help="write a config with the meters found")
    p.add_argument("--force", action="store_true", help="let --write overwrite FILE")
    p = command("ping", cmd_ping, "try one destination's link: one harmless exchange")
    p.add_argument("destination", help="destination name (an HJ 212 one)")
    p = command("status", cmd_status, "devices, backlog and last sync, from the buffer")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p = command("demo", cmd_demo, "the whole data path with simulated meters", config=False)
    demo_arguments(p)
    p = command("receiver", cmd_receiver, "the reference central endpoint", config=False)
    receiver_arguments(p)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # here, not at exit: a reader gone by then is caught below
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()
    return code


def _reader_gone() -> int:
    """`edge-agent status | head`: the reader has what it wanted; stop without a traceback.

    Output still buffered goes to /dev/null so the flush at exit finds a reader
    (the recipe of https://docs.python.org/3/library/signal.html#note-on-sigpipe).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 1


if __name__ == "__main__":
    sys.exit(main())
