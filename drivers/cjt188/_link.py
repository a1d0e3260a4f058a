"""The CJ/T 188 serial link: drivers/serial_link.py over this protocol's frames.

One port is opened once and shared by every CJ/T 188 device configured on it;
why it is built as it is, is said in drivers/serial_link.py.
"""

from __future__ import annotations

from drivers import serial_link
from drivers.cjt188.codec import START, WILDCARD, Frame, mismatch, scan
from drivers.cjt188.settings import Cjt188

CODEC = serial_link.Codec[Frame]("cjt188", START, scan, mismatch, WILDCARD)
Link = serial_link.Link[Frame]


def attach(device: str, settings: Cjt188) -> Link:
    """The link of `settings.port`, created by the first device that names the port."""
    return serial_link.attach(CODEC, device, settings)


async def detach(link: Link) -> None:
    """One device is done with the link; the last one closes the port."""
    await serial_link.detach(link)
