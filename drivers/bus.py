"""One transaction at a time on a shared serial line, and why a port will not open.

Every meter on an RS-485 pair hears every frame, so two requests in flight
would garble each other. Drivers that speak on a serial port take the port's
lock for each request-and-reply; one lock per port, whatever the protocol.
"""

from __future__ import annotations

import asyncio
import errno
import os
import termios
import weakref
from collections.abc import Callable
from typing import TypeVar

import serial

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


def port_trouble(exc: BaseException | None, settings: str) -> str:
    """A technician's reading of an OS error on a serial port (`settings`: "2400 8E1")."""
    code = getattr(exc, "errno", None)
    if code is None and isinstance(exc, termios.error) and exc.args:
        code = exc.args[0]
    text = str(exc)
    if code == errno.ENOENT:
        return "no such device (is the USB-RS485 adapter plugged in? see ls /dev/serial/by-id)"
    if code == errno.EACCES:
        return "permission denied (the agent's user needs the dialout group)"
    # pyserial's exclusive open takes a flock: held by another program, it fails with EAGAIN
    if code == errno.EBUSY or "exclusively lock" in text:
        return "in use by another program"
    if code == errno.EINVAL and isinstance(exc, termios.error):
        return f"the port refuses {settings}"
    if code == errno.EIO:
        return "input/output error (adapter unplugged?); reopened at the next poll"
    return os.strerror(code) if isinstance(code, int) else text


def why_unopened(port: str, baudrate: int, settings: str) -> str | None:
    """Why `port` cannot be opened now, asked of the OS by opening it as the drivers do
    (exclusively) and closing it at once; None if it opens. For a library that only
    says that it failed (pymodbus's connect returns False)."""
    try:
        opened = serial.Serial(port, baudrate, timeout=0, exclusive=True)
    except (OSError, termios.error, ValueError) as exc:  # SerialException is an OSError
        return port_trouble(exc, settings)
    opened.close()
    return None
