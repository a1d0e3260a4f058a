"""CJ/T 188 driver: one water, heat or gas meter on a serial port it may share.

One request per data identifier (DI), whatever number of points read its
fields: a 901F reply carries every value of the meter at once. Every failure
becomes a bad reading whose reason names the device, the meter address and
the DI, e.g. `heat1 meter 00000012345678 DI 901F: no reply within 1.5s`. The
seam to the outside is `_link` (drivers/serial_link.py), where pyserial's and
the OS's errors become Disconnected or DeviceTimeout; the codec raises domain
errors of its own (FrameError, DecodeError, DeviceRejected); `located` is the
one place every error gets the device, meter and DI it concerns. The poll is
drivers/di_reads.py, shared with DL/T 645.

Units: a value field comes with the meter's unit code, and is converted into
the unit the point is written in (kWh, GJ, m3 ...). A meter that changes its
unit (heat meters step from kWh to MWh as the count grows) therefore keeps
reporting the same quantity; a code that is unknown, or of another kind
(a volume where heat was expected), makes the point bad and says the code,
never a mis-scaled number.

A meter that stays silent before answering anything in a poll is taken as
dead, and the poll's other DIs are marked bad without asking, so it costs one
timeout while the meters sharing its bus wait.
"""

from __future__ import annotations

from collections.abc import Mapping

from domain.errors import EdgeAgentError
from domain.reading import Reading
from drivers.cjt188 import _link
from drivers.cjt188.codec import (
    WILDCARD,
    check_type,
    decode_field,
    meter_address,
    read_address,
    read_data,
    reply_data,
)
from drivers.cjt188.settings import Cjt188Device, Cjt188Point
from drivers.cjt188.tables import METER_TYPES, family_of
from drivers.di_reads import DiRequest, located, plan, read_all, summary

_NAMES = {code: name for name, code in METER_TYPES.items()}


def type_name(code: int) -> str:
    """'20H (heat)'."""
    name = _NAMES.get(code) or family_of(code) or "unknown"
    return f"{code:02X}H ({name})"


class Cjt188Driver:
    def __init__(self, device: Cjt188Device) -> None:
        link = device.cjt188
        self.device = device.name
        self.address = link.address
        self.meter_type = link.type_code
        self.requests = plan(device.points)
        self._high_first = link.high_first
        self._timeout = link.timeout
        self._link = _link.attach(device.name, link)
        self._attached = True
        self._ser = 0

    def describe(self) -> str:
        meter = f"{type_name(self.meter_type)} meter {self.address}"
        if self.address == WILDCARD:
            meter += " (any: the only meter on the link)"
        return (
            f"{self.device}: {summary(self.requests)} on {self._link.port} "
            f"@{self._link.settings}, {meter}"
        )

    async def read(self) -> list[Reading]:
        """Every point once; never raises (failures are bad readings with their reason)."""
        return await read_all(self.device, self.address, self.requests, self._read_di, self._value)

    async def identify(self) -> Mapping[str, str]:
        """The address and type of the one meter on the link, asked with the wildcard
        address (read address, 03H, DI 810AH). With several meters on the bus they all
        answer at once, and the timeout names the garbled frame heard.
        Raises DeviceTimeout, Disconnected, DeviceRejected or BadReply."""
        where = f"{self.device} on {self._link.port}"
        request = read_address(self.meter_type, self._next_ser(), self._high_first)
        try:
            reply = await self._link.exchange(request, self._timeout)
            reply_data(request, reply)  # an abnormal reply raises here
            return {"address": meter_address(reply), "type": type_name(reply.meter_type)}
        except EdgeAgentError as exc:
            raise located(exc, where) from exc

    async def close(self) -> None:
        if self._attached:
            self._attached = False
            await _link.detach(self._link)

    # --- one DI ---------------------------------------------------------------------

    def _next_ser(self) -> int:
        self._ser = (self._ser + 1) & 0xFF
        return self._ser

    async def _read_di(self, di: str, where: str) -> bytes:
        """The data of `di` after its DI and SER, from a reply proven to answer it."""
        try:
            request = read_data(
                self.meter_type, self.address, di, self._next_ser(), self._high_first
            )
            reply = await self._link.exchange(request, self._timeout)
            data = reply_data(request, reply)
            check_type(self.meter_type, reply)
            return data
        except EdgeAgentError as exc:
            raise located(exc, where) from exc

    # --- readings -----------------------------------------------------------------

    def _value(self, request: DiRequest[Cjt188Point], data: bytes, point: Cjt188Point) -> float:
        value = decode_field(data, request.di, self.meter_type, point.field, point.unit)
        return value * point.scale + point.offset
