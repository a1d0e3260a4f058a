"""`edge-agent init`: a starter agent.yaml for one meter that passes `check` as written.

The technician names the meter's profile and how to reach it (its protocol's
spec turns that into YAML fields); everything else is a commented placeholder
to replace. The file is validated before it is written, and an existing file
is kept unless --force says otherwise.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.loader import load_config, load_profile
from config.profiles import list_profiles
from domain.errors import ConfigInvalid, InitError
from drivers.registry import PROTOCOLS

__all__ = ["Meter", "starter", "write_starter"]


@dataclass(frozen=True, slots=True)
class Meter:
    """What `init` was told about the one meter."""

    protocol: str  # a key of drivers.registry.PROTOCOLS: modbus_tcp, opcua ...
    target: str  # what its flag was given: host[:port], serial port or endpoint
    profile: str | None = None
    name: str = "meter1"
    options: Mapping[str, Any] = field(default_factory=dict)  # unit, baudrate ...; None: not given


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


def starter(meter: Meter) -> str:
    """The text of the starter config."""
    profile, counter = _profile(meter)
    energy = f"    energy: {{carrier: electricity, counter: {counter}}}\n" if counter else ""
    return f"""\
# Written by `edge-agent init`. Replace every CHANGE below, put the sync token in
# /etc/edge-agent/sync-token, then check the file as the service will start with it:
#   sudo edge-agent check --for-systemd -c THIS_FILE
# The reference of every field: docs/configuration.md (or `edge-agent schema`).
gateway:
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
  - name: {meter.name}
    profile: {profile}
    {_transport(meter)}
    poll: 10s
{energy}"""


def write_starter(path: Path, meter: Meter, *, force: bool) -> str:
    """Validate the starter config, then write it; returns what to print.

    Raises InitError (the file is there, or the text would not pass `check`).
    """
    if path.exists() and not force:
        raise InitError("exists; keep it, or pass --force to overwrite it")
    text = starter(meter)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".agent-", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        try:
            loaded = load_config(tmp)
        except ConfigInvalid as exc:  # a value given on the command line, say a bad address
            errors = [p for p in exc.problems if p.severity != "warning"]
            lines = "\n".join(str(p).replace(tmp, str(path)) for p in errors)
            raise InitError(f"the starter would not pass check:\n{lines}") from None
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    device = loaded.config.devices[0]
    return (
        f"{path}: written ({device.name}: {meter.protocol} {meter.target}, "
        f"profile {device.profile})\n"
        f"next: replace the CHANGE lines, then `edge-agent check --for-systemd -c {path}` "
        f"and `edge-agent probe -c {path} {device.name}`"
    )
