"""One transaction at a time on a shared serial line.

Every meter on an RS-485 pair hears every frame, so two requests in flight
would garble each other. Drivers that speak on a serial port take the port's
lock for each request-and-reply; one lock per port, whatever the protocol.
"""

from __future__ import annotations

import asyncio
import os

_LOCKS: dict[str, asyncio.Lock] = {}


def lock_for(port: str) -> asyncio.Lock:
    """The lock of a serial port; symlinks (/dev/serial/by-id/...) share their target's."""
    key = os.path.realpath(port)
    lock = _LOCKS.get(key)
    if lock is None:
        lock = _LOCKS[key] = asyncio.Lock()
    return lock
