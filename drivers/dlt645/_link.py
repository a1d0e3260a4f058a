"""One serial port, opened once and shared by every DL/T 645 device configured on it.

Why not a thread per blocking call: a cancelled `to_thread` read keeps its
thread (and the port) busy until pyserial's own timeout, and closing the port
under it races. Instead pyserial only opens and configures the port (baud
rate, parity, raw mode, an exclusive lock); its file descriptor is non-blocking
and the event loop watches it with `add_reader` during each exchange. A
request is one `os.write` of a few dozen bytes; a reply is gathered as it
arrives and `asyncio.timeout` bounds the wait, so a silent meter costs its own
timeout and never blocks the loop. This needs a selector event loop, which is
what asyncio uses on Linux.

Every exchange holds the port's lock (drivers.bus.lock_for) from the flush of
stale input to the reply, so meters sharing an RS-485 pair are asked in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import termios

import serial

from agent.errors import DeviceTimeout, Disconnected
from config.models import Dlt645
from drivers.bus import lock_for
from drivers.dlt645.codec import Frame, FrameError, scan

log = logging.getLogger(__name__)

_SHOWN = 24  # received bytes quoted in a timeout message, to diagnose baud rate and parity


class Link:
    """A serial port at one speed; opened on first use and again after it failed."""

    def __init__(self, port: str, baudrate: int, parity: str, key: str) -> None:
        self.port = port
        self.baudrate = baudrate
        self.parity = parity
        self.key = key
        self.users = 0
        self._serial: serial.Serial | None = None
        self._rx = bytearray()
        self._failure: OSError | None = None

    @property
    def settings(self) -> str:
        return f"{self.baudrate} 8{self.parity}1"

    async def exchange(self, request: bytes, timeout: float) -> Frame:
        """Send `request` and return the first reply frame (a frame sent by a meter).

        Raises Disconnected (port missing, unplugged, refused), DeviceTimeout
        (no complete reply in time) or FrameError (a garbled reply).
        """
        async with lock_for(self.port):
            port = self._open()
            fd = port.fileno()
            loop = asyncio.get_running_loop()
            arrived = asyncio.Event()
            failure: BaseException | None = None
            try:
                port.reset_input_buffer()  # stale bytes of an earlier, garbled or late reply
                self._rx.clear()
                self._failure = None
                loop.add_reader(fd, self._on_readable, fd, arrived)
                async with asyncio.timeout(timeout):
                    await _write(fd, request)
                    return await self._reply(arrived)
            except TimeoutError as exc:
                raise DeviceTimeout(self._silence(timeout)) from exc
            except (OSError, termios.error) as exc:  # SerialException is an OSError
                failure = exc
            finally:
                loop.remove_reader(fd)
        self._shut()
        raise Disconnected(f"{self.port}: {_why(failure, self.settings)}") from failure

    async def close(self) -> None:
        async with lock_for(self.port):
            self._shut()

    def _open(self) -> serial.Serial:
        if self._serial is None:
            try:
                self._serial = serial.Serial(
                    self.port,
                    self.baudrate,
                    bytesize=serial.EIGHTBITS,
                    parity=self.parity,
                    stopbits=serial.STOPBITS_ONE,
                    timeout=0,
                    write_timeout=0,
                    exclusive=True,  # a second program on the bus would garble every frame
                )
            except (OSError, termios.error, ValueError) as exc:
                raise Disconnected(
                    f"cannot open {self.port} at {self.settings}: {_why(exc, self.settings)}"
                ) from exc
            log.info("opened %s at %s", self.port, self.settings)
        return self._serial

    def _shut(self) -> None:
        if self._serial is not None:
            serial_port, self._serial = self._serial, None
            with contextlib.suppress(OSError):  # an unplugged adapter may fail even this
                serial_port.close()

    def _on_readable(self, fd: int, arrived: asyncio.Event) -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            chunk, self._failure = b"", exc
        if not chunk:  # end of file or an error: the adapter is gone
            self._failure = self._failure or OSError(errno.EIO, "the port was closed")
            asyncio.get_running_loop().remove_reader(fd)  # it would stay readable forever
        self._rx += chunk
        arrived.set()

    async def _reply(self, arrived: asyncio.Event) -> Frame:
        while True:
            found, used = scan(bytes(self._rx))
            if isinstance(found, FrameError):
                raise found
            if isinstance(found, Frame):
                del self._rx[:used]
                if found.is_reply:
                    return found
                continue  # our own request, echoed by a half-duplex adapter
            if self._failure is not None:
                raise self._failure
            arrived.clear()
            await arrived.wait()

    def _silence(self, timeout: float) -> str:
        """No reply; bytes that were not a frame (echoes are consumed) hint at a wrong speed."""
        if not self._rx:
            return f"no reply within {timeout:g}s"
        shown = bytes(self._rx[:_SHOWN]).hex(" ").upper() + (
            " ..." if len(self._rx) > _SHOWN else ""
        )
        return (
            f"no complete reply within {timeout:g}s, only {len(self._rx)} bytes ({shown}): "
            f"check that the meter is set to {self.settings}"
        )


async def _write(fd: int, data: bytes) -> None:
    """Write all of `data` without blocking the loop (a full buffer waits for room)."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            room = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().add_writer(fd, room.set_result, None)
            try:
                await room
            finally:
                asyncio.get_running_loop().remove_writer(fd)


def _why(exc: BaseException | None, settings: str) -> str:
    """A technician's reading of an OS error on a serial port."""
    code = getattr(exc, "errno", None)
    if code is None and isinstance(exc, termios.error) and exc.args:
        code = exc.args[0]
    text = str(exc)
    if code == errno.ENOENT:
        return "no such device (is the USB-RS485 adapter plugged in? see ls /dev/serial/by-id)"
    if code == errno.EACCES:
        return "permission denied (the agent's user needs the dialout group)"
    if code == errno.EBUSY or "exclusively lock" in text:
        return "in use by another program"
    if code == errno.EINVAL and isinstance(exc, termios.error):
        return f"the port refuses {settings}"
    if code == errno.EIO:
        return "input/output error (adapter unplugged?); reopened at the next poll"
    return os.strerror(code) if isinstance(code, int) else text


# --- the per-port registry ---------------------------------------------------------

_LINKS: dict[str, Link] = {}


def attach(device: str, settings: Dlt645) -> Link:
    """The link of `settings.port`, created by the first device that names the port."""
    key = os.path.realpath(settings.port)
    link = _LINKS.get(key)
    if link is None:
        link = _LINKS[key] = Link(settings.port, settings.baudrate, settings.parity, key)
    elif (link.baudrate, link.parity) != (settings.baudrate, settings.parity):
        log.warning(
            "%s: %s is already used at %s; this device's %d 8%s1 is ignored",
            device, settings.port, link.settings, settings.baudrate, settings.parity,
        )  # fmt: skip
    link.users += 1
    return link


async def detach(link: Link) -> None:
    """One device is done with the link; the last one closes the port."""
    link.users -= 1
    if link.users <= 0 and _LINKS.get(link.key) is link:
        del _LINKS[link.key]
        await link.close()
