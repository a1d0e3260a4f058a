"""Every hardening line of the shipped unit, with every driver the agent has at work.

First, that the container really enforces what the unit asks (otherwise nothing below
proves anything): DevicePolicy=, MemoryDenyWriteExecute= and SystemCallFilter= each
refuse or kill a process that oversteps. Then the whole data path under the unit as
shipped, no drop-in: Modbus TCP, Modbus RTU and DL/T 645 on pseudo-terminals, OPC UA
with Basic256Sha256 (the agent's own certificate made with cryptography on first
start), HTTPS with a client certificate to the receiver, /metrics; for
EDGE_AGENT_SOAK_SECONDS (default 120 s; `make test-systemd SOAK=600` for a longer run).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.fixtures.systemd_site import (
    OTHER_METERS,
    PREFIX,
    TCP_METERS,
    UNIT,
    Site,
    agent_config,
)

pytestmark = pytest.mark.timeout(3600)
SOAK = float(os.environ.get("EDGE_AGENT_SOAK_SECONDS", "120"))
SHIPPED = Path(__file__).resolve().parents[2] / "systemd" / "edge-agent.service"
DEVICES = (*TCP_METERS, *OTHER_METERS)
PROBE = f"{PREFIX}/bin/python"


def transient(site: Site, *properties: str, code: str) -> tuple[str, str]:
    """`code` run by python in a transient service with these properties: how its main
    process ended as systemd says it ("exited/0", "killed/SYS" ...), and what it printed
    (with systemd-run's own lines after)."""
    done = site.box.run(
        "systemd-run", "--wait", "--pipe", "--collect",
        *[f"--property={p}" for p in properties], "--", PROBE, "-c", code,
        check=False,
    )  # fmt: skip
    ended = re.search(r"Main processes terminated with: code=(\w+)/status=(\w+)", done.stderr)
    assert ended, done.stderr
    return f"{ended[1]}/{ended[2]}", done.stdout + done.stderr


OPEN_TUN = "import os; os.open('/dev/net/tun', os.O_RDWR); print('opened')"
WX_PAGE = "import mmap; mmap.mmap(-1, 4096, prot=7); print('mapped')"  # PROT_READ|WRITE|EXEC
# sched_setaffinity(2) is in @resources (glibc's setrlimit() goes through prlimit64, which
# @system-service allows); systemd.exec(5), "System Call Filtering"
AFFINITY = "import os; os.sched_setaffinity(0, os.sched_getaffinity(0)); print('set')"


def test_the_container_enforces_what_the_unit_asks(site: Site) -> None:
    """Each kind of hardening line, checked on its own: the same code passes without it
    and is refused (or killed, SIGSYS) with it, so a pass below is not for want of teeth."""
    refused = "PermissionError: [Errno 1] Operation not permitted"
    for properties, code, expected in (
        ("DevicePolicy=auto", OPEN_TUN, ("exited/0", "opened")),
        ("DevicePolicy=closed", OPEN_TUN, ("exited/1", refused)),
        ("MemoryDenyWriteExecute=no", WX_PAGE, ("exited/0", "mapped")),
        ("MemoryDenyWriteExecute=yes", WX_PAGE, ("exited/1", refused)),
        ("SystemCallFilter=", AFFINITY, ("exited/0", "set")),
    ):
        ended, said = transient(site, properties, code=code)
        assert ended == expected[0] and expected[1] in said, (properties, said)
    ended, said = transient(site, "SystemCallFilter=~@resources", code=AFFINITY)
    assert ended == "killed/SYS", said  # seccomp's SIGSYS, the unit's default action


def test_every_driver_runs_the_data_path_inside_the_sandbox(site: Site) -> None:
    """The shipped unit, no drop-in, six meters of four protocols for the soak: one
    process all along (no seccomp or MemoryDenyWriteExecute kill), every device up with
    no failed poll, every device's intervals delivered over mutual TLS, nothing at
    warning in the journal. The pseudo-terminals need no DeviceAllow= of their own:
    DevicePolicy=closed lets char-pts through (systemd src/core/bpf-devices.c)."""
    installed = site.box.root / "etc/systemd/system/edge-agent.service"
    assert installed.read_text() == SHIPPED.read_text()
    assert site.box.show(UNIT, "DropInPaths")["DropInPaths"] == ""
    site.write_config(agent_config(every_kind=True, interval=10))
    mark = site.box.mark()
    site.start()
    pid = site.main_pid()
    began = time.monotonic()
    while time.monotonic() < began + SOAK:
        assert (site.state()["ActiveState"], site.main_pid()) == ("active", pid)
        time.sleep(10)
    metrics = site.metrics()
    delivered = {r["device"] for r in site.delivered() if r["quality"] == "good"}
    state = site.state()
    journal = site.box.messages(unit=UNIT, after=mark)
    serial = site.box.sh(f"ls -l /proc/{pid}/fd | grep -o '/dev/pts/[0-9]*' | sort -u")
    assert (state["ActiveState"], state["NRestarts"], site.main_pid()) == ("active", "0", pid)
    assert not [line for line in journal if "status=31/SYS" in line or "code=killed" in line]
    for device in DEVICES:
        assert metrics[("edge_agent_device_up", device)] == 1, device
        assert metrics[("edge_agent_polls_total", device)] >= SOAK / 2, device
        assert metrics[("edge_agent_poll_errors_total", device)] == 0, device
    assert delivered == set(DEVICES)
    assert metrics[("edge_agent_sync_batches_total", "")] >= SOAK / 20
    assert metrics[("edge_agent_sync_failures_total", "")] == 0
    assert len(serial.split()) == 2  # the RTU line and the DL/T 645 line, both open
    assert (site.box.root / "var/lib/edge-agent/opcua/edge-agent.der").exists()
    assert site.attention(mark) == []


def test_the_exposure_rating_of_the_running_unit_is_2_or_lower(site: Site) -> None:
    """`systemd-analyze security edge-agent`, on the unit as loaded by the running
    systemd (not --offline), rates it 2.0 or better."""
    report = site.box.run("systemd-analyze", "security", UNIT, "--no-pager").stdout
    found = re.search(r"Overall exposure level for edge-agent\.service: (\d+\.\d+)", report)
    assert found, report
    assert float(found[1]) <= 2.0
