"""Soak: the agent polling 200 meters every second for an hour, delivering to the reference
receiver, sampled every minute; does anything grow without bound?

    .venv/bin/python bench/soak.py                       # 200 meters, 60 minutes
    .venv/bin/python bench/soak.py --meters 200 --minutes 480 --csv soak.csv

Every minute it records the agent's RSS, open file descriptors, asyncio tasks (its
/metrics), buffer file and WAL size, and values read. After the warm-up (the first
`--warmup` minutes: caches, the first intervals and batches, SQLite's page cache) it
fits a least-squares line to each and prints the slope per hour beside the goal: RSS
under 1 MiB an hour, the rest flat. The buffer is kept small by delivery (every
record is acknowledged within a minute) and by pruning: its size levels once the
first day's pruning starts, so within an hour a slow rise of the file is the
acknowledged records of the 7-day keep time, reported as such. Every process it
starts, it stops.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.polling import agent_config, rss_mib, start_meters, stop  # noqa: E402
from bench.table import Figure  # noqa: E402

SERIES = ("rss_mib", "fds", "tasks", "buffer_mib", "wal_mib", "values")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def receiver(workdir: Path) -> Iterator[str]:
    """The reference receiver on a free port: the batch URL, stopped on the way out."""
    port = free_port()
    token = workdir / "token"
    token.write_text("soak")
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "receiver", "--port", str(port),
         "--db", str(workdir / "central.db"), "--token-file", str(token)],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/api/v1/batches"
    finally:
        stop(process)


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else float("nan")


def sample(pid: int, workdir: Path, metrics_port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    values = sum(
        float(v) for v in re.findall(r"^edge_agent_values_read_total\S* (\S+)$", text, re.M)
    )
    size = lambda p: p.stat().st_size / 2**20 if p.exists() else 0.0  # noqa: E731
    return {
        "rss_mib": rss_mib(pid),
        "fds": float(len(os.listdir(f"/proc/{pid}/fd"))),
        "tasks": metric(text, "edge_agent_asyncio_tasks"),
        "buffer_mib": size(workdir / "buffer.db"),
        "wal_mib": size(workdir / "buffer.db-wal"),
        "values": values,
    }


def slope_per_hour(minutes: list[float], ys: list[float]) -> float:
    n = len(minutes)
    if n < 2:
        return 0.0
    mx, my = sum(minutes) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in minutes)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(minutes, ys, strict=True)) / var


def run(meters: int, minutes: int, warmup: int, csv: Path | None) -> dict[str, float]:
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="edge-agent-soak-") as tmp:
        workdir = Path(tmp)
        metrics_port = free_port()
        with start_meters(meters, workdir) as ports, receiver(workdir) as url:
            text = agent_config(ports, workdir).replace(
                "sync: {url: 'http://127.0.0.1:9/api/v1/batches', every: 60s}",
                f"sync: {{url: '{url}', every: 30s, token_file: {workdir / 'token'}}}\n"
                f"http: {{listen: '127.0.0.1:{metrics_port}'}}",
            )
            (workdir / "agent.yaml").write_text(text)
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            agent = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "-c", str(workdir / "agent.yaml")],
                env=env,
                stderr=subprocess.DEVNULL,
            )
            try:
                started = time.monotonic()
                for minute in range(minutes + 1):
                    time.sleep(max(0.0, started + 60 * minute + 5 - time.monotonic()))
                    row = {"minute": float(minute), **sample(agent.pid, workdir, metrics_port)}
                    rows.append(row)
                    print(" ".join(f"{k}={v:.2f}" for k, v in row.items()), flush=True)
            finally:
                stop(agent)
    if csv is not None:
        csv.write_text(
            ",".join(["minute", *SERIES]) + "\n"
            + "".join(",".join(f"{r[k]:.3f}" for k in ["minute", *SERIES]) + "\n" for r in rows)
        )  # fmt: skip
    settled = [r for r in rows if r["minute"] >= warmup]
    xs = [r["minute"] for r in settled]
    result = {name: slope_per_hour(xs, [r[name] for r in settled]) for name in SERIES}
    result["rss_end"] = rows[-1]["rss_mib"]
    result["values_per_s"] = (rows[-1]["values"] - rows[0]["values"]) / (60 * max(1, minutes))
    return result


def figures(meters: int = 200, minutes: int = 60, warmup: int = 10) -> list[Figure]:
    r = run(meters, minutes, warmup, None)
    return [
        Figure(f"soak {minutes} min, {meters} meters: RSS slope", r["rss_mib"], "MiB/h"),
        Figure(f"soak {minutes} min, {meters} meters: RSS at the end", r["rss_end"], "MiB"),
        Figure(f"soak {minutes} min, {meters} meters: open fds slope", r["fds"], "/h"),
        Figure(f"soak {minutes} min, {meters} meters: asyncio tasks slope", r["tasks"], "/h"),
        Figure(f"soak {minutes} min, {meters} meters: WAL slope", r["wal_mib"], "MiB/h"),
        Figure(f"soak {minutes} min, {meters} meters: buffer file slope", r["buffer_mib"], "MiB/h"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10, help="minutes left out of the fit")
    parser.add_argument("--csv", type=Path, help="write every sample here")
    args = parser.parse_args()
    r = run(args.meters, args.minutes, args.warmup, args.csv)
    print(f"\nafter {args.warmup} min of warm-up, slopes per hour:")
    goals = {"rss_mib": "< 1 MiB/h", "fds": "0", "tasks": "0", "wal_mib": "bounded",
             "buffer_mib": "acknowledged records kept 7 days", "values": "-"}  # fmt: skip
    for name in SERIES[:-1]:
        print(f"  {name:>11}: {r[name]:+9.3f} /h   (goal: {goals[name]})")
    print(f"  RSS at the end {r['rss_end']:.1f} MiB, {r['values_per_s']:.0f} values/s read")


if __name__ == "__main__":
    main()
