"""A plant and a platform gone for longer than the shipped WatchdogSec=60s: the agent is
never restarted for it, says what is wrong once, and delivers what it held.

It waits out the real 60 s, so it has a container of its own and runs beside the others.
"""

from __future__ import annotations

import re
import time

import pytest

from agent.health import OFFLINE_AFTER
from tests.fixtures.systemd_site import TCP_METERS, UNIT, Site, agent_config, eventually

pytestmark = pytest.mark.timeout(900)
WATCHDOG_SEC = 60.0
CONFIG = agent_config(tcp_meters=3)
UNSENT = r"cloud_sync\.http\.uploader: sync: batch (\d+) not sent: \w+.*"


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
        pings.add(site.last_ping())
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
    # each meter: its first failure (the text depends on the moment), then the slower pace
    for device in TCP_METERS:
        said = [line for line in attention if f" {device}: " in line]
        assert len(said) == 2 and said[0].startswith(f"agent.health: {device}: "), attention
        assert said[1] == (
            f"agent.health: {device}: offline after {OFFLINE_AFTER} failed polls; "
            "polled less often until it answers"
        )
    uplink = [line for line in attention if line.startswith("cloud_sync.")]
    assert len(attention) == 2 * len(TCP_METERS) + len(uplink), attention
    unsent = [re.fullmatch(UNSENT, line) for line in uplink]
    assert unsent and all(unsent) and len(set(uplink)) == len(uplink), uplink

    mark = site.box.mark()
    site.start_receiver()
    for match in unsent:
        assert match is not None
        site.box.wait_for_message(f"sync: batch {match[1]} stored", 60, unit=UNIT, after=mark)
    site.start_plant()
