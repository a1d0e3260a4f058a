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
from pathlib import Path

import httpx

from agent.daemon import Agent
from cloud_sync.receiver import Receiver
from config import load_config
from config.models import ModbusPoint
from drivers.modbus.simulator import LoadCurve, MeterServer, SimulatedMeter

INTERVAL = 10.0
TABLE_EVERY = 5.0

# name, unit id, load curve, the points of its register map
_METERS = [
    ("main_incomer", 1, LoadCurve(base_kw=420.0, swing_kw=120.0, period_s=90.0)),
    ("press_line_2", 2, LoadCurve(base_kw=85.0, swing_kw=40.0, period_s=50.0, phase=1.0)),
    ("compressor", 3, LoadCurve(base_kw=55.0, swing_kw=25.0, period_s=35.0, phase=2.0)),
]
_POINTS = {
    # an Eastron-style meter: float32 input registers (the profile in the library)
    "main_incomer": None,
    # the press line of examples/plant.yaml: uint32 energy x 0.01 kWh, power in W
    "press_line_2": [
        {"name": "power_kw", "address": 0x34, "function": "input", "type": "float32",
         "scale": 0.001, "unit": "kW"},
        {"name": "energy_kwh", "address": 0, "function": "holding", "type": "uint32",
         "scale": 0.01, "unit": "kWh", "kind": "counter"},
    ],
    # a meter with the low word first and energy in Wh
    "compressor": [
        {"name": "power_kw", "address": 10, "type": "int32", "word_order": "little",
         "scale": 0.001, "unit": "kW"},
        {"name": "energy_wh", "address": 20, "type": "uint64", "word_order": "little",
         "unit": "Wh", "kind": "counter"},
    ],
}  # fmt: skip


def _config_text(port: int, receiver_url: str, workdir: Path) -> str:
    devices = []
    for name, unit, _ in _METERS:
        points = _POINTS[name]
        source = "    profile: eastron-sdm630\n" if points is None else ""
        counter = "import_kwh" if points is None else points[-1]["name"]
        body = "" if points is None else "    points:\n" + "".join(
            f"      - {json.dumps(p)}\n" for p in points
        )
        devices.append(
            f"  - name: {name}\n{source}"
            f"    modbus_tcp: {{host: 127.0.0.1, port: {port}, unit: {unit}, timeout: 1s}}\n"
            f"    poll: 1s\n{body}"
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
        "  every: 5s\n"
        "emissions:\n"
        "  factor_set: cn-mee-2022\n"
        f"  intervals: [{int(INTERVAL)}s, 1m]\n"
        "devices:\n" + "".join(devices)
    )


def _meters(profile_points: list[ModbusPoint]) -> list[SimulatedMeter]:
    meters = []
    for name, unit, curve in _METERS:
        raw = _POINTS[name]
        points = profile_points if raw is None else [ModbusPoint(**p) for p in raw]
        counter = points[-1].name if raw else "import_kwh"
        meters.append(SimulatedMeter(unit, points, curve, counter=counter))
    return meters


async def _delivered(receiver_url: str, token: str) -> list[dict]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        reply = await client.get(f"{receiver_url}/api/v1/intervals", params={"gateway": "demo-gw1"})
        reply.raise_for_status()
        return reply.json()["intervals"]


def _table(agent: Agent, backlog: dict, co2: dict[str, float]) -> str:
    lines = [
        f"{'device':<14}{'kW':>9}{'kWh this ' + str(int(INTERVAL)) + 's':>15}{'CO2 kg':>10}"
        f"{'quality':>9}",
    ]
    for name, _, _ in _METERS:
        latest = agent.pipeline.latest.get(name, {})
        power = latest.get("power_kw")
        kw = f"{power.value:9.1f}" if power and power.value is not None else f"{'-':>9}"
        energy = agent.pipeline.open_energy(name)
        kwh = f"{energy:15.3f}" if energy is not None else f"{'-':>15}"
        quality = "good" if agent.status[name].failing_since == 0 else "bad"
        lines.append(f"{name:<14}{kw}{kwh}{co2.get(name, 0.0):10.3f}{quality:>9}")
    sync = agent.uploader.status
    lines.append(
        f"buffered {backlog['intervals']} intervals, {backlog['events']} events; "
        f"synced {sync.records_sent} records in {sync.batches_sent} batches "
        f"(last: {sync.last_result})"
    )
    return "\n".join(lines)


def _totals(delivered: list[dict], meters: list[SimulatedMeter]) -> dict:
    """Receiver's energy per device (shortest intervals) against the simulator's truth."""
    by_device: dict[str, dict] = {}
    for (name, _, curve), meter in zip(_METERS, meters, strict=True):
        mine = [i for i in delivered if i["device"] == name and _length(i) == INTERVAL]
        delivered_kwh = sum(i["quantity"] for i in mine)
        metered = 0.0
        if mine and meter.first_served:
            end = max(_epoch(i["end"]) for i in mine)
            metered = curve.energy_kwh(end) - curve.energy_kwh(meter.first_served[0])
        by_device[name] = {
            "intervals": len(mine),
            "delivered_kwh": round(delivered_kwh, 4),
            "metered_kwh": round(metered, 4),
            "co2_kg": round(sum(i["co2_kg"] for i in mine), 4),
        }
    delivered_total = sum(d["delivered_kwh"] for d in by_device.values())
    metered_total = sum(d["metered_kwh"] for d in by_device.values())
    return {
        "intervals_delivered": sum(d["intervals"] for d in by_device.values()),
        "energy_delivered_kwh": round(delivered_total, 4),
        "energy_metered_kwh": round(metered_total, 4),
        "difference_kwh": round(delivered_total - metered_total, 4),
        "resolution_kwh": 0.01 * len(meters),
        "co2_delivered_kg": round(sum(d["co2_kg"] for d in by_device.values()), 4),
        "devices": by_device,
    }


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def _length(interval: dict) -> float:
    return _epoch(interval["end"]) - _epoch(interval["start"])


async def demo(duration: float | None = None, as_json: bool = False, keep: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="edge-agent-demo-"))
    token = secrets.token_urlsafe(24)
    (workdir / "sync-token").write_text(token + "\n")
    receiver = Receiver(workdir / "receiver.db", token)
    receiver.start()
    profile = load_config  # the profile's points come through the real config path below
    server: MeterServer | None = None
    agent: Agent | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    out = sys.stderr if as_json else sys.stdout
    try:
        placeholder = MeterServer([])  # noqa: F841 - keeps the names readable below
        server = MeterServer([], port=0)
        config_path = workdir / "agent.yaml"
        # a first pass to learn the server's port: the meters need the profile's points
        config_path.write_text(_config_text(0, receiver.url, workdir).replace("port: 0", "port: 1"))
        profile_points = [
            p
            for p in profile(config_path).config.devices[0].points  # type: ignore[union-attr]
        ]
        meters = _meters(profile_points)
        server = MeterServer(meters)
        await server.start()
        config_path.write_text(_config_text(server.port, receiver.url, workdir))
        loaded = load_config(config_path, require_env=True)
        agent = Agent(loaded, token)
        await agent.start()
        print(f"demo in {workdir} (config: {config_path.name}); Ctrl-C to stop", file=out)
        print(f"meters on 127.0.0.1:{server.port}, receiver on {receiver.url}", file=out)
        started = time.monotonic()
        while not stop.is_set():
            left = TABLE_EVERY
            if duration is not None:
                left = min(left, duration - (time.monotonic() - started))
                if left <= 0:
                    break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=left)
            delivered = await _delivered(receiver.url, token)
            co2: dict[str, float] = {}
            for i in delivered:
                if _length(i) == INTERVAL:
                    co2[i["device"]] = co2.get(i["device"], 0.0) + i["co2_kg"]
            print(_table(agent, await agent.store.backlog(), co2) + "\n", file=out, flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if agent is not None:
            await agent.stop()
        if server is not None:
            await server.stop()
    totals = _totals(await _delivered(receiver.url, token), meters)
    receiver.stop()
    if as_json:
        print(json.dumps(totals))
    else:
        print(
            f"delivered {totals['intervals_delivered']} intervals of {int(INTERVAL)}s: "
            f"{totals['energy_delivered_kwh']:.3f} kWh; the meters advanced "
            f"{totals['energy_metered_kwh']:.3f} kWh (difference {totals['difference_kwh']:+.4f} kWh, "
            f"register resolution {totals['resolution_kwh']:.2f} kWh); "
            f"{totals['co2_delivered_kg']:.3f} kg CO2"
        )
    if keep:
        print(f"kept {workdir}", file=out)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0
