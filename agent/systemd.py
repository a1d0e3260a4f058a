"""The sd_notify protocol: a few datagrams to $NOTIFY_SOCKET, nothing more.

Without the variable (not under systemd, or Type=simple) every call is a no-op.
The watchdog ping is sent by a task on the event loop (agent/service.py), so a
loop stuck in a blocking call stops pinging and systemd restarts the service.
"""

from __future__ import annotations

import os
import socket


def notify(*lines: str) -> bool:
    """Send `READY=1`, `STATUS=...`, `STOPPING=1` ... in one datagram; True if sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto("\n".join(lines).encode(), address)
        except OSError:
            return False
    return True


def watchdog_seconds() -> float | None:
    """The watchdog timeout systemd expects pings within (WatchdogSec=), or None.

    Like sd_watchdog_enabled(): WATCHDOG_PID, when set, must be this process,
    so a child that inherited the environment does not ping for its parent.
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6
