"""The DL/T 645 serial link: drivers/serial_link.py over this protocol's frames.

One port is opened once and shared by every DL/T 645 device configured on it;
why it is built as it is, is said in drivers/serial_link.py.
"""

from __future__ import annotations

from drivers import serial_link
from drivers.dlt645.codec import START, WILDCARD, Frame, mismatch, scan
from drivers.dlt645.settings import Dlt645

CODEC = serial_link.Codec[Frame]("dlt645", START, scan, mismatch, WILDCARD)
Link = serial_link.Link[Frame]


def attach(device: str, settings: Dlt645) -> Link:
    """The link of `settings.port`, created by the first device that names the port."""
    return serial_link.attach(CODEC, device, settings)


async def detach(link: Link) -> None:
    """One device is done with the link; the last one closes the port."""
    await serial_link.detach(link)


def shared(port: str) -> Link | None:
    """The link this process's DL/T 645 devices already hold on `port`, if any."""
    return serial_link.shared(CODEC, port)


def opened(port: str, baudrate: int, parity: str) -> Link:
    """A link of its own on `port` (a scan's, at one speed), closed by whoever opened it."""
    return serial_link.Link(CODEC, port, baudrate, parity)
