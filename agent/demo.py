"""`edge-agent demo`: the whole data path on this machine, nothing to configure.

Three simulated meters (one Modbus TCP server on 127.0.0.1, three unit ids,
three register layouts), the reference receiver and the agent run in this
process, in a temporary directory. The agent is configured through a real
agent.yaml, loaded and validated like any other. At the end the energy the
receiver stored is set against what the simulated meters really advanced,
taken from the simulator's own load curves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

from agent.daemon import Agent
from config.loader import load_config, load_profile
from config.units import format_duration
from drivers.modbus.settings import ModbusPoint
from drivers.modbus.simulator import LoadCurve, MeterServer, SimulatedMeter
from receiver import Receiver

INTERVAL = 10.0  # s: the demo's short interval; polls run 10 times, syncs and tables twice in it

# name, unit id, load curve (base kW, swing kW, period s, phase), register map
_METERS = [
    ("main_incomer", 1, (420.0, 120.0, 90.0, 0.0), None),  # the eastron-sdm630 profile
    # the press line of examples/plant.yaml: uint32 energy x 0.01 kWh, power in W
    ("press_line_2", 2, (85.0, 40.0, 50.0, 1.0), [
        {"name": "power_kw", "address": 0x34, "function": "input", "type": "float32",
         "scale": 0.001, "unit": "kW"},
        {"name": "energy_kwh", "address": 0, "function": "holding", "type": "uint32",
         "scale": 0.01, "unit": "kWh", "kind": "counter"},
    ]),
    # a meter with the low word first and energy in Wh
    ("compressor", 3, (55.0, 25.0, 35.0, 2.0), [
        {"name": "power_kw", "address": 10, "type": "int32", "word_order": "little",
         "scale": 0.001, "unit": "kW"},
        {"name": "energy_wh", "address": 20, "type": "uint64", "word_order": "little",
         "unit": "Wh", "kind": "counter"},
    ]),
]  # fmt: skip
RESOLUTION_KWH = 0.01  # the coarsest energy register above


def demo_meters() -> dict[str, SimulatedMeter]:
    """The three simulated meters, with load curves starting now."""
    profile = [
        s.point for s in load_profile("eastron-sdm630").points if isinstance(s.point, ModbusPoint)
    ]
    meters = {}
    for name, unit, (base, swing, period, phase), raw in _METERS:
        points = profile if raw is None else [ModbusPoint.model_validate(p) for p in raw]
        curve = LoadCurve(base_kw=base, swing_kw=swing, period_s=period, phase=phase)
        counter = "import_kwh" if raw is None else points[-1].name
        meters[name] = SimulatedMeter(unit, points, curve, counter=counter)
    return meters


def demo_config(
    port: int,
    receiver_url: str,
    workdir: Path,
    *,
    interval: float = INTERVAL,
    poll: str = "1s",
    every: str = "5s",
) -> str:
    """agent.yaml for the demo meters: every address on this machine."""
    devices = []
    for name, unit, _, raw in _METERS:
        source = "    profile: eastron-sdm630\n" if raw is None else ""
        counter = "import_kwh" if raw is None else raw[-1]["name"]
        body = (
            ""
            if raw is None
            else "    points:\n" + "".join(f"      - {json.dumps(p)}\n" for p in raw)
        )
        devices.append(
            f"  - name: {name}\n{source}"
            f"    modbus_tcp: {{host: 127.0.0.1, port: {port}, unit: {unit}, timeout: 1s}}\n"
            f"    poll: {poll}\n{body}"
            f"    energy: {{carrier: electricity, counter: {counter}}}\n"
        )
    return (
        "# Written by `edge-agent demo`: every address is on this machine.\n"
        "gateway:\n"
        "  id: demo-gw1\n"
        "  enterprise_id: 91510100MA6123456W\n"
        '  region_code: "510100"\n'
        "  industry_code: C3011\n"
        "  timezone: Asia/Shanghai\n"
        "buffer:\n"
        f"  path: {workdir / 'buffer.db'}\n"
        "sync:\n"
        f"  url: {receiver_url}/api/v1/batches\n"
        f"  token_file: {workdir / 'sync-token'}\n"
        f"  every: {every}\n"
        "emissions:\n"
        "  factor_set: cn-mee-2022\n"
        f"  intervals: [{int(interval)}s, 1m]\n"
        "devices:\n" + "".join(devices)
    )


async def delivered(receiver_url: str, token: str) -> list[dict]:
    """Every interval the receiver stored for the demo gateway, through its public API."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        reply = await client.get(f"{receiver_url}/api/v1/intervals", params={"gateway": "demo-gw1"})
        reply.raise_for_status()
        return reply.json()["intervals"]


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _length(interval: dict) -> float:
    return _epoch(interval["end"]) - _epoch(interval["start"])


def energy_check(
    stored: list[dict], meters: dict[str, SimulatedMeter], interval: float = INTERVAL
) -> dict:
    """The receiver's energy per device against what each simulated meter really advanced.

    Delivered: the sum of the device's intervals of `interval` seconds. Metered:
    the meter's load curve integrated from the first energy reading it served
    to the end of the last delivered interval, from the simulator alone.
    """
    devices: dict[str, dict] = {}
    for name, meter in meters.items():
        mine = [i for i in stored if i["device"] == name and _length(i) == interval]
        metered = 0.0
        if mine and meter.first_served:
            end = max(_epoch(i["end"]) for i in mine)
            metered = meter.curve.energy_kwh(end) - meter.curve.energy_kwh(meter.first_served[0])
        devices[name] = {
            "intervals": len(mine),
            "delivered_kwh": round(sum(i["quantity"] for i in mine), 4),
            "metered_kwh": round(metered, 4),
            "co2_kg": round(sum(i["co2_kg"] for i in mine), 4),
        }
    delivered_kwh = sum(d["delivered_kwh"] for d in devices.values())
    metered_kwh = sum(d["metered_kwh"] for d in devices.values())
    return {
        "intervals_delivered": sum(d["intervals"] for d in devices.values()),
        "energy_delivered_kwh": round(delivered_kwh, 4),
        "energy_metered_kwh": round(metered_kwh, 4),
        "difference_kwh": round(delivered_kwh - metered_kwh, 4),
        "resolution_kwh": RESOLUTION_KWH,
        "co2_delivered_kg": round(sum(d["co2_kg"] for d in devices.values()), 4),
        "devices": devices,
    }


def _table(agent: Agent, backlog: dict, stored: list[dict], interval: float) -> str:
    co2: dict[str, float] = {}
    for i in stored:
        if _length(i) == interval:
            co2[i["device"]] = co2.get(i["device"], 0.0) + i["co2_kg"]
    heading = f"kWh this {format_duration(interval)}"
    lines = [f"{'device':<14}{'kW':>9}{heading:>15}{'CO2 kg sent':>13}{'quality':>9}"]
    for name, _, _, _ in _METERS:
        latest = agent.pipeline.latest.get(name)
        power = latest.get("power_kw") if latest is not None else None
        kw = f"{power.value:9.1f}" if power and power.value is not None else f"{'-':>9}"
        energy = agent.pipeline.open_energy(name)
        kwh = f"{energy:15.3f}" if energy is not None else f"{'-':>15}"
        quality = "bad" if agent.health.devices[name].failing_since else "good"
        lines.append(f"{name:<14}{kw}{kwh}{co2.get(name, 0.0):13.3f}{quality:>9}")
    sync = agent.destinations["sync"].status
    lines.append(
        f"buffered {backlog['intervals']} intervals, {backlog['events']} events; "
        f"synced {sync.records_sent} records in {sync.batches_sent} batches "
        f"(last: {sync.last_result})"
    )
    return "\n".join(lines)


async def demo(
    duration: float | None = None,
    as_json: bool = False,
    keep: bool = False,
    interval: float = INTERVAL,
) -> int:
    """Run until Ctrl-C or `duration` s. A shorter `interval` scales the polls, syncs and
    tables with it, so a test sees the whole data path in a few seconds."""
    workdir = Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    token = secrets.token_urlsafe(24)
    (workdir / "sync-token").write_text(token + "\n")
    out = sys.stderr if as_json else sys.stdout
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    meters = demo_meters()
    server = MeterServer(list(meters.values()))
    receiver = Receiver(workdir / "receiver.db", token)
    agent: Agent | None = None
    try:
        receiver.start()
        await server.start()
        config_path = workdir / "agent.yaml"
        cadence = {"poll": format_duration(interval / 10), "every": format_duration(interval / 2)}
        text = demo_config(server.port, receiver.url, workdir, interval=interval, **cadence)
        config_path.write_text(text)
        agent = Agent(load_config(config_path, require_env=True))
        await agent.start()
        print(f"demo in {workdir}: meters on 127.0.0.1:{server.port}, receiver on "
              f"{receiver.url}; Ctrl-C to stop", file=out)  # fmt: skip
        started = time.monotonic()
        while not stop.is_set():
            left = interval / 2
            if duration is not None:
                left = min(left, duration - (time.monotonic() - started))
                if left <= 0:
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=left)
            stored = await delivered(receiver.url, token)
            table = _table(agent, await agent.store.backlog(), stored, interval)
            print(table + "\n", file=out, flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if agent is not None:
            await agent.stop()  # persists the interval in progress, last sync
        await server.stop()
    totals = energy_check(await delivered(receiver.url, token), meters, interval)
    receiver.stop()
    if as_json:
        print(json.dumps(totals))
    else:
        print(
            f"delivered {totals['intervals_delivered']} intervals of {int(interval)}s: "
            f"{totals['energy_delivered_kwh']:.3f} kWh; the meters advanced "
            f"{totals['energy_metered_kwh']:.3f} kWh "
            f"(difference {totals['difference_kwh']:+.4f} kWh; registers step "
            f"{totals['resolution_kwh']} kWh); {totals['co2_delivered_kg']:.3f} kg CO2"
        )
    if keep:
        print(f"kept {workdir}", file=out)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
