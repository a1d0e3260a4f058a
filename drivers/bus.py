"""One transaction at a time on a shared serial line.

Every meter on an RS-485 pair hears every frame, so two requests in flight
would garble each other. Drivers that speak on a serial port take the port's
lock for each request-and-reply; one lock per port, whatever the protocol.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_PER_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict] = weakref.WeakKeyDictionary()


def per_port(kind: str, port: str, make: Callable[[], T]) -> T:
    """The one `kind` object (a lock, a shared connection) of a port, in this event loop.

    Keyed by the device's real path, so /dev/serial/by-id/... symlinks share
    their target's; and by event loop, since asyncio objects belong to one.
    """
    loop = asyncio.get_running_loop()
    objects = _PER_LOOP.setdefault(loop, {})
    key = (kind, os.path.realpath(port))
    if key not in objects:
        objects[key] = make()
    return objects[key]


def forget(kind: str, port: str) -> None:
    """Drop a port's object (its last user closed it)."""
    objects = _PER_LOOP.get(asyncio.get_running_loop(), {})
    objects.pop((kind, os.path.realpath(port)), None)


def lock_for(port: str) -> asyncio.Lock:
    """The lock of a serial port: held for one request and its reply."""
    return per_port("lock", port, asyncio.Lock)
