"""What keeps an unattended daemon honest: the watchdog, its progress check, the status file.

Progress means the event loop runs its jobs: every poll period's job and the
sync job get scheduled and finish. It does not mean that meters answer or that
the platform is up: a dead meter or a down uplink must never get the service
restarted (that would only lose the interval in progress). A loop stuck in a
blocking call runs no job and no watchdog task either, so the pings stop and
systemd restarts the service (WatchdogSec=). A stop or a reload goes on past a
driver that fails to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent import systemd
from drivers.base import Driver

log = logging.getLogger(__name__)

SNAPSHOT_NAME = "status.json"  # written by the daemon, read by `status`
SNAPSHOT_EVERY = 30.0  # seconds: small, atomic, never per poll
RUNTIME_DIR = Path("/run/edge-agent")  # the unit's RuntimeDirectory=: RAM, no flash wear


@dataclass(slots=True)
class Progress:
    """When each watched job last started or finished (monotonic seconds)."""

    allowance: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)

    def expect(self, job: str, allowance: float, now: float) -> None:
        """Watch `job`: it must run at least every `allowance` seconds from `now` on."""
        self.allowance[job] = allowance
        self.last.setdefault(job, now)

    def forget(self, job: str) -> None:
        self.allowance.pop(job, None)
        self.last.pop(job, None)

    def ran(self, job: str, now: float) -> None:
        if job in self.allowance:
            self.last[job] = now

    def stalled(self, now: float) -> list[str]:
        """What has not run within its allowance, in words; empty when all is well."""
        return [
            f"job '{job}' has not run for {now - self.last[job]:.0f}s (expected every "
            f"{allowance:.0f}s at most)"
            for job, allowance in self.allowance.items()
            if now - self.last[job] > allowance
        ]


async def watchdog(period: float, stalled: Callable[[], list[str]]) -> None:
    """Send WATCHDOG=1 every `period` seconds while nothing is stalled.

    Runs as a task on the event loop it vouches for. A stall is logged once
    when it starts and once when it ends; meanwhile the pings stop.
    """
    quiet = False
    while True:
        problems = stalled()
        if problems:
            if not quiet:
                log.error("watchdog: %s; pings stop, systemd will restart", "; ".join(problems))
            quiet = True
        else:
            if quiet:
                log.warning("watchdog: jobs run again; pings resume")
            quiet = False
            systemd.notify("WATCHDOG=1")
        await asyncio.sleep(period)


def snapshot_path(buffer_path: str | Path) -> Path:
    """Where the daemon writes its status file: the runtime directory under systemd
    (tmpfs: 36 KB every 30 s for 200 meters would be 100 MB a day on flash), else
    next to the buffer."""
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    return (
        Path(runtime.split(":")[0]) / SNAPSHOT_NAME
        if runtime
        else (Path(buffer_path).with_name(SNAPSHOT_NAME))
    )


def find_snapshot(buffer_path: str | Path) -> dict | None:
    """The newest status file of the daemon that owns this buffer, wherever it was written.

    `status` runs outside the unit, without RUNTIME_DIRECTORY, so it looks in
    both places and keeps only a file that names this buffer.
    """
    found = []
    for place in (RUNTIME_DIR / SNAPSHOT_NAME, Path(buffer_path).with_name(SNAPSHOT_NAME)):
        snap = read_snapshot(place)
        if snap and snap.get("buffer") == str(buffer_path) and "written" in snap:
            found.append(snap)
    return max(found, key=lambda snap: snap["written"], default=None)


def write_snapshot(path: Path, data: dict) -> None:
    """Replace the status file atomically (a reader sees the old or the new one, whole).

    Not fsynced: losing the last snapshot to a power cut costs nothing.
    """
    fd, tmp = tempfile.mkstemp(prefix=".status-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, ensure_ascii=False, separators=(",", ":"))
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_snapshot(path: Path) -> dict | None:
    """The daemon's last status file, or None if there is none (or it is unreadable)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


async def close_driver(name: str, driver: Driver) -> None:
    """Release a device's link. A driver that fails to is logged, once, and never stops
    a stop or a reload: the other links, the buffer and the new drivers come first."""
    try:
        await driver.close()
    except Exception as exc:
        log.warning("%s: closing its driver failed (%r); going on without it", name, exc)
