"""A whole plant on one box: the agent against a bare pymodbus loop, 200 to 5,000 meters.

    .venv/bin/python bench/scale.py                      # 200 and 1,000 meters, 20 s each
    .venv/bin/python bench/scale.py --sizes 200,500,1000,2000,3000,5000 --seconds 90

For each size: that many simulated Modbus TCP meters (20 float32 values each, one
server per meter, bench/sim_meters.py, spread over several processes so the
meters keep up), polled every second with one coalesced request per meter, first
by the bare pymodbus loop of bench/polling.py, then by `edge-agent run`. For
both it prints the share of one core, the values read against those expected,
the turns skipped (a gap of 1.5 s or more between two reads of one meter, as the
meters saw it) and, for the agent, RSS, and the bytes written to disk per value.
A window of 60 s or more holds a minute's boundary, where every meter's
interval closes: the turns skipped there are the ones issue 16 is about.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `bench.*` when run as `python bench/scale.py`

from bench.polling import BARE, VALUES, agent_config, rss_mib, stop, written  # noqa: E402
from bench.table import Figure  # noqa: E402
from bench.where_time_goes import cpu_seconds  # noqa: E402

PER_PROCESS = 1000  # simulated meters per process: one process serves ~1,000 reads/s calmly


class Meters:
    """The simulated meters' counters, summed over their processes."""

    def __init__(self, portfiles: list[Path]) -> None:
        self.portfiles = portfiles

    def _sum(self, suffix: str) -> int:
        total = 0
        for portfile in self.portfiles:
            with contextlib.suppress(FileNotFoundError, ValueError):
                total += int((portfile.parent / (portfile.name + suffix)).read_text())
        return total

    def served(self) -> int:
        return self._sum(".requests")

    def skipped(self) -> int:
        return self._sum(".skipped")


@contextlib.contextmanager
def start_meters(count: int, workdir: Path) -> Iterator[tuple[list[int], Meters]]:
    """`count` simulated meters in ceil(count / PER_PROCESS) processes, stopped on the way out."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = str(ROOT / "bench" / "sim_meters.py")
    shares = [min(PER_PROCESS, count - at) for at in range(0, count, PER_PROCESS)]
    portfiles = [workdir / f"ports{i}" for i in range(len(shares))]
    sims = [
        subprocess.Popen([sys.executable, script, str(n), str(pf)], env=env)
        for n, pf in zip(shares, portfiles, strict=True)
    ]
    try:
        for sim, portfile in zip(sims, portfiles, strict=True):
            while not portfile.exists() or not portfile.read_text():
                if sim.poll() is not None:
                    raise RuntimeError("the simulated meters did not start")
                time.sleep(0.2)
        ports = [int(p) for pf in portfiles for p in pf.read_text().split()]
        yield ports, Meters(portfiles)
    finally:
        for sim in sims:
            stop(sim)


def settle(meters: Meters, count: int, warmup: float, limit: float = 120.0) -> None:
    """Wait until every meter is being read each second, then `warmup` s more."""
    deadline = time.monotonic() + limit
    before = meters.served()
    while time.monotonic() < deadline:
        time.sleep(2.0)
        now = meters.served()
        if now - before >= 0.95 * 2 * count:
            break
        before = now
    time.sleep(warmup)


def measure(pid: int, meters: Meters, count: int, seconds: float, warmup: float) -> dict:
    settle(meters, count, warmup)
    time.sleep(0.6)  # the simulators write their counts every half second
    cpu0, w0, n0, s0 = cpu_seconds(pid), written(pid), meters.served(), meters.skipped()
    t0 = time.monotonic()
    peak_rss = 0.0
    while time.monotonic() - t0 < seconds:
        time.sleep(min(1.0, seconds - (time.monotonic() - t0)))
        peak_rss = max(peak_rss, rss_mib(pid))
    elapsed = time.monotonic() - t0
    cpu, out = cpu_seconds(pid) - cpu0, written(pid) - w0
    time.sleep(0.6)
    values = (meters.served() - n0) * VALUES
    return {
        "core": 100 * cpu / elapsed,
        "cpu_per_1000": 1000 * cpu / max(1, values),
        "values": values,
        "expected": count * VALUES * elapsed,
        "skipped": meters.skipped() - s0,
        "rss": rss_mib(pid),
        "peak": max(peak_rss, rss_mib(pid, "VmHWM")),
        "bytes_per_value": out / max(1, values),
    }


def run(count: int, seconds: float, warmup: float) -> dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="edge-agent-scale-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with start_meters(count, workdir) as (ports, meters):
            bare = subprocess.Popen([sys.executable, "-c", BARE, *map(str, ports)])
            try:
                b = measure(bare.pid, meters, count, seconds, warmup)
            finally:
                stop(bare)
            (workdir / "agent.yaml").write_text(agent_config(ports, workdir))
            log = workdir / "agent.log"
            with log.open("wb") as err:
                agent = subprocess.Popen(
                    [sys.executable, "-m", "agent", "run", "-c", str(workdir / "agent.yaml")],
                    env=env,
                    stderr=err,
                )
                try:
                    a = measure(agent.pid, meters, count, seconds, warmup)
                finally:
                    stop(agent)
            a["exit"] = agent.returncode  # issue 16: a clean stop at any size, no traceback
            a["tracebacks"] = log.read_text(errors="replace").count("Traceback")
    return {"agent": a, "bare": b}


def figures(sizes: list[int], seconds: float, warmup: float = 5.0) -> list[Figure]:
    out = []
    for n in sizes:
        r = run(n, seconds, warmup)
        a, b = r["agent"], r["bare"]
        out += [
            Figure(f"scale: share of one core, {n} meters", a["core"], "%", b["core"],
                   "bare pymodbus loop"),
            Figure(f"scale: values read of expected, {n} meters", 100 * a["values"] / a["expected"],
                   "%", 100 * b["values"] / b["expected"], "bare pymodbus loop"),
            Figure(f"scale: turns skipped, {n} meters, {seconds:g} s", a["skipped"], "turns",
                   b["skipped"], "bare pymodbus loop"),
            Figure(f"scale: RSS, {n} meters", a["rss"], "MiB", b["rss"], "bare pymodbus loop"),
            Figure(f"scale: disk written per value, {n} meters", a["bytes_per_value"], "bytes"),
        ]  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,1000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the meters and agents too
    print(
        f"{'meters':>6} {'who':>5} {'% core':>7} {'CPU s/1k v':>10} {'read/expected':>14}"
        f" {'skipped':>8} {'RSS MiB':>8} {'peak MiB':>9} {'bytes/value':>12}"
    )
    rss: dict[int, float] = {}
    for count in (int(m) for m in args.sizes.split(",")):
        r = run(count, args.seconds, args.warmup)
        rss[count] = r["agent"]["rss"]
        for who in ("bare", "agent"):
            m = r[who]
            print(
                f"{count:>6} {who:>5} {m['core']:>7.1f} {m['cpu_per_1000']:>10.4f}"
                f" {m['values'] / m['expected']:>14.3f} {m['skipped']:>8d} {m['rss']:>8.1f}"
                f" {m['peak']:>9.1f} {m['bytes_per_value']:>12.2f}",
                flush=True,
            )
        ratio = r["agent"]["cpu_per_1000"] / max(1e-9, r["bare"]["cpu_per_1000"])
        print(f"{count:>6} agent/bare CPU per value: {ratio:.2f}", flush=True)
        stopped = r["agent"]
        print(f"{count:>6} agent stopped: exit {stopped['exit']:g},"
              f" {stopped['tracebacks']:g} tracebacks", flush=True)  # fmt: skip
    sizes = sorted(rss)
    for low, high in itertools.pairwise(sizes):  # issue 16: under 10 KiB a meter
        per = 1024 * (rss[high] - rss[low]) / (high - low)
        print(f"agent RSS from {low} to {high} meters: {per:.1f} KiB a further meter")


if __name__ == "__main__":
    main()
