"""`edge-agent init`: a starter agent.yaml for one meter that passes `check` as written.

The technician names the meter's profile and how to reach it (its protocol's
spec turns that into YAML fields); everything else is a commented placeholder
to replace. A protocol whose meters no profile fits (OPC UA: every server names
its variables its own way) asks the meter instead and writes the points found
(see `discovered`). The file is validated before it is written, and an
existing file is kept unless --force says otherwise.
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from config.base import PointBase
from config.loader import LoadedConfig, load_config, load_profile
from config.profiles import list_profiles
from domain.errors import ConfigInvalid, InitError
from drivers.registry import PROTOCOLS
from drivers.spec import StarterPoint

__all__ = ["Meter", "discovered", "make_starter", "starter", "write_starter"]


@dataclass(frozen=True, slots=True)
class Meter:
    """What `init` was told about the one meter."""

    protocol: str  # a key of drivers.registry.PROTOCOLS: modbus_tcp, opcua ...
    target: str  # what its flag was given: host[:port], serial port or endpoint
    profile: str | None = None
    name: str = "meter1"
    options: Mapping[str, Any] = field(default_factory=dict)  # unit, baudrate ...; None: not given
    points: tuple[StarterPoint, ...] | None = None  # found on the meter: written, no profile


def _transport(meter: Meter) -> str:
    """The device's transport line, in flow style."""
    fields = PROTOCOLS[meter.protocol].init.fields(meter.target, meter.options)
    body = ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items())
    return f"{meter.protocol}: {{{body}}}"


def _profile(meter: Meter) -> tuple[str, str | None]:
    """The profile to use and the name of its energy counter (None if it has none)."""
    spec = PROTOCOLS[meter.protocol]
    family = spec.family  # modbus_tcp, modbus_rtu -> modbus
    name = meter.profile or spec.init.profile
    if name is None:
        known = [n for n in list_profiles() if load_profile(n).profile.protocol == family]
        raise InitError(f"name the meter's --profile ({', '.join(known)})")
    if name not in list_profiles():
        raise InitError(f"unknown profile {name!r}; `edge-agent profiles` lists them")
    profile = load_profile(name).profile
    if profile.protocol != family:
        raise InitError(f"profile {name} is for {profile.protocol} meters, not {family}")
    counters = [p.name for p in profile.points if p.kind == "counter"]
    counter = "import_kwh" if "import_kwh" in counters else (counters[0] if counters else None)
    return name, counter


_HEADER = """\
# Written by `edge-agent {by}`. Replace every CHANGE below, put the sync token in
# /etc/edge-agent/sync-token, then check the file as the service will start with it:
#   sudo edge-agent check --for-systemd -c THIS_FILE
{then}gateway:
  id: plant-gw1                          # CHANGE: this gateway's id on the platform
  enterprise_id: 91510100MA6123456W      # CHANGE: the enterprise's unified social credit code
  region_code: "510100"                  # CHANGE: GB/T 2260 division (510100 is Chengdu)
  industry_code: C3011                   # CHANGE: GB/T 4754-2017 industry class
  timezone: Asia/Shanghai

sync:
  url: https://central.example/api/v1/batches   # CHANGE: the platform's batch endpoint
  token_file: ${{CREDENTIALS_DIRECTORY}}/sync-token   # the systemd credential (sync-token)
  every: 60s

emissions:
  factor_set: cn-mee-2022

devices:
"""


def header(by: str, then: str = "") -> str:
    """The head of a starter config down to `devices:`, shared by `init` and `scan`:
    `by` is the command that wrote it, `then` comment lines after the check line."""
    return _HEADER.format(by=by, then=then)


def starter(meter: Meter) -> str:
    """The text of the starter config."""
    profile, counter = _profile(meter)
    head, points = f"    profile: {profile}\n", ""
    if meter.points is not None:  # found on the meter: its own points, no profile
        head = ""
        points, counter = _points(meter.points)
    energy = f"    energy: {{carrier: electricity, counter: {counter}}}\n" if counter else ""
    if meter.points is not None and not counter:
        energy = "    # energy: {carrier: electricity, counter: NAME}   # CHANGE: the counter\n"
    reference = "# The reference of every field: docs/configuration.md (or `edge-agent schema`).\n"
    return f"""{header("init", reference)}  - name: {meter.name}
{head}    {_transport(meter)}
    poll: 10s
{points}{energy}"""


def _points(points: Sequence[StarterPoint]) -> tuple[str, str | None]:
    """The `points:` lines, each with its note, and the energy counter among them (the
    profile's import_kwh, else the first counter; none is guessed)."""
    lines = "    points:\n"
    counters = []
    for point in points:
        mark = "CHANGE: " if point.change else ""
        if not point.fields:
            lines += f"      # {mark}{point.note}\n"
            continue
        body = ", ".join(f"{k}: {json.dumps(v)}" for k, v in point.fields.items())
        lines += f"      - {{{body}}}   # {mark}{point.note}\n"
        if point.fields.get("kind") == "counter":
            counters.append(str(point.fields["name"]))
    counter = "import_kwh" if "import_kwh" in counters else (counters[0] if counters else None)
    return lines, counter


async def discovered(meter: Meter, *, offline: bool) -> Meter:
    """The meter with the points its protocol finds by asking it (`init --opcua` browses
    the server), or, `offline`, its profile's points each marked CHANGE; unchanged for a
    protocol whose profiles fit its meters. Raises InitError, or domain.errors when the
    meter or server cannot be asked."""
    spec = PROTOCOLS[meter.protocol].init
    profile, _ = _profile(meter)  # a wrong --profile is said before anything is asked
    if spec.discover is None:
        return meter
    known = list(load_profile(profile).profile.points)
    if offline:
        found = [
            StarterPoint(
                {}, f"{profile}'s node ids, not your server's: probe --browse lists those"
            ),
            *(StarterPoint(_fields(p), "the node id on your server", change=True) for p in known),
        ]
    else:
        module, _, name = spec.discover.partition(":")
        found = await getattr(importlib.import_module(module), name)(
            meter.target, meter.options, known
        )
    if not any(p.fields for p in found):
        raise InitError(f"{meter.target}: no numeric variable found to read")
    return replace(meter, points=tuple(found))


def _fields(point: PointBase) -> dict[str, object]:
    """A profile point as written: its name, its protocol's fields, then unit and kind."""
    data = point.model_dump(exclude_defaults=True)
    shared = [f for f in PointBase.model_fields if f != "name"]
    own = {k: v for k, v in data.items() if k not in shared and k != "name"}
    return {"name": point.name, **own, **{k: data[k] for k in shared if k in data}}


async def make_starter(path: Path, meter: Meter, *, force: bool, offline: bool = False) -> str:
    """`edge-agent init`: an existing file is refused before anything is asked, then the
    meter's points are found (see `discovered`) and the starter is written."""
    if path.exists() and not force:
        raise InitError("exists; keep it, or pass --force to overwrite it")
    return write_starter(path, await discovered(meter, offline=offline), force=force)


def write_checked(path: Path, text: str, what: str) -> LoadedConfig:
    """Write `text` to `path` only if it passes `check`: validated in a temporary file
    beside it, then moved over it, so a failed check leaves the old file as it was.
    Raises InitError listing the problems (under `path`'s name, not the temporary's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".agent-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        try:
            loaded = load_config(tmp)
        except ConfigInvalid as exc:
            errors = [p for p in exc.problems if p.severity != "warning"]
            lines = "\n".join(str(p).replace(tmp, str(path)) for p in errors)
            raise InitError(f"{what} would not pass check:\n{lines}") from None
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return loaded


def write_starter(path: Path, meter: Meter, *, force: bool) -> str:
    """Validate the starter config, then write it; returns what to print.

    Raises InitError (the file is there, or the text would not pass `check`).
    """
    if path.exists() and not force:
        raise InitError("exists; keep it, or pass --force to overwrite it")
    # a value given on the command line, say a bad address, fails the check
    loaded = write_checked(path, starter(meter), "the starter")
    device = loaded.config.devices[0]
    found = f"profile {device.profile}"
    if meter.points is not None:
        marked = sum(1 for p in meter.points if p.change)
        found = f"{len(device.points)} points" + (
            f", {marked} marked CHANGE" if marked else " found on it"
        )
    return (
        f"{path}: written ({device.name}: {meter.protocol} {meter.target}, "
        f"{found})\n"
        f"next: replace the CHANGE lines, then `edge-agent check --for-systemd -c {path}` "
        f"and `edge-agent probe -c {path} {device.name}`"
    )
