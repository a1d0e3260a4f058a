"""Backlog drain over MQTT: the agent's mqtt destination against a bare paho client
publishing the same messages.

    .venv/bin/python bench/mqtt_drain.py --intervals 288000 --rounds 5

For each size N: the buffer of bench/drain.py (N 1-minute intervals of 200
devices; 288,000 is a day of them) is drained by the agent's publisher
(cloud_sync/mqtt, format batch, the default batch size and window) to a Debian
`mosquitto` started here on 127.0.0.1 (its own config, persistence off), each
message at QoS 1, the buffer's cursor moved by PUBACKs only. The baseline
publishes the very same messages (same topic, bytes and properties, precomputed
from a copy of the buffer) with a bare paho-mqtt client, one after the other,
each waited for (PUBACK). A subscriber in a process of its own drains the topic
so the broker does not queue. It prints intervals/s for both and the ratio (aim:
0.7). Set EDGE_BENCH_IN_FLIGHT to try another window (1: one batch at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from paho.mqtt.client import CallbackAPIVersion, Client, MQTTv5  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402

from bench.drain import GATEWAY, copy, fill, timed_drain  # noqa: E402
from bench.table import Figure, render  # noqa: E402
from buffer import AsyncStore  # noqa: E402
from cloud_sync.base import Identity  # noqa: E402
from cloud_sync.mqtt.link import Message, properties  # noqa: E402
from cloud_sync.mqtt.publisher import Publisher, make  # noqa: E402
from cloud_sync.mqtt.settings import MqttSettings  # noqa: E402
from domain.batch import SCHEMA_VERSION  # noqa: E402

NAME = "sync"  # bench/drain.py's buffer declares this destination; the publisher takes it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mosquitto(
    workdir: Path, extra: tuple[str, ...] = ()
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A broker on a free loopback port (`extra`: more mosquitto.conf lines); yields its
    port and process; stopped by its PID."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(binary, os.X_OK):
        raise SystemExit("mosquitto is not installed: apt-get install -y mosquitto")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false",
             "max_inflight_messages 0", "max_queued_messages 0", *extra]  # fmt: skip
    if os.geteuid() == 0:
        lines.insert(0, "user root")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.05)
        yield port, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


SINK = """
import os, sys
os.nice(19)
from paho.mqtt.client import CallbackAPIVersion, Client, MQTTv5
client = Client(CallbackAPIVersion.VERSION2, client_id="bench-sink", protocol=MQTTv5)
client.on_subscribe = lambda *args: print("ready", flush=True)
client.connect("127.0.0.1", int(sys.argv[1]))
client.subscribe("edge-agent/#", qos=1)
client.loop_forever()
"""


@contextmanager
def drain_subscriber(port: int) -> Iterator[None]:
    """Reads everything published, as a platform would, so nothing piles up in the broker:
    in a process of its own, as a platform is (in this one it would take the interpreter's
    lock from the publishers measured, the agent's threads most)."""
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        assert sink.stdout is not None
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError("the bench's subscriber did not subscribe")
        yield
    finally:
        sink.terminate()
        sink.wait(10)


def _publisher(store: AsyncStore, port: int) -> Publisher:
    window = int(os.environ.get("EDGE_BENCH_IN_FLIGHT", "8"))
    settings = MqttSettings(url=f"mqtt://127.0.0.1:{port}", timeout="120s", in_flight=window)
    made = make(NAME, settings, Identity(GATEWAY, "cn-mee-2022"), setting="bench")
    made.attach(store)
    return made


async def messages(path: Path) -> list[Message]:
    """The messages the agent will publish from this buffer, in order, without publishing."""
    store = AsyncStore(path)
    up = _publisher(store, 9)
    header = {"schema_version": SCHEMA_VERSION, "gateway": GATEWAY, "factor_set": "cn-mee-2022"}
    out: list[Message] = []
    while (batch := await up.outbox.pending_batch(up.settings.max_batch, header)) is not None:
        out += up.messages(batch)
        await up.outbox.finish_batch(batch.seq, "acked")
    store.close()
    return out


def raw_publish(port: int, batch: list[Message]) -> float:
    """A bare paho client: publish each message at QoS 1, wait for its PUBACK, next."""
    client = Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        began = time.perf_counter()
        for m in batch:
            props = properties(m, PacketTypes.PUBLISH)
            client.publish(m.topic, m.payload, qos=1, properties=props).wait_for_publish(120)
        return time.perf_counter() - began
    finally:
        client.disconnect()
        client.loop_stop()


def figures(sizes: tuple[int, ...] = (288_000,), rounds: int = 3) -> list[Figure]:
    """Intervals/s drained over MQTT by the agent and by a bare paho client, per size: the
    median of `rounds` rounds, the two taking turns to go first, each agent round on a
    fresh copy of the buffer (on 2 shared cores one pair swings with the load beside)."""
    out = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as d:
            work = Path(d)
            fill(work / "buffer.db", n)
            copy(work, "buffer.db", "copy.db")  # one to precompute the messages from
            batch = asyncio.run(messages(work / "copy.db"))
            raws, tooks = [], []
            with mosquitto(work) as (port, _), drain_subscriber(port):
                for r in range(rounds):
                    copy(work, "buffer.db", "round.db")
                    if r % 2:
                        tooks.append(_agent(work / "round.db", port, n))
                        raws.append(raw_publish(port, batch))
                    else:
                        raws.append(raw_publish(port, batch))
                        tooks.append(_agent(work / "round.db", port, n))
        took, raw = statistics.median(tooks), statistics.median(raws)
        pairs = ", ".join(f"{r / t:.2f}" for r, t in zip(raws, tooks, strict=True))
        each = f"; rounds: {pairs}" if rounds > 1 else ""
        out.append(
            Figure(
                f"MQTT backlog drain, {n:,} 1-min intervals ({took:.1f} s{each})",
                n / took,
                "intervals/s",
                n / raw,
                "bare paho client, same messages",
            )
        )
    return out


def _agent(path: Path, port: int, n: int) -> float:
    took, sent = asyncio.run(timed_drain(path, lambda store: _publisher(store, port)))
    if sent != n:
        raise RuntimeError(f"published {sent} of {n}")
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--intervals", default="288000", help="backlog sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size (median)")
    args = parser.parse_args(argv)
    sizes = tuple(int(x) for x in args.intervals.split(","))
    print(render(figures(sizes, max(1, args.rounds))))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
