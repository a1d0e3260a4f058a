"""Backlog drain: the agent's uploader against raw httpx posting the same gzip payloads.

    .venv/bin/python bench/drain.py --intervals 288000,1000000

For each size N: a buffer holding N 1-minute intervals (200 devices; 288,000
is a day of them) is drained to the reference receiver (`edge-agent
receiver`, its own process, on 127.0.0.1) by the agent's uploader, with the
default batch size. The baseline posts the very same batches (same gzip
bytes, same keys, precomputed, one after the other) with a bare httpx client
to a second receiver with an empty database. It prints intervals/s for both
and the ratio (aim: 0.7 or better), and how long the agent took for N.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.polling import stop  # noqa: E402
from bench.table import Figure, render  # noqa: E402
from buffer import AsyncStore, Store  # noqa: E402
from cloud_sync.base import Destination  # noqa: E402
from cloud_sync.http.uploader import Uploader  # noqa: E402
from domain.batch import SCHEMA_VERSION  # noqa: E402
from domain.records import Commit, IntervalRow  # noqa: E402

DEVICES = 200
MAX_BATCH = 5000  # sync.max_batch's default
TOKEN = "bench-token"
GATEWAY = {
    "id": "bench-gw1",
    "enterprise_id": "91510100MA61234567",
    "region_code": "510100",
    "industry_code": "C3011",
    "timezone": "Asia/Shanghai",
}
FACTOR = {
    "id": "cn-mee-2022/grid/sichuan",
    "value": 0.5097,
    "unit": "kgCO2/kWh",
    "source": "MEE 2024 notice, 2022 provincial grid factors",
    "year": 2022,
}
T0 = datetime(2026, 11, 25, tzinfo=UTC)


def fill(path: Path, intervals: int) -> None:
    """N 1-minute intervals, the devices' minutes interleaved as the daemon writes them."""
    store = Store(path)
    chunk: list[IntervalRow] = []
    for n in range(intervals):
        minute, device = divmod(n, DEVICES)
        start = T0 + timedelta(minutes=minute)
        name = f"meter{device:03d}"
        kwh = round(3.0 + (n % 97) / 10, 4)
        body = {
            "device": name,
            "carrier": "electricity",
            "start": start.isoformat(),
            "end": (start + timedelta(minutes=1)).isoformat(),
            "quantity": kwh,
            "unit": "kWh",
            "kwh": kwh,
            "tce_kg": round(kwh * 0.1229, 4),
            "co2_kg": round(kwh * 0.5097, 4),
            "scope": 2,
            "factor": FACTOR,
            "coverage": 1.0,
            "quality": "good",
        }
        chunk.append(IntervalRow(name, start.timestamp(), 60.0, body))
        if len(chunk) == 20_000:
            store.commit(Commit(intervals=chunk))
            chunk = []
    store.commit(Commit(intervals=chunk))
    store.close()


def copy(work: Path, source: str, target: str) -> None:
    """A buffer file and its WAL copied under another name (any old copy removed first)."""
    for suffix in ("", "-wal"):
        (work / f"{target}{suffix}").unlink(missing_ok=True)
        if (work / f"{source}{suffix}").exists():
            shutil.copy(work / f"{source}{suffix}", work / f"{target}{suffix}")


@contextmanager
def receiver(workdir: Path, name: str) -> Iterator[str]:
    """`edge-agent receiver` in its own process; yields its batch URL; stops it by PID."""
    (workdir / "token").write_text(TOKEN)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "receiver", "--port", "0",
         "--db", str(workdir / f"{name}.db"), "--token-file", str(workdir / "token")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"receiver did not start: {line!r}")
        yield line.split("listening on", 1)[1].strip() + "/api/v1/batches"
    finally:
        stop(proc)


def _uploader(store: AsyncStore, url: str, client: httpx.AsyncClient | None = None) -> Uploader:
    return Uploader(
        store, url=url, token=TOKEN, gateway=GATEWAY, factor_set="cn-mee-2022",
        max_batch=MAX_BATCH, timeout=120.0, client=client,
    )  # fmt: skip


async def payloads(path: Path) -> list[tuple[str, bytes]]:
    """The batches the agent will send from this buffer, in order, without sending them."""
    store = AsyncStore(path)
    up = _uploader(store, "http://127.0.0.1:9/unused")
    header = {"schema_version": SCHEMA_VERSION, "gateway": GATEWAY, "factor_set": "cn-mee-2022"}
    out = []
    while (batch := await up.outbox.pending_batch(MAX_BATCH, header)) is not None:
        out.append((f"{GATEWAY['id']}:{batch.seq}", up.payload(batch)))
        await up.outbox.finish_batch(batch.seq, "acked")
    await up.close()
    store.close()
    return out


async def raw_post(url: str, batches: list[tuple[str, bytes]]) -> float:
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Authorization": f"Bearer {TOKEN}",
    }
    async with httpx.AsyncClient(timeout=120.0) as client:
        began = time.perf_counter()
        for key, body in batches:
            reply = await client.post(
                url, content=body, headers={**headers, "Idempotency-Key": key}
            )
            reply.raise_for_status()
        return time.perf_counter() - began


async def agent_drain(path: Path, url: str) -> tuple[float, int]:
    return await timed_drain(path, lambda store: _uploader(store, url))


async def timed_drain(path: Path, make: Callable[[AsyncStore], Destination]) -> tuple[float, int]:
    """Seconds for one destination (`make`, given the buffer) to send the whole backlog, and
    the records it sent; a backlog left over is an error, not a figure. The HTTP and MQTT
    drains share it."""
    store = AsyncStore(path)
    up = make(store)
    began = time.perf_counter()
    sent = await up.deliver()
    took = time.perf_counter() - began
    await up.close()
    backlog = await store.backlog()
    store.close()
    if backlog["intervals"]:
        raise RuntimeError(f"drain stopped with {backlog['intervals']} left: {up.status}")
    return took, sent


def figures(sizes: tuple[int, ...] = (288_000, 1_000_000)) -> list[Figure]:
    """Intervals/s drained by the agent and by raw httpx, per backlog size."""
    out = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-drain-") as d:
            work = Path(d)
            fill(work / "buffer.db", n)
            copy(work, "buffer.db", "copy.db")  # the same buffer twice: one to precompute
            batches = asyncio.run(payloads(work / "copy.db"))
            with receiver(work, "raw") as url:
                raw = asyncio.run(raw_post(url, batches))
            with receiver(work, "agent") as url:
                took, sent = asyncio.run(agent_drain(work / "buffer.db", url))
        if sent != n:
            raise RuntimeError(f"sent {sent} of {n}")
        out.append(
            Figure(
                f"backlog drain, {n:,} 1-min intervals ({took:.1f} s)",
                n / took,
                "intervals/s",
                n / raw,
                "raw httpx, same gzip payloads",
            )
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--intervals", default="288000,1000000", help="backlog sizes, comma-separated"
    )
    args = parser.parse_args(argv)
    sizes = tuple(int(x) for x in args.intervals.split(","))
    print(render(figures(sizes)))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
