"""`/healthz` and `/metrics` on 127.0.0.1: the technician's and the monitoring's window.

A custom prometheus-client Collector reads the agent's own state when scraped,
so polling pays nothing for metrics. prometheus-client is imported at the first
scrape, not at start: with what it pulls in (http.server, wsgiref, email) it is
3.5 MiB of RSS that a daemon nobody scrapes never needs. The server is a few lines of asyncio on
the daemon's loop: it never blocks the loop, and a loop that is stuck does not
answer, which a monitor sees as a failed health check too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from config.models import Http
from drivers.base import CountsLateReplies

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from agent.daemon import Agent

log = logging.getLogger(__name__)
READ_TIMEOUT = 5.0  # a client that sends no request line in this time is dropped


class AgentCollector:
    """Every figure is read from the agent at scrape time (a prometheus-client Collector:
    the registry asks only for `collect`)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        agent = self.agent
        names = [device.name for device in agent.loaded.config.devices]
        polls = CounterMetricFamily("edge_agent_polls", "Polls per device.", labels=["device"])
        errors = CounterMetricFamily(
            "edge_agent_poll_errors", "Polls that read no good value.", labels=["device"]
        )
        skipped = CounterMetricFamily(
            "edge_agent_polls_skipped", "Turns skipped: the last poll still ran.", labels=["device"]
        )
        values = CounterMetricFamily(
            "edge_agent_values_read", "Good values read.", labels=["device"]
        )
        up = GaugeMetricFamily(
            "edge_agent_device_up", "1 if the last poll read a good value.", labels=["device"]
        )
        last_good = GaugeMetricFamily(
            "edge_agent_device_last_good_poll_timestamp_seconds",
            "When the device last answered with a good value.",
            labels=["device"],
        )
        late = CounterMetricFamily(
            "edge_agent_late_replies",
            "Replies that came after their request was given up, thrown away.",
            labels=["device"],
        )
        for name in names:
            driver: object = agent.drivers.get(name)  # typed Driver, mypy finds no overlap
            if isinstance(driver, CountsLateReplies):
                late.add_metric([name], driver.late_replies)
            status = agent.health.devices.get(name)
            if status is None:
                continue
            polls.add_metric([name], status.polls)
            errors.add_metric([name], status.failed_polls)
            skipped.add_metric([name], status.skipped)
            values.add_metric([name], status.values_read)
            up.add_metric([name], 1.0 if status.last_good and not status.failing_since else 0.0)
            if status.last_good:
                last_good.add_metric([name], status.last_good)
        yield from (polls, errors, skipped, values, up, last_good, late)

        backlog = agent.backlog or {}
        rows = GaugeMetricFamily(
            "edge_agent_backlog_rows", "Records not yet acknowledged.", labels=["kind"]
        )
        for kind in ("intervals", "events"):
            if kind in backlog:
                rows.add_metric([kind], backlog[kind])
        yield rows
        oldest = backlog.get("oldest")
        yield GaugeMetricFamily(
            "edge_agent_backlog_oldest_age_seconds",
            "Age of the oldest unsynced interval (0 when none).",
            value=max(0.0, time.time() - oldest) if oldest else 0.0,
        )
        yield from _destinations(agent)
        yield GaugeMetricFamily(
            "edge_agent_buffer_bytes", "Buffer size on disk (with its WAL).", value=_size(agent)
        )
        yield GaugeMetricFamily(  # a leak of tasks shows here first (bench/soak.py watches it)
            "edge_agent_asyncio_tasks", "Tasks alive on the agent's event loop.",
            value=len(asyncio.all_tasks()),
        )  # fmt: skip
        yield CounterMetricFamily(
            "edge_agent_records_dropped",
            "Records given up.",
            value=agent.records_dropped
            + backlog.get("dropped_samples", 0)
            + backlog.get("dropped_synced", 0),
        )
        yield GaugeMetricFamily(
            "edge_agent_open_alarms", "Alarms raised and not cleared.", value=agent.open_alarms()
        )
        yield GaugeMetricFamily(
            "edge_agent_stalled_jobs", "Jobs that stopped running.", value=len(agent.stalled())
        )


def _destinations(agent: Agent) -> Iterator[Metric]:
    """Each destination's figures, labelled with its name ("sync" is the central one)."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    labels = ["destination"]
    failures = CounterMetricFamily(
        "edge_agent_sync_failures", "Delivery runs that could not send.", labels=labels
    )
    batches = CounterMetricFamily("edge_agent_sync_batches", "Batches acknowledged.", labels=labels)
    records = CounterMetricFamily("edge_agent_sync_records", "Records acknowledged.", labels=labels)
    took = GaugeMetricFamily(
        "edge_agent_sync_duration_seconds",
        "How long the last delivery run took (all its batches).",
        labels=labels,
    )
    last = GaugeMetricFamily(
        "edge_agent_last_sync_success_timestamp_seconds",
        "When a batch was last acknowledged.",
        labels=labels,
    )
    pending = GaugeMetricFamily(
        "edge_agent_destination_backlog_rows",
        "Records still owed to the destination.",
        labels=[*labels, "kind"],
    )
    connected = GaugeMetricFamily(
        "edge_agent_destination_connected",
        "1 while a destination on a standing connection (HJ 212) is connected.",
        labels=labels,
    )
    resends = CounterMetricFamily(
        "edge_agent_destination_resends", "Frames sent again for want of an answer.", labels=labels
    )
    refused = CounterMetricFamily(
        "edge_agent_destination_requests_refused",
        "Platform requests refused or malformed.",
        labels=labels,
    )
    owed = (agent.backlog or {}).get("destinations", {})
    for name, destination in agent.destinations.items():
        status = destination.status
        if status.connected is not None:
            connected.add_metric([name], 1.0 if status.connected else 0.0)
            resends.add_metric([name], status.resends)
            refused.add_metric([name], status.refused)
        failures.add_metric([name], status.failures)
        batches.add_metric([name], status.batches_sent)
        records.add_metric([name], status.records_sent)
        if status.last_run_seconds is not None:
            took.add_metric([name], status.last_run_seconds)
        if status.last_success:
            last.add_metric([name], status.last_success)
        for kind in ("intervals", "events"):
            if kind in owed.get(name, {}):
                pending.add_metric([name, kind], owed[name][kind])
    yield from (failures, batches, records, took, last, pending, connected, resends, refused)


def _size(agent: Agent) -> float:
    path = agent.loaded.config.buffer.path
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += os.stat(path + suffix).st_size
    return float(total)


def render(agent: Agent) -> bytes:
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent))
    return generate_latest(registry)


async def _answer(agent: Agent, path: str) -> tuple[int, str, bytes]:
    if path == "/metrics":
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        with contextlib.suppress(Exception):  # the figures of the last report will do
            agent.backlog = await asyncio.wait_for(agent.store.backlog(), 2.0)
        return 200, CONTENT_TYPE_LATEST, render(agent)
    if path == "/healthz":
        problems = agent.problems()
        body = "\n".join(problems or ["ok"]) + "\n"
        return (503 if problems else 200), "text/plain; charset=utf-8", body.encode()
    return 404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n"


async def _handle(agent: Agent, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
        header = b"?"
        while header not in (b"\r\n", b"\n", b""):  # nothing here depends on the headers
            header = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
        parts = request.decode("latin-1").split()
        if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
            code, kind, body = 405, "text/plain", b"GET /healthz or /metrics\n"
        else:
            code, kind, body = await _answer(agent, parts[1].split("?", 1)[0])
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(code, "Unavailable")
        head = (
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + (b"" if parts and parts[0] == "HEAD" else body))
        await writer.drain()
    except (TimeoutError, ConnectionError, UnicodeError):
        pass
    finally:
        writer.close()


async def serve_http(agent: Agent, config: Http) -> asyncio.Server | None:
    """Listen on `config.listen`; a port that cannot be had is logged, never fatal."""
    if not config.enabled:
        return None
    host, _, port = config.listen.rpartition(":")
    host = host.strip("[]")
    try:
        server = await asyncio.start_server(
            lambda r, w: _handle(agent, r, w), host, int(port), reuse_address=True
        )
    except OSError as exc:
        log.error("http: cannot listen on %s (%s); no /healthz or /metrics", config.listen, exc)
        return None
    bound = server.sockets[0].getsockname()
    log.info("http: /healthz and /metrics on http://%s:%d", host, bound[1])
    return server
