"""Helpers for tests that run the daemon as a subprocess and listen to it like systemd."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent.demo import demo_config


class NotifySocket:
    """A real AF_UNIX datagram socket, as systemd's NOTIFY_SOCKET, recording what arrives."""

    def __init__(self) -> None:
        self.address = f"@edge-agent-test-{secrets.token_hex(6)}"  # abstract: no path limit
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.address[1:])
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []  # (monotonic time, datagram)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def lines(self) -> list[str]:
        return [line for _, message in self.messages for line in message.splitlines()]

    def pings(self) -> list[float]:
        return [t for t, message in self.messages if "WATCHDOG=1" in message.splitlines()]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent_yaml(port: int, workdir: Path, *, devices: int = 3, http_port: int | None = None) -> str:
    """The demo's config (three meters on one simulator), trimmed to the first `devices`."""
    text = demo_config(port, "http://127.0.0.1:9", workdir, interval=2, poll="250ms", every="1s")
    blocks = re.split(r"(?m)^(?=  - name: )", text)
    text = "".join(blocks[: 1 + devices])
    listen = f"127.0.0.1:{http_port}" if http_port else "127.0.0.1:0"
    return text + f"http: {{listen: '{listen}', enabled: {str(http_port is not None).lower()}}}\n"


async def start_daemon(
    config: Path, log: Path, notify: NotifySocket, **env: str
) -> asyncio.subprocess.Process:
    environ = {**os.environ, "NOTIFY_SOCKET": notify.address, **env}
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", "run", "-c", str(config),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=environ,
            cwd=config.parent,  # a core file, if the test aborts it, stays in tmp_path
        )  # fmt: skip


async def wait_until(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Poll `predicate` (sync) until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def stop_daemon(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM and wait; a daemon that does not stop is killed (by its PID) and fails the test."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    return proc.returncode
