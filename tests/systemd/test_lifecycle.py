"""The unit under a real systemd: start and READY=1, the token, reload, a bad config, stop.

One container for the module (tests/systemd/conftest.py); the tests run in order on it,
each bringing the unit to the state it starts from. The agent polls the demo's Modbus
TCP meters and delivers 2 s intervals over HTTPS to the receiver, both in the container.
"""

from __future__ import annotations

import time

import pytest

from agent.demo import RESOLUTION_KWH
from drivers.modbus.simulator import LoadCurve
from tests.fixtures.plant import epoch
from tests.fixtures.systemd_site import (
    CONFIG,
    TCP_METERS,
    UNIT,
    Site,
    agent_config,
    eventually,
)

pytestmark = pytest.mark.timeout(900)  # the first test waits for the container too
TWO = agent_config(tcp_meters=2)
THREE = agent_config(tcp_meters=3)
COUNTERS = {"main_incomer": "import_kwh", "press_line_2": "energy_kwh", "compressor": "energy_wh"}
TIMEOUT_STOP_SEC = 30.0
RESTART_SEC = 5.0


def running(site: Site, text: str) -> None:
    """The unit active on `text` (started on it if it was not running)."""
    if site.state()["ActiveState"] != "active":
        site.write_config(text)
        site.start()


def position(text: str, needle: str) -> tuple[int, int]:
    """(line, column) of `needle` in `text`, 1-based, as the config loader reports them."""
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number, line.index(needle) + 1
    raise ValueError(needle)


def delivered_for(site: Site, device: str) -> list[dict]:
    """The device's 2 s intervals the receiver stored, oldest first."""
    return [r for r in site.delivered()
            if r["device"] == device and epoch(r["end"]) - epoch(r["start"]) == 2]  # fmt: skip


def test_start_returns_once_ready_and_status_shows_the_status_line(site: Site) -> None:
    """`systemctl start` comes back only when the agent has said READY=1: at that moment
    the STATUS= sent with it is already there (one datagram), /metrics answers, and
    systemd counted the unit active only well after it started the process."""
    site.write_config(TWO)
    mark = site.box.mark()
    site.start()
    state = site.state()  # at once: no waiting for the agent here
    metrics = site.metrics()
    assert (state["ActiveState"], state["SubState"]) == ("active", "running")
    assert state["StatusText"].startswith("polling 2 devices")
    assert ("edge_agent_polls_total", "main_incomer") in metrics
    times = site.box.show(UNIT, "Type", "ExecMainStartTimestampMonotonic",
                          "ActiveEnterTimestampMonotonic")  # fmt: skip
    waited = int(times["ActiveEnterTimestampMonotonic"]) - int(
        times["ExecMainStartTimestampMonotonic"]
    )
    assert times["Type"] == "notify"
    assert waited > 200_000  # µs: Python, config and buffer; a Type=simple unit shows ~0
    status = site.box.systemctl("status", UNIT)
    assert f'Status: "{state["StatusText"]}' in status
    time.sleep(6)  # a few intervals and syncs: a healthy start says nothing at warning
    assert site.attention(mark) == []


def test_the_token_arrives_as_a_credential_and_shows_nowhere(site: Site) -> None:
    """LoadCredential= hands the token to the agent (the receiver accepts its batches), while
    the file itself stays unreadable to the agent's user; the token is in no process's
    command line or environment and in no line of the journal."""
    running(site, TWO)
    eventually(lambda: delivered_for(site, "main_incomer"), 30)
    pid = site.main_pid()
    credential = site.box.sh("cat /run/credentials/edge-agent.service/sync-token")
    assert credential.strip() == site.token
    direct = site.box.run("runuser", "-u", "edge-agent", "--", "cat", "/etc/edge-agent/sync-token",
                          check=False)  # fmt: skip
    assert direct.returncode != 0 and "Permission denied" in direct.stderr
    processes = site.box.run("ps", "-eo", "pid,user,args", "--width", "4000").stdout
    environ = site.box.sh(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    journal = site.box.run("journalctl", "--output=export", "--no-pager").stdout
    assert "/opt/edge-agent/bin/edge-agent run -c /etc/edge-agent/agent.yaml" in processes
    assert "CREDENTIALS_DIRECTORY=/run/credentials/edge-agent.service" in environ
    assert site.token not in processes
    assert site.token not in environ
    assert site.token not in journal


def test_reload_applies_a_good_file_and_refuses_a_bad_one(site: Site) -> None:
    """SIGHUP with a good file: the third meter is polled, same process. With a bad one: the
    journal lists each problem at its file:line:column and the refusal, the previous
    config keeps running (status, intervals), and that is all it shows at warning."""
    running(site, TWO)
    pid = site.main_pid()
    mark = site.box.mark()
    site.write_config(THREE)
    site.box.systemctl("reload", UNIT)
    site.box.wait_for_message("reloaded", 30, unit=UNIT, after=mark)
    eventually(lambda: site.state()["StatusText"].startswith("polling 3 devices"), 30)
    eventually(lambda: delivered_for(site, "compressor"), 30)
    assert site.main_pid() == pid
    assert site.attention(mark) == []

    bad = THREE.replace("    poll: 1s\n", "    pol: 1s\n", 1)
    line, column = position(bad, "pol: 1s")
    mark = site.box.mark()
    site.write_config(bad)
    site.box.systemctl("reload", UNIT)
    site.box.wait_for_message("reload refused", 30, unit=UNIT, after=mark)
    before = len(site.delivered())
    time.sleep(5)  # the old config polls and delivers on
    attention = site.attention(mark)
    assert site.main_pid() == pid
    assert site.state()["StatusText"].startswith("polling 3 devices")
    assert len(site.delivered()) > before
    assert attention == [
        f"agent.service: {CONFIG}:{line}:{column}: devices[0].pol: unknown key "
        "(did you mean 'poll'?)",
        f"agent.service: reload refused: {CONFIG} has problems; still running the previous config",
    ]
    mark = site.box.mark()
    site.write_config(THREE)  # as it was, for the tests after this one
    site.box.systemctl("reload", UNIT)
    site.box.wait_for_message("reloaded", 30, unit=UNIT, after=mark)


def test_the_same_bad_file_reloaded_twice_is_refused_aloud_twice(site: Site) -> None:
    """A technician who reloads a file still wrong hears again that it was refused."""
    running(site, THREE)
    bad = THREE.replace("    poll: 1s\n", "    pol: 1s\n", 1)
    for _ in range(2):
        mark = site.box.mark()
        site.write_config(bad)
        site.box.systemctl("reload", UNIT)
        site.box.wait_for_message("SIGHUP: reloading", 30, unit=UNIT, after=mark)
        time.sleep(2)
        refused = [m for m in site.attention(mark) if "reload refused" in m]
        if not refused:
            break
    mark = site.box.mark()
    site.write_config(THREE)
    site.box.systemctl("reload", UNIT)
    site.box.wait_for_message("reloaded", 30, unit=UNIT, after=mark)
    assert refused


def test_stop_writes_every_counter_and_a_start_resumes_without_a_gap(site: Site) -> None:
    """`systemctl stop` ends cleanly well within TimeoutStopSec, each meter's counter state
    saved at the stop; after a start the 2 s intervals run on across the downtime, none
    missing, and their energy is what the meters really advanced (from the simulator's
    own load curves), so nothing was lost or counted twice across the restart."""
    running(site, THREE)
    eventually(lambda: all(len(delivered_for(site, m)) >= 3 for m in TCP_METERS), 60)
    mark = site.box.mark()
    stopped_at = time.time()
    took = site.stop()
    state = site.state()
    saved = site.counters()
    assert took < TIMEOUT_STOP_SEC
    assert (state["ActiveState"], state["Result"], state["ExecMainStatus"]) == (
        "inactive",
        "success",
        "0",
    )  # a stop cut by TimeoutStopSec would be Result=timeout
    for device, counter in COUNTERS.items():
        assert saved[f"{device}/{counter}"] >= stopped_at, device
    time.sleep(3)  # the plant PC is down a moment
    started_at = time.time()
    site.start()
    for device in TCP_METERS:
        eventually(lambda d=device: any(epoch(r["end"]) > started_at + 6
                                        for r in delivered_for(site, d)), 60)  # fmt: skip
    curves = {name: LoadCurve(**m["curve"]) for name, m in site.plant()["meters"].items()}
    for device in TCP_METERS:
        window = [r for r in delivered_for(site, device) if epoch(r["start"]) >= stopped_at - 6]
        starts = [epoch(r["start"]) for r in window]
        assert starts == [starts[0] + 2 * k for k in range(len(starts))], device
        end = epoch(window[-1]["end"])
        metered = curves[device].energy_kwh(end) - curves[device].energy_kwh(starts[0])
        delivered = sum(r["quantity"] for r in window)
        assert delivered == pytest.approx(metered, abs=2.5 * RESOLUTION_KWH), device
    assert site.attention(mark) == []


def test_a_bad_config_at_start_exits_78_and_waits_for_a_fix(site: Site) -> None:
    """A bad file at start: exit status 78, the problem at its position in the journal,
    no restart however long we wait; the file fixed, `systemctl start` runs it."""
    if site.state()["ActiveState"] == "active":
        site.stop()
    restarts = int(site.state()["NRestarts"])
    bad = THREE.replace("unit: 2,", "unit: 300,", 1)
    line, _ = position(bad, "unit: 300,")
    site.write_config(bad)
    mark = site.box.mark()
    failed = site.box.run("systemctl", "start", UNIT, check=False)
    assert failed.returncode != 0
    state = site.state()
    assert (state["ActiveState"], state["Result"], state["ExecMainStatus"]) == (
        "failed",
        "exit-code",
        "78",
    )
    time.sleep(RESTART_SEC + 5)
    state = site.state()
    assert state["ActiveState"] == "failed"
    assert int(state["NRestarts"]) == restarts
    problems = [m for m in site.box.messages(unit=UNIT, after=mark) if m.startswith(CONFIG)]
    assert problems and problems[0].startswith(f"{CONFIG}:{line}:")
    assert "devices[1].modbus_tcp.unit" in problems[0]
    site.write_config(THREE)
    site.start()
    assert site.state()["ActiveState"] == "active"
