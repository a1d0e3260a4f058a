"""/metrics and /healthz of a running daemon, read like Prometheus and a monitor would."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.daemon import Agent
from agent.demo import demo_meters
from agent.metrics import serve_http
from config.loader import load_config
from config.models import Http
from domain.errors import ConfigInvalid
from drivers.modbus.simulator import MeterServer
from tests.fixtures.daemon import (
    NotifySocket,
    agent_yaml,
    free_port,
    start_daemon,
    stop_daemon,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_parse_and_count_what_the_daemon_does(tmp_path: Path) -> None:
    """prometheus-client's own parser reads /metrics: polls per device, values, backlog,
    sync failures (the platform is down), buffer size; /healthz says ok."""
    meters = demo_meters()
    server = MeterServer(list(meters.values()))
    await server.start()
    (tmp_path / "sync-token").write_text("t")
    config = tmp_path / "agent.yaml"
    port = free_port()
    config.write_text(agent_yaml(server.port, tmp_path, devices=2, http_port=port))
    notify = NotifySocket()
    proc = await start_daemon(config, tmp_path / "agent.log", notify)
    try:
        await wait_until(lambda: "READY=1" in notify.lines(), 30)
        # a daemon starting beside a loaded suite may take more than httpx's 5 s to answer
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            async def scrape() -> dict:
                return samples((await client.get("/metrics")).text)

            first = await scrape()
            values: dict = {}
            for _ in range(100):  # until the platform's absence has been counted
                values = await scrape()
                if values.get(("edge_agent_sync_failures_total", (("destination", "sync"),))):
                    break
                await asyncio.sleep(0.2)
            health = await client.get("/healthz")
            missing = await client.get("/nope")
        code = await stop_daemon(proc)
    finally:
        await stop_daemon(proc)
        await server.stop()
        notify.close()
    assert code == 0
    device = (("device", "main_incomer"),)
    assert values[("edge_agent_polls_total", device)] >= first[("edge_agent_polls_total", device)]
    assert values[("edge_agent_polls_total", device)] > 0
    assert values[("edge_agent_poll_errors_total", device)] == 0
    assert values[("edge_agent_values_read_total", device)] > 0
    assert values[("edge_agent_device_up", device)] == 1
    assert values[("edge_agent_late_replies_total", device)] == 0  # a Modbus TCP meter's
    assert ("edge_agent_polls_total", (("device", "compressor"),)) not in values
    assert values[("edge_agent_sync_failures_total", (("destination", "sync"),))] >= 1
    assert values[("edge_agent_buffer_bytes", ())] > 0
    assert values[("edge_agent_asyncio_tasks", ())] >= 1
    assert ("edge_agent_backlog_rows", (("kind", "intervals"),)) in values
    assert values[("edge_agent_open_alarms", ())] == 0
    assert values[("edge_agent_stalled_jobs", ())] == 0
    assert (health.status_code, health.text) == (200, "ok\n")
    assert missing.status_code == 404


async def test_healthz_says_what_is_wrong_with_503(tmp_path: Path) -> None:
    """With its only meter unreachable, /healthz answers 503 and names the failing devices."""
    (tmp_path / "sync-token").write_text("t")
    config = tmp_path / "agent.yaml"
    config.write_text(agent_yaml(free_port(), tmp_path, devices=1))  # nothing listens there
    agent = Agent(load_config(config, require_env=True))
    await agent.start()
    http = await serve_http(agent, Http(listen="127.0.0.1:0"))
    assert http is not None
    port = http.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                health = await client.get("/healthz")
                if health.status_code != 200:
                    break
                await asyncio.sleep(0.1)
    finally:
        http.close()
        await agent.stop()
    assert health.status_code == 503
    assert health.text.startswith("all 1 devices failing (first: ")


@pytest.mark.parametrize(
    ("listen", "says"),
    [
        ("127.0.0.1:99999", "http.listen: port 99999 is out of range (0 to 65535)"),
        ("localhost", "http.listen: "),
    ],
)
def test_a_bad_listen_address_is_a_config_error(listen: str, says: str, tmp_path: Path) -> None:
    """A listen address the daemon could not use is refused at load, with its position."""
    config = tmp_path / "agent.yaml"
    text = agent_yaml(free_port(), tmp_path, devices=1)
    config.write_text(text.replace("listen: '127.0.0.1:0'", f"listen: '{listen}'"))
    with pytest.raises(ConfigInvalid) as error:
        load_config(config)
    assert any(says in str(p) and str(p).startswith(f"{config}:") for p in error.value.problems)


def test_the_daemon_imports_prometheus_client_only_when_scraped() -> None:
    """1.2 MiB of RSS (with http.server, wsgiref, html) that a daemon nobody scrapes never
    needs: `edge-agent run` imports it at the first /metrics, not at start."""
    code = (
        "import sys, agent.cli, agent.service, agent.daemon;"
        "print('prometheus_client' in sys.modules, 'http.server' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.split() == ["False", "False"]
