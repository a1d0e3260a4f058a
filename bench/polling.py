"""Polling cost: the agent against a bare pymodbus loop reading the same registers.

    .venv/bin/python bench/polling.py --meters 10,100,200 --seconds 60

For each size: N simulated meters (20 float32 values each, one server per
meter, in their own process) polled every second, first by a bare pymodbus
client loop, then by `edge-agent run` with the default buffer settings. It
prints CPU seconds per 1,000 values for both and their ratio, the agent's RSS
and the bytes it wrote to disk per value (from /proc/PID/io). Every process it
starts, it stops.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `bench.*` when run as `python bench/polling.py`

from bench.table import Figure  # noqa: E402
from bench.where_time_goes import cpu_seconds  # noqa: E402

VALUES = 20


def written(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def served(portfile: Path) -> int:
    time.sleep(0.6)  # the simulator writes the count every half second
    return int((portfile.parent / (portfile.name + ".requests")).read_text())


def measure(pid: int, warmup: float, seconds: float, portfile: Path) -> dict[str, float]:
    time.sleep(warmup)
    cpu0, w0, n0 = cpu_seconds(pid), written(pid), served(portfile)
    time.sleep(seconds)
    return {
        "cpu": cpu_seconds(pid) - cpu0,
        "written": written(pid) - w0,
        "rss": rss_mib(pid),
        "peak": rss_mib(pid, "VmHWM"),
        "values": (served(portfile) - n0) * VALUES,
    }


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


BARE = """
import asyncio, struct, sys
from pymodbus.client import AsyncModbusTcpClient
async def poll(port):
    client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0)
    await client.connect()
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        reply = await client.read_input_registers(0, count=40, device_id=1)
        raw = struct.pack(">40H", *reply.registers)
        struct.unpack(">20f", raw)
        next_at += 1.0
        await asyncio.sleep(max(0.0, next_at - loop.time()))
async def main():
    ports = [int(p) for p in sys.argv[1:]]
    await asyncio.gather(*(poll(p) for p in ports))
asyncio.run(main())
"""


@contextlib.contextmanager
def start_meters(count: int, workdir: Path) -> Iterator[list[int]]:
    """`count` simulated meters in their own process, stopped on the way out."""
    portfile = workdir / "ports"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = str(ROOT / "bench" / "sim_meters.py")
    sim = subprocess.Popen([sys.executable, script, str(count), str(portfile)], env=env)
    try:
        while not portfile.exists() or not portfile.read_text():
            if sim.poll() is not None:
                raise RuntimeError("the simulated meters did not start")
            time.sleep(0.1)
        yield [int(p) for p in portfile.read_text().split()]
    finally:
        stop(sim)


def agent_config(ports: list[int], workdir: Path, poll: str = "1s") -> str:
    points = "".join(
        f"      - {{name: {name}, address: {2 * i}, function: input, type: float32"
        + (", unit: kWh, kind: counter}" if i == 0 else ", unit: kW}" if i == 1 else "}")
        + "\n"
        for i, name in enumerate(["import_kwh", "power_kw"] + [f"value_{i}" for i in range(18)])
    )
    devices = "".join(
        f"  - name: m{n}\n    modbus_tcp: {{host: 127.0.0.1, port: {port}}}\n    poll: {poll}\n"
        f"    points:\n{points}    energy: {{carrier: electricity, counter: import_kwh}}\n"
        for n, port in enumerate(ports)
    )
    return (
        "gateway: {id: bench, enterprise_id: 91510100MA6123456W, region_code: '510100',"
        " industry_code: C3011}\n"
        f"buffer: {{path: {workdir / 'buffer.db'}}}\n"
        "sync: {url: 'http://127.0.0.1:9/api/v1/batches', every: 60s}\n"
        f"devices:\n{devices}"
    )


def run(meters: int, seconds: float, warmup: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="edge-agent-bench-") as tmp:
        workdir = Path(tmp)
        portfile = workdir / "ports"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with start_meters(meters, workdir) as ports:
            bare = subprocess.Popen([sys.executable, "-c", BARE, *map(str, ports)])
            try:
                b = measure(bare.pid, warmup, seconds, portfile)
            finally:
                stop(bare)
            (workdir / "agent.yaml").write_text(agent_config(ports, workdir))
            agent = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "-c", str(workdir / "agent.yaml")],
                env=env,
                stderr=subprocess.DEVNULL,
            )
            try:
                a = measure(agent.pid, warmup, seconds, portfile)
            finally:
                stop(agent)
    return {
        "meters": meters,
        "agent_values_per_s": a["values"] / seconds,
        "bare_values_per_s": b["values"] / seconds,
        "agent_cpu_per_1000": 1000 * a["cpu"] / max(1, a["values"]),
        "bare_cpu_per_1000": 1000 * b["cpu"] / max(1, b["values"]),
        "core_share": a["cpu"] / seconds,
        "rss": a["rss"],
        "peak": a["peak"],
        "bytes_per_value": a["written"] / max(1, a["values"]),
    }


def figures(sizes: list[int], seconds: float, warmup: float) -> list[Figure]:
    out = []
    for n in sizes:
        r = run(n, seconds, warmup)
        out += [
            Figure(f"polling CPU, {n} meters", r["agent_cpu_per_1000"], "CPU s/1k values",
                   r["bare_cpu_per_1000"], "bare pymodbus loop"),
            Figure(f"values polled per second, {n} meters", r["agent_values_per_s"], "values/s",
                   r["bare_values_per_s"], "bare pymodbus loop"),
            Figure(f"share of one core, {n} meters", 100 * r["core_share"], "%"),
            Figure(f"RSS steady, {n} meters", r["rss"], "MiB"),
            Figure(f"RSS peak, {n} meters", r["peak"], "MiB"),
            Figure(f"disk written per value, {n} meters", r["bytes_per_value"], "bytes"),
        ]  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", default="10,100,200")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    print(
        f"{'meters':>6} {'values/s':>9} {'bare v/s':>9} {'agent CPU s/1k values':>22}"
        f" {'bare CPU s/1k':>14} {'ratio':>6} {'% of a core':>11} {'RSS MiB':>8}"
        f" {'peak MiB':>9} {'bytes/value':>12}"
    )
    for meters in (int(m) for m in args.meters.split(",")):
        r = run(meters, args.seconds, args.warmup)
        ratio = r["agent_cpu_per_1000"] / r["bare_cpu_per_1000"] if r["bare_cpu_per_1000"] else 0
        print(
            f"{r['meters']:>6} {r['agent_values_per_s']:>9.0f} {r['bare_values_per_s']:>9.0f}"
            f" {r['agent_cpu_per_1000']:>22.4f} {r['bare_cpu_per_1000']:>14.4f}"
            f" {ratio:>6.2f} {100 * r['core_share']:>10.1f}% {r['rss']:>8.1f} {r['peak']:>9.1f}"
            f" {r['bytes_per_value']:>12.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
