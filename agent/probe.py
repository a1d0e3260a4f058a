"""`edge-agent probe`: read one device now and show what the agent would see.

What a protocol offers beyond a read (a plan, the meter's address, a browse of
its server) is asked of the driver by the abilities in drivers.base.
"""

from __future__ import annotations

import json
import sys

from agent.wiring import Wiring
from config.loader import LoadedConfig
from domain.errors import DriverUnavailable, EdgeAgentError
from drivers.base import Browses, Driver, Identifies, Plans
from drivers.registry import make_driver


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
    try:
        driver = make_driver(device)
    except DriverUnavailable as exc:
        print(exc, file=sys.stderr)
        return 2
    if browse is not None:
        return await _browse(driver, browse or None)
    if plan_only:
        try:
            _plan(driver, as_json)
        finally:
            await driver.close()
        return 0
    if identify:
        return await _identify(driver, as_json)
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
        counters = {p.name for p in device.points if p.kind == "counter"}
        width = max((len(r.point) for r in readings), default=5)
        for r in readings:
            value = _shown(r.value, r.point in counters)
            line = f"{r.point:<{width}}  {value:>14} {r.unit:<5} {r.quality.value}"
            print(line + (f"  {r.reason}" if r.reason else ""))
    return 0 if readings and all(r.good for r in readings) else 1


def _shown(value: float | None, counter: bool) -> str:
    """A gauge to 6 significant digits; a counter in full (12345.67 kWh, not 12345.7), as
    many digits as a float64 holds, so a technician can compare it with the meter's display."""
    if value is None:
        return "-"
    return f"{value:.15g}" if counter else f"{value:.6g}"


def _plan(driver: Driver, as_json: bool) -> None:
    """The requests a poll sends (for OPC UA, each node), with the points each serves."""
    requests = driver.requests if isinstance(driver, Plans) else []
    if as_json:
        planned = [{"request": str(r), "points": [p.name for p in r.points]} for r in requests]
        plan = {"device": driver.device, "plan": driver.describe(), "requests": planned}
        print(json.dumps(plan, ensure_ascii=False))
        return
    print(driver.describe())
    for request in requests:
        names = ", ".join(p.name for p in request.points)
        print(f"  {request}: {names}")


async def _identify(driver: Driver, as_json: bool) -> int:
    """Ask the one meter on the line who it is (DL/T 645: the wildcard address; which
    edition answered, 2007 or 1997)."""
    try:
        if not isinstance(driver, Identifies):
            message = f"{driver.device}: this protocol has no way to ask a meter its address"
            print(message, file=sys.stderr)
            return 2
        try:
            facts = dict(await driver.identify())
        except EdgeAgentError as exc:
            if as_json:
                print(json.dumps({"device": driver.device, "error": str(exc)}, ensure_ascii=False))
            else:
                print(exc, file=sys.stderr)
            return 1
        if as_json:
            print(json.dumps({"device": driver.device} | facts, ensure_ascii=False))
        else:
            address = facts.pop("address", "?")
            more = "".join(f", {key} {value}" for key, value in facts.items())
            print(f"{driver.device}: meter address {address}{more}")
        return 0
    finally:
        await driver.close()


async def _browse(driver: Driver, node: str | None) -> int:
    """What the device's server holds, so a technician can find the ids of its points."""
    try:
        if not isinstance(driver, Browses):
            print(f"{driver.device}: --browse is for OPC UA devices", file=sys.stderr)
            return 2
        try:
            print(await driver.browse(node))
        except EdgeAgentError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    finally:
        await driver.close()
