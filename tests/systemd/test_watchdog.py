"""The watchdog under a real systemd, with the shipped WatchdogSec=60s: a dead plant and
a dead uplink for longer than that never restart the agent; a frozen one is restarted.

Slow by nature (each test waits out the real 60 s), so this module has a container of
its own and runs beside the others.
"""

from __future__ import annotations

import re
import time

import pytest

from agent.health import OFFLINE_AFTER
from tests.fixtures.nspawn import message
from tests.fixtures.systemd_site import TCP_METERS, UNIT, Site, agent_config, eventually

pytestmark = pytest.mark.timeout(900)
WATCHDOG_SEC = 60.0
RESTART_SEC = 5.0
CONFIG = agent_config(tcp_meters=3)
UNSENT = r"cloud_sync\.http\.uploader: sync: batch (\d+) not sent: ConnectError: .*"


def last_ping(site: Site) -> float:
    """When systemd last heard WATCHDOG=1, in seconds of CLOCK_MONOTONIC (the container
    shares the host's kernel, so the host's time.monotonic() reads the same clock)."""
    return (
        int(site.box.show(UNIT, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]) / 1e6
    )


def test_meters_and_uplink_down_longer_than_watchdogsec_never_restart_it(site: Site) -> None:
    """Every meter and the platform gone for WatchdogSec + 15 s: the same process runs on,
    its pings keep coming, and `journalctl -p warning` says what is wrong once per thing;
    when the platform is back, the batch it could not send is delivered."""
    site.write_config(CONFIG)
    site.start()
    eventually(lambda: {r["device"] for r in site.delivered()} >= set(TCP_METERS), 60)
    pid, restarts = site.main_pid(), int(site.state()["NRestarts"])
    mark = site.box.mark()
    site.stop_peers("plant.service", "receiver.service")
    down_at = time.monotonic()
    pings = set()
    while time.monotonic() < down_at + WATCHDOG_SEC + 15:
        pings.add(last_ping(site))
        assert site.main_pid() == pid
        time.sleep(5)
    state = site.state()
    attention = site.attention(mark)
    assert (state["ActiveState"], int(state["NRestarts"]), site.main_pid()) == (
        "active",
        restarts,
        pid,
    )
    assert len({p for p in pings if p > down_at}) >= 2  # WATCHDOG=1 every 30 s all along
    for device in TCP_METERS:
        assert [line for line in attention if f" {device}: " in line] == [
            f"agent.health: {device}: cannot connect to 127.0.0.1:5020",
            f"agent.health: {device}: offline after {OFFLINE_AFTER} failed polls; "
            "polled less often until it answers",
        ]
    uplink = [line for line in attention if line.startswith("cloud_sync.")]
    assert len(attention) == 2 * len(TCP_METERS) + len(uplink)
    unsent = [re.fullmatch(UNSENT, line) for line in uplink]
    assert unsent and all(unsent) and len(set(uplink)) == len(uplink)

    mark = site.box.mark()
    site.start_receiver()
    for match in unsent:
        assert match is not None
        site.box.wait_for_message(f"sync: batch {match[1]} stored", 60, unit=UNIT, after=mark)
    site.start_plant()


def test_a_frozen_event_loop_is_killed_by_the_watchdog_and_restarted(site: Site) -> None:
    """SIGSTOP on the main process: no more WATCHDOG=1, so systemd kills it WatchdogSec
    after the last ping, with SIGABRT (faulthandler prints where it hung), and restarts it
    RestartSec later; the new process says READY=1 again."""
    if site.state()["ActiveState"] != "active":
        site.write_config(CONFIG)
        site.start()
    pid, restarts = site.main_pid(), int(site.state()["NRestarts"])
    time.sleep(1)
    pinged = last_ping(site)
    mark = site.box.mark()
    site.box.run("kill", "-STOP", str(pid))
    frozen_at = time.monotonic()
    eventually(lambda: site.main_pid() not in (pid, 0), WATCHDOG_SEC + RESTART_SEC + 30, every=1)
    eventually(lambda: site.state()["ActiveState"] == "active", 30)
    entries = site.box.journal(unit=UNIT, after=mark)
    timeout = next(e for e in entries if "Watchdog timeout" in message(e))
    killed_at = int(timeout["__MONOTONIC_TIMESTAMP"]) / 1e6
    texts = [message(e) for e in entries]
    state = site.state()
    assert killed_at - frozen_at <= WATCHDOG_SEC + 1
    assert killed_at - pinged == pytest.approx(WATCHDOG_SEC, abs=1.5)
    assert any(f"Killing process {pid} (edge-agent) with signal SIGABRT" in t for t in texts)
    assert any("Fatal Python error: Aborted" in t for t in texts)
    assert int(state["NRestarts"]) == restarts + 1
    assert state["StatusText"].startswith("polling 3 devices")
