"""`edge-agent status` while the daemon runs and after it stopped."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from agent.cli import main
from agent.demo import demo_meters
from agent.lifecycle import write_snapshot
from agent.rules import RULE_KEY
from buffer import Store
from domain.records import Commit, EventRow
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
GATEWAY = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
buffer: {path: BUFFER}
sync: {url: "https://central.example/api/v1/batches"}
devices:
"""


async def test_status_shows_devices_backlog_and_sync_while_running_and_after(
    tmp_path: Path, capsys
) -> None:
    """A table row per device (state, last good poll, errors, quality), the backlog, the last
    sync's result and open alarms, read while the daemon runs; after SIGTERM it says stopped."""
    meters = demo_meters()
    server = MeterServer(list(meters.values())[:1])  # press_line_2's meter is missing
    await server.start()
    (tmp_path / "sync-token").write_text("t")
    config = tmp_path / "agent.yaml"
    config.write_text(agent_yaml(server.port, tmp_path, devices=2))
    status_file = tmp_path / "status.json"
    notify = NotifySocket()
    proc = await start_daemon(config, tmp_path / "agent.log", notify)
    try:
        await wait_until(status_file.exists, 30)
        assert main(["status", "-c", str(config)]) == 0
        running = capsys.readouterr().out
        assert main(["status", "-c", str(config), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        code = await stop_daemon(proc)
    finally:
        await stop_daemon(proc)
        await server.stop()
        notify.close()
    assert code == 0
    assert main(["status", "-c", str(config)]) == 0
    stopped = capsys.readouterr().out

    lines = running.splitlines()
    assert lines[1].startswith(f"daemon: running (pid {proc.pid}, figures from ")
    incomer = next(line.split() for line in lines if line.startswith("main_incomer"))
    assert incomer[1] == "ok" and incomer[5].startswith("0/")  # state, errors/polls
    press = next(line.split() for line in lines if line.startswith("press_line_2"))
    assert press[1] in ("failing", "offline")
    assert any(line.strip().startswith("last error: ") for line in lines)
    assert any(line.startswith("backlog: ") for line in lines)
    assert any(line.startswith("last sync: ") for line in lines)
    assert "open alarms: 0" in lines
    device = report["devices"]["main_incomer"]
    assert device["state"] == "ok" and device["failed_polls"] == 0 and device["polls"] > 0
    assert report["open_alarms"] == 0
    assert "daemon: stopped at " in stopped
    # systemd's STATUS= says the same in one line once the figures are in
    statuses = [line for line in notify.lines() if line.startswith("STATUS=")]
    pattern = r"STATUS=polling 2 devices, backlog \d+, last sync (never|\d\d:\d\d) \(.+\)"
    assert any(re.fullmatch(pattern, line) for line in statuses), statuses


def test_status_before_the_first_run_says_so(tmp_path: Path, capsys) -> None:
    """No buffer yet: one line that says what is missing, exit 1."""
    config = tmp_path / "agent.yaml"
    config.write_text(agent_yaml(free_port(), tmp_path, devices=1))
    assert main(["status", "-c", str(config)]) == 1
    assert "cannot read the buffer" in capsys.readouterr().out


def test_the_backlog_has_a_line_per_destination_when_there_are_several(capsys) -> None:
    """One line in all (a record counted once however many wait for it), then one per
    destination with its age limit; with a single destination, the one line as before."""
    from agent.status import _print_backlog

    now = 1_800_000_000.0
    sync = {"intervals": 340, "events": 2, "oldest": now - 3 * 3600, "max_age": None}
    epb = {"intervals": 12, "events": 0, "oldest": now - 1800, "max_age": 3600.0}
    both = {"intervals": 340, "events": 2, "oldest": now - 3 * 3600}
    _print_backlog({**both, "destinations": {"sync": sync, "epb": epb}}, now)
    assert capsys.readouterr().out.splitlines() == [
        "backlog: 340 intervals, 2 events, oldest 3.0 h old",
        "backlog to sync: 340 intervals, 2 events, oldest 3.0 h old",
        "backlog to epb (owed records up to 1h old): 12 intervals, 0 events, oldest 30 min old",
    ]
    _print_backlog({**both, "destinations": {"sync": sync}}, now)
    assert capsys.readouterr().out.splitlines() == [
        "backlog: 340 intervals, 2 events, oldest 3.0 h old"
    ]


def test_the_figures_agree_with_the_buffer_between_two_status_files(tmp_path: Path, capsys) -> None:
    """A rule raised and a batch acknowledged after the daemon last wrote its status file
    (it does every 30 s): the report says one thing, the buffer's, in every line of it."""
    buffer = tmp_path / "buffer.db"
    config = tmp_path / "agent.yaml"
    config.write_text(
        GATEWAY.replace("BUFFER", str(buffer))
        + "  - {name: m1, profile: eastron-sdm630, modbus_tcp: {host: 127.0.0.1}}\n"
        + "rules:\n  - {name: demand-high, device: m1, quantity: power_kw, above: 100}\n"
    )
    now = time.time()
    store = Store(buffer)
    state = {"raised": True, "since": None, "raised_at": now - 5}
    event = EventRow(now - 5, "m1", "alarm_raised", "warning", "demand-high: 120 kW")
    store.commit(Commit(events=[event], counters={RULE_KEY + "demand-high": state}))
    outbox = store.outbox("sync")
    batch = outbox.pending_batch(100, {"gateway": "gw"})
    assert batch is not None
    outbox.finish_batch(batch.seq, "acked")
    store.close()
    figures = {"last_attempt": None, "last_success": None, "last_result": "not yet",
               "failures": 0, "batches_sent": 0, "records_sent": 0}  # fmt: skip
    write_snapshot(
        tmp_path / "status.json",
        {"written": now - 20, "pid": os.getpid(), "buffer": str(buffer), "devices": {},
         "destinations": {"sync": figures}, "backlog": None, "open_alarms": 0, "problems": []},
    )  # fmt: skip

    assert main(["status", "-c", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert main(["status", "-c", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert any(line.startswith("rule demand-high: RAISED since ") for line in lines)
    assert "open alarms: 1" in lines
    assert report["open_alarms"] == 1
    sync = next(line for line in lines if line.startswith("last sync: "))
    assert sync.startswith("last sync: acked, last success ") and "never" not in sync
    assert any(line.startswith(f"last batch: #{batch.seq} acked at ") for line in lines)
    assert report["sync"]["last_success"] == pytest.approx(now, abs=5)
