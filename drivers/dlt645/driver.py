"""DL/T 645 driver (2007 or 1997): one meter address on a serial port it may share.

One request per data identifier (DI), each answered, checked and decoded on its
own: a DI the meter lacks spoils only its points. Every failure becomes a bad
reading whose reason names the device, the meter address and the DI, e.g.
`workshop3 meter 000012345678 DI 00010000: error reply: no requested data (DI
not supported)`. The seam to the outside is `_link` (drivers/serial_link.py), where
pyserial's and the OS's errors become Disconnected or DeviceTimeout; the
codec raises domain errors of its own (FrameError, DecodeError,
DeviceRejected); `located` is the one place every error gets the device,
meter and DI it concerns. The poll is drivers/di_reads.py, shared with CJ/T 188.

A reply that answers something else (a neighbour's late reply, this meter's
late reply to its previous DI, a garbled frame) is skipped by the link, which
goes on waiting for the answer until the timeout. A meter that stays silent
before answering anything in a poll is taken as dead, and the poll's other
DIs are marked bad without asking, so it costs one timeout while the meters
sharing its bus wait. Once it has answered, a silent DI costs its own timeout
only: some meters ignore DIs they lack instead of sending an error reply.

The device's `edition` chooses the function codes and DI length of its
requests (codec.Edition); a 1997 and a 2007 meter can share one port, since
each ignores the other's requests. `identify` asks in the device's edition
first and then in the other, and says which one answered.
"""

from __future__ import annotations

from domain.errors import BadReply, DeviceTimeout, EdgeAgentError
from domain.reading import Reading
from drivers.di_reads import DiRequest, located, plan, read_all, summary
from drivers.dlt645 import _link
from drivers.dlt645.codec import (
    EDITION_1997,
    EDITION_2007,
    EDITIONS,
    MAX_FOLLOW_UPS,
    WILDCARD,
    Edition,
    decode_point,
    meter_address,
    read_address,
    read_data,
    read_follow_up,
    reply_data,
)
from drivers.dlt645.settings import Dlt645Device, Dlt645Point, edition_of


class Dlt645Driver:
    def __init__(self, device: Dlt645Device) -> None:
        self.device = device.name
        self.address = device.dlt645.address
        self.edition = EDITIONS[str(edition_of(device))]
        self.requests = plan(device.points)
        self._timeout = device.dlt645.timeout
        self._link = _link.attach(device.name, device.dlt645)
        self._attached = True

    def describe(self) -> str:
        meter = f"meter {self.address}"
        if self.address == WILDCARD:
            meter += " (any: the only meter on the link)"
        if self.edition is EDITION_1997:
            meter += ", DL/T 645-1997"
        return (
            f"{self.device}: {summary(self.requests)} on {self._link.port} "
            f"@{self._link.settings}, {meter}"
        )

    async def read(self) -> list[Reading]:
        """Every point once; never raises (failures are bad readings with their reason)."""
        return await read_all(self.device, self.address, self.requests, self._read_di, _value)

    async def identify(self) -> dict[str, str]:
        """The address of the one meter on the link and the edition it answered in.

        Asked with the wildcard address, in the device's edition first, then in
        the other if that gets no reply: 2007 has "read communication address"
        (0x13); 1997 has none, so it is asked for its forward active energy
        (9010) and its address is the one its reply frame carries. For `probe`
        on a point-to-point link; with several meters on the bus they all
        answer at once, and the timeout names the garbled frame heard and asks
        whether more than one meter is on the line.
        Raises DeviceTimeout, Disconnected, DeviceRejected or BadReply.
        """
        where = f"{self.device} on {self._link.port}"
        other = EDITION_1997 if self.edition is EDITION_2007 else EDITION_2007
        silent: DeviceTimeout | None = None  # the first edition's, which names what was heard
        for edition in (self.edition, other):
            try:
                return {"address": await self._identify_in(edition), "edition": edition.name}
            except DeviceTimeout as exc:
                silent = silent or exc
            except EdgeAgentError as exc:
                raise located(exc, where) from exc
        assert silent is not None
        raise located(silent, where) from silent

    async def _identify_in(self, edition: Edition) -> str:
        if edition is EDITION_2007:
            request = read_address()
            reply = await self._link.exchange(request, self._timeout)
            reply_data(request, reply)  # an error reply raises here
            return meter_address(reply)
        request = read_data(WILDCARD, "9010", EDITION_1997)
        reply = await self._link.exchange(request, self._timeout)
        if not reply.address.isdigit():
            raise BadReply(f"reply from address {reply.address}, not 12 BCD digits")
        return reply.address  # an error reply tells the meter's address as well

    async def close(self) -> None:
        if self._attached:
            self._attached = False
            await _link.detach(self._link)

    # --- one DI ---------------------------------------------------------------------

    async def _read_di(self, di: str, where: str) -> bytes:
        """The value bytes of `di`, gathered from follow-up frames when the meter splits them."""
        try:
            request = read_data(self.address, di, self.edition)
            reply = await self._link.exchange(request, self._timeout)
            value = reply_data(request, reply)
            for seq in range(1, MAX_FOLLOW_UPS + 1):
                if not reply.follows:
                    return value
                request = read_follow_up(self.address, di, seq, self.edition)
                reply = await self._link.exchange(request, self._timeout)
                value += reply_data(request, reply)
            raise BadReply(f"more than {MAX_FOLLOW_UPS} follow-up frames")
        except EdgeAgentError as exc:
            raise located(exc, where) from exc


def _value(request: DiRequest[Dlt645Point], value: bytes, point: Dlt645Point) -> float:
    return decode_point(value, point)
