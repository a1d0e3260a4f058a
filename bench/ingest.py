"""Buffer ingest: the agent's store against raw sqlite3 `executemany`, same schema, same run.

    .venv/bin/python bench/ingest.py --devices 200 --boundaries 200

Two workloads, each written both ways into a fresh file with the same schema
and the same pragmas (WAL, synchronous=FULL):

- intervals: at each interval boundary every device closes one interval and
  saves its counter state, one commit per device from the event loop, as the
  daemon does (the store groups them); the baseline writes the same rows with
  one `executemany` per table in one transaction per boundary.
- raw samples: every device's poll (20 values) committed the same way.

It prints rows/s for both and the ratio (aim: 0.5 or better).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.table import Figure, render  # noqa: E402
from buffer import AsyncStore  # noqa: E402
from buffer.schema import SCHEMA  # noqa: E402
from domain.records import Commit, IntervalRow  # noqa: E402

POINTS = 20
T0 = 1_795_000_000.0


def body(device: str, start: float) -> dict:
    """An interval as the pipeline stores it (the fields of the batch schema)."""
    return {
        "device": device,
        "carrier": "electricity",
        "start": "2026-11-26T08:00:00+08:00",
        "end": "2026-11-26T08:01:00+08:00",
        "quantity": 7.0312,
        "unit": "kWh",
        "kwh": 7.0312,
        "tce_kg": 0.8641,
        "co2_kg": 3.5837,
        "scope": 2,
        "factor": {
            "id": "cn-mee-2022/grid/sichuan",
            "value": 0.5097,
            "unit": "kgCO2/kWh",
            "source": "MEE 2024 notice, 2022 provincial grid factors",
            "year": 2022,
        },
        "coverage": 1.0,
        "quality": "good",
        "start_ts": start,
    }


def boundary(devices: int, k: int) -> list[Commit]:
    start = T0 + 60.0 * k
    return [
        Commit(
            intervals=[IntervalRow(f"m{d:03d}", start, 60.0, body(f"m{d:03d}", start))],
            counters={f"m{d:03d}/import_kwh": {"last": 1234.5 + k, "ts": start + 60.0}},
        )
        for d in range(devices)
    ]


def poll(devices: int, k: int) -> list[Commit]:
    ts = T0 + k
    return [
        Commit(samples=[(f"m{d:03d}", f"p{p}", ts, 230.0 + p, "V", "good") for p in range(POINTS)])
        for d in range(devices)
    ]


async def _agent(path: Path, turns: list[list[Commit]]) -> float:
    store = AsyncStore(path, max_size=2 * 10**9)
    try:
        began = time.perf_counter()
        for works in turns:
            await asyncio.gather(*(store.commit(w) for w in works))
        return time.perf_counter() - began
    finally:
        store.close()


def _raw(path: Path, turns: list[list[Commit]]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(SCHEMA)
    try:
        began = time.perf_counter()
        for works in turns:
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO intervals (device, start, length, body) VALUES (?, ?, ?, ?)",
                [
                    (r.device, r.start, r.length, json.dumps(r.body, separators=(",", ":")))
                    for w in works
                    for r in w.intervals
                ],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO counters (key, state, updated) VALUES (?, ?, ?)",
                [(key, json.dumps(s), time.time()) for w in works for key, s in w.counters.items()],
            )
            conn.executemany(
                "INSERT INTO samples (device, point, ts, value, unit, quality)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [s for w in works for s in w.samples],
            )
            conn.execute("COMMIT")
        return time.perf_counter() - began
    finally:
        conn.close()


def figures(devices: int = 200, boundaries: int = 100, polls: int = 100) -> list[Figure]:
    """Rows/s of the agent's store and of raw sqlite3, for intervals and for raw samples."""
    out = []
    workloads = (
        ("intervals", [boundary(devices, k) for k in range(boundaries)], devices * boundaries),
        ("raw samples", [poll(devices, k) for k in range(polls)], devices * polls * POINTS),
    )
    for name, turns, rows in workloads:
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as d:
            raw = _raw(Path(d) / "raw.db", turns)
            agent = asyncio.run(_agent(Path(d) / "agent.db", turns))
        out.append(
            Figure(
                f"buffer ingest, {name}, {devices} devices",
                rows / agent,
                "rows/s",
                rows / raw,
                "raw sqlite3 executemany",
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--boundaries", type=int, default=100, help="interval boundaries")
    parser.add_argument("--polls", type=int, default=100, help="polls of raw samples")
    args = parser.parse_args(argv)
    print(render(figures(args.devices, args.boundaries, args.polls)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
