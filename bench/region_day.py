"""A region's day: gateways' batches through one broker into two receivers on PostgreSQL.

    .venv/bin/python bench/region_day.py                      # 500 x 20 x 24 h: 14.4 M intervals
    .venv/bin/python bench/region_day.py --gateways 5 --devices 4 --hours 2 --no-profile

Light senders, not agents: each batch is the agent's own MQTT message
(cloud_sync/mqtt/payloads.py `batch_message`, which is the HTTP document of
cloud_sync/http/uploader.py `document`, with the `key` user property), built
from interval records as the agent's buffer keeps them (JSON text with the
fields of domain/batch.py's Interval): one batch per gateway per hour, of
`--devices` devices x 60 one-minute intervals, published at QoS 1 and waited
for (PUBACK). They go through a Debian `mosquitto` started here (its own
config, persistence off) into two `edge-agent receiver --db postgresql://...
--mqtt ... --share receivers` processes on one PostgreSQL started here (initdb
in a temporary directory, as tests/fixtures/postgres.py does; fsync off).
Everything listens on 127.0.0.1 and is stopped by its PID at the end.

It reports the time from the first publish to the last batch committed, the
intervals per second, the CPU seconds of each process (from /proc/<pid>/stat:
senders, broker, each receiver, PostgreSQL's postmaster and backends), a
py-spy sample of one receiver (where its time goes), and the check that
nothing was lost or doubled: per gateway, the count of intervals and the sum
of their kWh in PostgreSQL against what was sent (counts exact, sums to
rounding). A mismatch is an error (exit 1), not a figure.
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from paho.mqtt.client import CallbackAPIVersion, Client, MQTTv5  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402

from bench.mqtt_drain import mosquitto  # noqa: E402
from bench.postgres_split import split  # noqa: E402
from bench.region_batches import gateway_id, message, message_of, records  # noqa: E402
from bench.table import Figure  # noqa: E402
from bench.where_time_goes import Sample, cpu_seconds, postgres_cpu, profile, summarize  # noqa: E402
from cloud_sync.mqtt.link import properties  # noqa: E402
from tests.fixtures.postgres import MISSING, PostgresServer, bindir, receiver_process, start  # noqa: E402

# A day of a region is ~10 GB of rows and indexes: PostgreSQL's defaults (128 MB of shared
# buffers, 1 GB of WAL between checkpoints) are for a laptop; these are still modest for a
# server. Beside them, the test fixture's fsync and synchronous_commit off.
SERVER = {"shared_buffers": "2GB", "max_wal_size": "8GB", "checkpoint_timeout": "30min"}


@dataclass
class Sent:
    """What one sender published: per gateway, intervals and Wh; when it began and ended."""

    intervals: dict[str, int]
    watt_hours: dict[str, int]
    batches: int
    first: float  # time.time() of the first publish
    last: float  # time.time() of the last PUBACK
    cpu: float  # the sender process's CPU seconds


def send(port: int, gateways: list[int], devices: int, hours: int, inflight: int) -> Sent:
    """Publish each gateway's hours, an hour of every gateway at a time (as a region's
    gateways send), at QoS 1; return once every message has its PUBACK."""
    client = Client(CallbackAPIVersion.VERSION2, client_id=f"region-sender-{os.getpid()}",
                    protocol=MQTTv5)  # fmt: skip
    client.max_inflight_messages_set(inflight)
    window = threading.Semaphore(inflight)  # messages published and not yet acknowledged
    client.on_publish = lambda *_: window.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    intervals: Counter[str] = Counter()
    energy: Counter[str] = Counter()
    published = 0
    first = 0.0
    for hour in range(hours):
        for number in gateways:
            texts, wh = records(number, devices, hour)
            made = message_of(number, hour, texts)
            window.acquire()
            client.publish(made.topic, made.payload, qos=1,
                           properties=properties(made, PacketTypes.PUBLISH))  # fmt: skip
            first = first or time.time()
            published += 1
            intervals[gateway_id(number)] += len(texts)
            energy[gateway_id(number)] += wh
    for _ in range(inflight):  # every PUBACK in
        window.acquire()
    last = time.time()
    client.disconnect()
    client.loop_stop()
    usage = os.times()
    return Sent(dict(intervals), dict(energy), published, first, last,
                usage.user + usage.system)  # fmt: skip


@contextmanager
def broker(workdir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """mosquitto on a free loopback port, logging subscriptions (so we know when the
    receivers are in); yields its port, process and log; stopped by its PID."""
    log = workdir / "mosquitto.log"
    extra = (f"log_dest file {log}", "log_type subscribe", "log_type error", "log_type warning")
    with mosquitto(workdir, extra) as (port, proc):
        yield port, proc, log


def wait_for_subscriptions(log: Path, client_ids: list[str], timeout: float = 60) -> None:
    """Until the broker has logged each receiver's shared subscription."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace") if log.exists() else ""
        if all(f"{c} 1 $share/receivers/" in text for c in client_ids):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the receivers did not subscribe; broker log:\n{text[-2000:]}")
        time.sleep(0.1)


def stored(url: str) -> tuple[int, int]:
    """Batches stored and the intervals they added (cheap: the batches table is small)."""
    with psycopg.connect(url) as db:
        row = db.execute("SELECT count(*), coalesce(sum(intervals), 0) FROM batches").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def check(url: str, sent: list[Sent]) -> tuple[int, int, float]:
    """Per gateway, intervals and kWh stored against sent; the totals; raises on a mismatch."""
    intervals: Counter[str] = Counter()
    energy: Counter[str] = Counter()
    batches = 0
    for s in sent:
        intervals.update(s.intervals)
        energy.update(s.watt_hours)
        batches += s.batches
    with psycopg.connect(url) as db:
        found = {
            gateway: (int(count), float(kwh))
            for gateway, count, kwh in db.execute(
                "SELECT gateway, count(*), sum(kwh) FROM intervals GROUP BY gateway"
            )
        }
        row = db.execute(
            "SELECT count(*), count(DISTINCT key), coalesce(sum(intervals), 0),"
            " coalesce(sum(duplicate_records), 0) FROM batches"
        ).fetchone()
    assert row is not None
    problems = []
    if row[0] != batches or row[1] != batches:
        problems.append(f"{row[0]} batches stored ({row[1]} keys), {batches} sent")
    if row[2] != sum(intervals.values()) or row[3] != 0:
        problems.append(f"batches say {row[2]} intervals stored and {row[3]} duplicates")
    for gateway in sorted(set(intervals) | set(found)):
        count, kwh = found.get(gateway, (0, 0.0))
        want = energy[gateway] / 1000
        if count != intervals[gateway]:
            problems.append(f"{gateway}: {count} intervals stored, {intervals[gateway]} sent")
        elif abs(kwh - want) > 1e-9 * max(1.0, want):
            problems.append(f"{gateway}: {kwh!r} kWh stored, {want!r} sent")
    if problems:
        raise RuntimeError(f"lost or doubled: {len(problems)} problems, first: {problems[:5]}")
    return batches, sum(intervals.values()), sum(energy.values()) / 1000


def run(gateways: int, devices: int, hours: int, senders: int, spy: bool) -> dict[str, Any]:
    """The whole run; its figures as plain data (printed by `main`, tabled by `figures`)."""
    binaries = bindir()
    if binaries is None:
        raise SystemExit(f"region day: {MISSING}")
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    expected = gateways * hours
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-region-")))
        server: PostgresServer = start(binaries, SERVER)
        stack.callback(server.stop)
        os.environ["PGPASSFILE"] = str(server.passfile)
        url = server.create_database()
        port, mosquitto, log = stack.enter_context(broker(work))
        token = work / "token"
        token.write_text("bench-token")
        ids = [f"region-receiver-{n}" for n in range(2)]
        receivers = [
            stack.enter_context(receiver_process(
                url, token, "--mqtt", f"mqtt://127.0.0.1:{port}", "--share", "receivers",
                "--mqtt-client-id", client_id))
            for client_id in ids
        ]  # fmt: skip
        wait_for_subscriptions(log, ids)
        pids = {f"receiver {n + 1}": r.process.pid for n, r in enumerate(receivers)}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        before["broker"] = cpu_seconds(mosquitto.pid)
        before["postgres"] = postgres_cpu(server.process.pid)
        spy_out = work / "receiver-1.txt"
        numbers = list(range(gateways))
        parts = [numbers[n::senders] for n in range(senders)]
        began = time.time()
        with multiprocessing.get_context("fork").Pool(senders) as pool:
            pending = pool.starmap_async(
                send, [(port, part, devices, hours, 200) for part in parts if part]
            )
            spying = profile(pids["receiver 1"], 60, spy_out) if spy else None
            done_at = watch(url, expected, pending)
            sent: list[Sent] = pending.get()
        after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        after["broker"] = cpu_seconds(mosquitto.pid)
        after["postgres"] = postgres_cpu(server.process.pid)
        if spying is not None and spying.poll() is None:
            spying.send_signal(signal.SIGINT)  # py-spy writes what it has and exits
        if spying is not None:
            spying.wait(60)
        load_after = Path("/proc/loadavg").read_text().split()[:3]
        batches, total, kwh = check(url, sent)
        first = min(s.first for s in sent)
        cpu = {"senders": sum(s.cpu for s in sent)} | {
            name: after[name] - before[name] for name in after
        }
        sample = summarize(spy_out, "MqttIngest._on_message")
        # after the run, so as not to disturb it: PostgreSQL's share split, on 2% of the day
        some = [(g, h) for h in range(hours) for g in range(gateways)][::50]
        inside = split(server.create_database(), [gzip.decompress(message(g, devices, h).payload)
                                                  for g, h in some])  # fmt: skip
    seconds = done_at - first
    return {
        "gateways": gateways, "devices": devices, "hours": hours, "batches": batches,
        "intervals": total, "kwh": kwh, "seconds": seconds, "rate": total / seconds,
        "published_in": max(s.last for s in sent) - first, "start_to_first": first - began,
        "cpu": cpu, "load": (load_before, load_after), "profile": sample, "postgres": inside,
    }  # fmt: skip


def watch(url: str, expected: int, pending: Any) -> float:
    """time.time() when the last of `expected` batches was seen committed; fails when
    nothing moves for two minutes after the senders are done."""
    last_change, last_seen = time.monotonic(), (0, 0)
    report = time.monotonic()
    while True:
        seen = stored(url)
        now = time.monotonic()
        if seen[0] >= expected:
            return time.time()
        if seen != last_seen:
            last_change, last_seen = now, seen
        if pending.ready() and now - last_change > 120:
            pending.get()  # a sender's error, if that is why
            raise RuntimeError(f"stuck at {seen[0]} of {expected} batches")
        if now - report >= 30:
            print(f"  ... {seen[0]:,} of {expected:,} batches, {seen[1]:,} intervals",
                  flush=True)  # fmt: skip
            report = now
        time.sleep(0.25)


def describe(result: dict[str, Any]) -> str:
    lines = [
        f"{result['gateways']} gateways x {result['devices']} devices x {result['hours']} h:"
        f" {result['batches']:,} batches, {result['intervals']:,} intervals,"
        f" {result['kwh']:,.3f} kWh, each stored once (per gateway count and kWh checked)",
        f"first publish to last commit: {result['seconds']:.1f} s,"
        f" {result['rate']:,.0f} intervals/s (all published and acknowledged by the broker"
        f" after {result['published_in']:.1f} s)",
        f"load average before {' '.join(result['load'][0])}, after {' '.join(result['load'][1])}",
        "CPU seconds during the run: "
        + ", ".join(f"{name} {sec:.1f}" for name, sec in result["cpu"].items())
        + f" (sum {sum(result['cpu'].values()):.1f}, wall {result['seconds']:.1f})",
    ]
    lines.append(
        "PostgreSQL's backend alone, one connection, 2% of the day's batches again,"
        " microseconds per interval:"
    )
    lines += [f"  {us:7.1f}  {name}" for name, us in result["postgres"].items()]
    sample: Sample | None = result["profile"]
    if sample is not None:
        lines.append(f"receiver 1, MQTT ingest thread, py-spy {sample.samples} samples;"
                     " on the stack:")  # fmt: skip
        lines += [f"  {share:6.1%}  {name}" for name, share in sample.inclusive]
        lines.append("  on top (self):")
        lines += [f"  {share:6.1%}  {name}" for name, share in sample.leaves]
    return "\n".join(lines)


def figures(gateways: int = 500, devices: int = 20, hours: int = 24) -> list[Figure]:
    """For bench/run.py: the ingest rate and the CPU per interval, beside the goal."""
    if bindir() is None or not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
        print("region day: skipped: needs PostgreSQL and mosquitto", file=sys.stderr)
        return []
    result = run(gateways, devices, hours, senders=2, spy=False)
    print(describe(result), flush=True)
    total = result["intervals"]
    goal = 14_400_000 / 600  # the goal: the whole day of 500 x 20 meters in 10 minutes
    label = f"{gateways} gateways x {devices} devices x {hours} h, {total:,} intervals"
    return [
        Figure(f"region's day via MQTT, 2 receivers, PostgreSQL ({label})", result["rate"],
               "intervals/s", goal, "the goal, a day in 10 min"),
        Figure(f"region's day, CPU s per 1k intervals (all processes; {label})",
               1000 * sum(result["cpu"].values()) / total, "CPU s/1k intervals"),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateways", type=int, default=500)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--senders", type=int, default=2, help="sender processes")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy sample")
    args = parser.parse_args(argv)
    result = run(args.gateways, args.devices, args.hours, args.senders, not args.no_profile)
    print(describe(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
