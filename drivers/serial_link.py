"""One serial port, opened once and shared by every device of one protocol configured on it.

Used by DL/T 645 and CJ/T 188, whose frames both begin with 68H and are hunted
for the same way; a `Codec` brings what differs (the start byte, the frame
scanner, the test of whether a frame answers a request, the wildcard address).

Why not a thread per blocking call: a cancelled `to_thread` read keeps its
thread (and the port) busy until pyserial's own timeout, and closing the port
under it races. Instead pyserial only opens and configures the port (baud
rate, parity, raw mode, an exclusive lock); its file descriptor is non-blocking
and the event loop watches it with `add_reader` during each exchange. A
request is one `os.write` of a few dozen bytes; a reply is gathered as it
arrives and `asyncio.timeout` bounds the wait, so a silent meter costs its own
timeout and never blocks the loop. This needs a selector event loop, which is
what asyncio uses on Linux.

Every exchange holds the port's lock (drivers.bus.lock_for, the one lock of
the port whatever the protocol) from the flush of stale input to the reply,
so meters sharing an RS-485 pair or M-Bus converter are asked in turn.

The answer is the first frame that fits the request, not the first frame
heard: a neighbour that answers just after its own timeout, the meter's late
answer to its previous question (DI, serial number), or a garbled frame are
skipped and the wait goes on until the request's own deadline. Should that
pass, the timeout says what was heard instead ("no reply within 1s; heard a
reply from meter 000000000002").

The links are kept per protocol and port (`attach`, `detach`, `shared`): the
devices of one protocol on a port share its link; two protocols on one port
would each open it, and the second is refused ("in use by another program").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import termios
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import serial

from domain.errors import DeviceTimeout, Disconnected, FrameError
from drivers.bus import lock_for
from drivers.bus import port_trouble as _why

log = logging.getLogger(__name__)

_SHOWN = 24  # received bytes quoted in a timeout message, to diagnose baud rate and parity
_KINDS = 3  # kinds of skipped frames a timeout message names, the latest ones


class Frame(Protocol):
    """What the link needs of a protocol's frame."""

    @property
    def address(self) -> str: ...

    @property
    def is_reply(self) -> bool: ...

    def encode(self) -> bytes: ...


F = TypeVar("F", bound=Frame)


@dataclass(frozen=True)  # no slots: a slotted generic dataclass cannot be made as Codec[F](...)
class Codec(Generic[F]):
    """What a protocol's codec brings to the link."""

    name: str  # the protocol, which keeps its links apart from another protocol's
    start: int  # the start byte of a frame
    scan: Callable[[bytes], tuple[F | FrameError | None, int]]  # codec.scan
    mismatch: Callable[[F, F], str | None]  # why a frame is not the answer, or None
    wildcard: str  # the address any meter answers


class LineSettings(Protocol):
    """A device's serial line settings, as its protocol's settings model holds them."""

    @property
    def port(self) -> str: ...

    @property
    def baudrate(self) -> int: ...

    @property
    def parity(self) -> str: ...


class Link(Generic[F]):
    """A serial port at one speed; opened on first use and again after it failed."""

    def __init__(self, codec: Codec[F], port: str, baudrate: int, parity: str) -> None:
        self.codec = codec
        self.port = port
        self.baudrate = baudrate
        self.parity = parity
        self.key = (codec.name, os.path.realpath(port))
        self.users = 0
        self._serial: serial.Serial | None = None
        self._rx = bytearray()
        self._garbled = 0  # leading bytes of _rx left of a garbled frame already reported
        self._failure: OSError | None = None

    @property
    def settings(self) -> str:
        return f"{self.baudrate} 8{self.parity}1"

    async def exchange(self, request: F, timeout: float) -> F:
        """Send `request` and return the first reply frame that answers it.

        Frames that answer something else (another meter, another function,
        another DI) and garbled frames are skipped until `timeout` has passed.
        Raises Disconnected (port missing, unplugged, refused) or DeviceTimeout
        (no answer in time; the message says what was heard instead).
        """
        wire = request.encode()
        async with lock_for(self.port):
            port = self._open()
            fd = port.fileno()
            loop = asyncio.get_running_loop()
            arrived = asyncio.Event()
            heard: dict[str, str] = {}  # what was skipped, by kind, the latest last
            failure: BaseException | None = None
            try:
                self._flush(port, fd)
                loop.add_reader(fd, self._on_readable, fd, arrived)
                async with asyncio.timeout(timeout):
                    await _write(fd, wire)
                    return await self._reply(request, arrived, heard)
            except TimeoutError as exc:
                raise DeviceTimeout(self._silence(request, timeout, heard)) from exc
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

    def _flush(self, port: serial.Serial, fd: int) -> None:
        """Drop what arrived since the last exchange: late or garbled replies, noise."""
        port.reset_input_buffer()
        dropped = 0
        while True:  # whatever the driver's flush left behind (a pty, a slow adapter)
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                break
            if not chunk:
                break
            dropped += len(chunk)
        if dropped:
            log.debug("%s: dropped %d stale bytes before a request", self.port, dropped)
        self._rx.clear()
        self._garbled = 0
        self._failure = None

    async def _reply(self, request: F, arrived: asyncio.Event, heard: dict[str, str]) -> F:
        """The first frame in the input that answers `request`; what it skips goes in `heard`."""
        while True:
            found, used = self.codec.scan(bytes(self._rx))
            if isinstance(found, FrameError):
                # Resynchronise just past the start byte, not past the bad frame's end:
                # a false start in noise may announce a length that runs into the reply.
                after = self._rx.index(self.codec.start) + 1
                del self._rx[:after]
                self._garbled = max(self._garbled - after, used - after)
                why = str(found).removeprefix("garbled reply: ")
                _note(heard, "garbled", f"a garbled frame: {why}")
                continue
            if found is not None:
                del self._rx[:used]
                self._garbled = max(self._garbled - used, 0)
                if not found.is_reply:
                    continue  # our own request, echoed by a half-duplex adapter
                wrong = self.codec.mismatch(request, found)
                if wrong is None:
                    return found
                _note(heard, wrong, wrong)
                continue
            if self._failure is not None:
                raise self._failure
            arrived.clear()
            await arrived.wait()

    def _silence(self, request: F, timeout: float, heard: dict[str, str]) -> str:
        """No answer: what was heard instead, and bytes that were not a frame (a wrong speed?).

        The remains of a garbled frame, already reported as such, are not quoted again.
        """
        noise = self._rx[self._garbled :]
        if not noise:
            text = f"no reply within {timeout:g}s"
        else:
            shown = bytes(noise[:_SHOWN]).hex(" ").upper() + (" ..." if len(noise) > _SHOWN else "")
            text = (
                f"no complete reply within {timeout:g}s, only {len(noise)} bytes ({shown}): "
                f"check that the meter is set to {self.settings}"
            )
        if heard:
            latest = list(heard.values())[-_KINDS:]
            text += "; heard " + (", ".join(latest[:-1]) + " and " if len(latest) > 1 else "")
            text += latest[-1]
            if "garbled" in heard and request.address == self.codec.wildcard:
                text += "; is more than one meter on the line?"
        return text


def _note(heard: dict[str, str], kind: str, text: str) -> None:
    """Remember `text` under `kind`, moved to the end: the latest of each kind, in order."""
    heard.pop(kind, None)
    heard[kind] = text


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


# --- the registry: one link per protocol and port ------------------------------------

_LINKS: dict[tuple[str, str], Link[Any]] = {}


def attach(codec: Codec[F], device: str, line: LineSettings) -> Link[F]:
    """The link of `line.port`, created by the first device of the protocol that names it."""
    link: Link[F] | None = shared(codec, line.port)
    if link is None:
        link = Link(codec, line.port, line.baudrate, line.parity)
        _LINKS[link.key] = link
    elif (link.baudrate, link.parity) != (line.baudrate, line.parity):
        log.warning(
            "%s: %s is already used at %s; this device's %d 8%s1 is ignored",
            device, line.port, link.settings, line.baudrate, line.parity,
        )  # fmt: skip
    link.users += 1
    return link


def shared(codec: Codec[F], port: str) -> Link[F] | None:
    """The link this process's devices of `codec`'s protocol already hold on `port`, if any
    (a scan asks through it, at its speed, rather than open the port again)."""
    return _LINKS.get((codec.name, os.path.realpath(port)))


async def detach(link: Link[Any]) -> None:
    """One device is done with the link; the last one closes the port."""
    link.users -= 1
    if link.users <= 0 and _LINKS.get(link.key) is link:
        del _LINKS[link.key]
        await link.close()
