"""The watchdog under a real systemd, with the shipped WatchdogSec=60s: a frozen event
loop is killed and the agent restarted.

It waits out the real 60 s, so it has a container of its own and runs beside the others.
"""

from __future__ import annotations

import time

import pytest

from tests.fixtures.nspawn import message
from tests.fixtures.systemd_site import UNIT, Site, agent_config, eventually

pytestmark = pytest.mark.timeout(900)
WATCHDOG_SEC = 60.0
RESTART_SEC = 5.0
CONFIG = agent_config(tcp_meters=3)


def test_a_frozen_event_loop_is_killed_by_the_watchdog_and_restarted(site: Site) -> None:
    """SIGSTOP on the main process: no more WATCHDOG=1, so systemd kills it WatchdogSec
    after the last ping, with SIGABRT (faulthandler prints where it hung), and restarts it
    RestartSec later; the new process says READY=1 again."""
    if site.state()["ActiveState"] != "active":
        site.write_config(CONFIG)
        site.start()
    pid, restarts = site.main_pid(), int(site.state()["NRestarts"])
    time.sleep(1)
    pinged = site.last_ping()
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
    assert killed_at - frozen_at <= WATCHDOG_SEC + 3  # journald hears it a moment later
    assert killed_at - pinged == pytest.approx(WATCHDOG_SEC, abs=3)
    assert any(f"Killing process {pid} (edge-agent) with signal SIGABRT" in t for t in texts)
    assert any("Fatal Python error: Aborted" in t for t in texts)
    assert int(state["NRestarts"]) == restarts + 1
    assert state["StatusText"].startswith("polling 3 devices")
