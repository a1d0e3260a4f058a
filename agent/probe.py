"""`edge-agent probe`: read one device now and show what the agent would see."""

from __future__ import annotations

import json
import sys

from agent.wiring import Wiring
from config import LoadedConfig
from config.models import AnyDevice, protocol_of
from domain.errors import EdgeAgentError
from drivers import DriverUnavailable, make_driver


async def probe(
    loaded: LoadedConfig,
    name: str,
    *,
    as_json: bool,
    plan_only: bool,
    identify: bool = False,
    browse: str | None = None,
) -> int:
    """Exit 0 when every point read good, 1 when some did not, 2 when nothing could be done."""
    devices = {d.name: d for d in loaded.config.devices}
    device = devices.get(name)
    if device is None:
        known = ", ".join(devices) or "none"
        print(f"{loaded.path}: no device named {name!r} (devices: {known})", file=sys.stderr)
        return 2
    if browse is not None:
        return await _browse(device, browse or None)
    try:
        driver = make_driver(device)
    except DriverUnavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    describe = getattr(driver, "describe", None)
    if plan_only:
        print(describe() if describe else name)
        for request in getattr(driver, "requests", []):
            names = ", ".join(p.name for p in request.points)
            print(f"  {request}: {names}")
        return 0
    if identify:
        return await _identify(driver, name)
    try:
        readings = Wiring.of(device).apply(await driver.read())
    finally:
        await driver.close()
    if as_json:
        points = {
            r.point: {"value": r.value, "unit": r.unit, "quality": r.quality.value}
            | ({"reason": r.reason} if r.reason else {})
            for r in readings
        }
        print(json.dumps({"device": name, "points": points}, ensure_ascii=False))
    else:
        width = max((len(r.point) for r in readings), default=5)
        for r in readings:
            value = f"{r.value:.6g}" if r.value is not None else "-"
            line = f"{r.point:<{width}}  {value:>14} {r.unit:<5} {r.quality.value}"
            print(line + (f"  {r.reason}" if r.reason else ""))
    return 0 if readings and all(r.good for r in readings) else 1


async def _identify(driver: object, name: str) -> int:
    """Ask the one meter on the line who it is (DL/T 645: the wildcard address)."""
    ask = getattr(driver, "identify", None)
    try:
        if ask is None:
            print(f"{name}: this protocol has no way to ask a meter its address", file=sys.stderr)
            return 2
        try:
            print(f"{name}: meter address {await ask()}")
        except EdgeAgentError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    finally:
        await driver.close()  # type: ignore[attr-defined]


async def _browse(device: AnyDevice, node: str | None) -> int:
    """The variables of an OPC UA server, so a technician can find node ids."""
    if protocol_of(device) != "opcua":
        print(f"{device.name}: --browse is for OPC UA devices", file=sys.stderr)
        return 2
    from drivers.opcua.browse import browse, table

    try:
        variables = await browse(device, node)  # type: ignore[arg-type]
    except EdgeAgentError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(table(variables) if variables else f"{device.name}: no variables under {node}")
    return 0
