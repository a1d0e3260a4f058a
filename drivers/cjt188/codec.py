"""CJ/T 188 frames and values: pure functions over bytes, no I/O.

A frame on the wire (the data-link layer: CJ/T 188-2018 §6; the sources of
every table are in drivers/cjt188/tables.py):

    [FE ...] 68 T A0..A6 C L DATA(L) CS 16

T is the meter type, A0..A6 the address, 14 BCD digits sent low byte first
(AAH bytes are wildcards, 99H x 7 the broadcast), C the control code (D7
direction, 1 = reply; D6 1 = abnormal reply; D4..D0 the function: 01H read
data, 03H read address; D5, as ng-gateway reads it, a reply continued in
another frame, which no data read here needs: such a first part fails the
layout's length check, by name), L the length of DATA, and CS the sum
modulo 256 of every byte from 68 to the last data byte. Unlike DL/T 645
the data is sent as it is (no 33H added). Wake-up bytes FEH before a frame
are skipped; four are sent, as the DL/T 645 link does.

A read request's data is DI0 DI1 SER (the application layer, 2018 §8): the
data identifier and a serial number the reply echoes. The 2004 edition
writes DI0 DI1 as 90H 1FH, the 2018 edition sends the low byte 1FH first;
meters of both kinds answer in the field, so a reply's DI is accepted in
either order (mismatch below).
An abnormal reply (C = C1H) carries SER and the status ST.

`Frame` holds the address as printed on the meter (A6..A0), so nothing above
this module sees wire order. Anything that is not a frame raises FrameError,
anything that is not a value DecodeError; both are BadReply: a quality flag,
never a number.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import BadReply, DecodeError, DeviceRejected, FrameError
from drivers.cjt188.tables import STATUS_FIELDS, Slot, convert, family_of, layout_of
from drivers.framing import END as END  # the frame's bytes, named here for its users
from drivers.framing import PREAMBLE as PREAMBLE
from drivers.framing import START, Layout, framed

HEADER = 11  # 68, T, seven address bytes, C, L
READ_DATA, READ_ADDRESS = 0x01, 0x03
REPLY, ABNORMAL = 0x80, 0x40  # control code bits D7, D6
FUNCTION = 0x1F  # D4..D0; D5: "more frames follow" (the module's docstring)
ADDRESS_DI = "810A"  # the read-address data identifier
WILDCARD = "AA" * 7


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: `address` as printed (A6..A0, "00000012345678"), `data` as sent."""

    meter_type: int
    address: str
    control: int
    data: bytes = b""

    @property
    def function(self) -> int:
        return self.control & FUNCTION

    @property
    def is_reply(self) -> bool:
        return bool(self.control & REPLY)

    @property
    def is_abnormal(self) -> bool:
        return bool(self.control & ABNORMAL)

    def encode(self, *, preamble: bool = True) -> bytes:
        if len(self.data) > 255:
            raise ValueError(f"{len(self.data)} data bytes do not fit in one frame (255 at most)")
        body = (
            bytes([START, self.meter_type])
            + address_to_wire(self.address)
            + bytes([self.control, len(self.data)])
            + self.data
        )
        return framed(body, preamble=preamble)


# --- addresses and data identifiers -------------------------------------------


def address_to_wire(address: str) -> bytes:
    """ "00000012345678" -> 78 56 34 12 00 00 00 (A0 first)."""
    if len(address) != 14:
        raise ValueError(f"a meter address has 14 digits (got {address!r})")
    return bytes.fromhex(address)[::-1]


def address_from_wire(wire: bytes) -> str:
    return wire[::-1].hex().upper()


def address_matches(asked: str, answered: str) -> bool:
    """The reply comes from the meter asked; an AA byte in the request matches any byte."""
    pairs = zip(_bytes(asked.upper()), _bytes(answered.upper()), strict=True)
    return all(a == "AA" or a == b for a, b in pairs)


def _bytes(address: str) -> list[str]:
    return [address[i : i + 2] for i in range(0, len(address), 2)]


def di_to_wire(di: str, high_first: bool) -> bytes:
    """ "901F" -> 90 1F (2004) or 1F 90 (2018)."""
    wire = bytes.fromhex(di)
    if len(wire) != 2:
        raise ValueError(f"a data identifier has 4 hex digits (got {di!r})")
    return wire if high_first else wire[::-1]


def di_matches(di: str, wire: bytes) -> bool:
    """The echoed DI is `di`, in either byte order (makers differ, see the module doc)."""
    asked = bytes.fromhex(di)
    return wire in (asked, asked[::-1])


def describe_status(st: bytes) -> str:
    """ST read as the standard's bits: 'valve closed; battery low'."""
    if not st:
        return "no status given"
    first = st[0]
    valve = {0: "valve open", 1: "valve closed", 2: "valve state 10 (undefined)", 3: "valve fault"}
    reasons = [valve[first & 0x03]]
    if first & 0x04:
        reasons.append("battery low")
    rest = int.from_bytes(st, "little") & ~0x07
    if rest:
        reasons.append(f"maker's bits {rest:04X}H")
    return "; ".join(reasons)


# --- requests ------------------------------------------------------------------


def read_data(meter_type: int, address: str, di: str, ser: int, high_first: bool) -> Frame:
    return Frame(meter_type, address, READ_DATA, di_to_wire(di, high_first) + bytes([ser & 0xFF]))


def read_address(meter_type: int, ser: int, high_first: bool) -> Frame:
    """Ask the one meter on the line its address: wildcard address, DI 810AH."""
    data = di_to_wire(ADDRESS_DI, high_first) + bytes([ser & 0xFF])
    return Frame(meter_type, WILDCARD, READ_ADDRESS, data)


# --- parsing -------------------------------------------------------------------


def _frame(body: bytes) -> Frame:
    """A checked body (68 through the last data byte) as a Frame."""
    return Frame(body[1], address_from_wire(body[2:9]), body[9], bytes(body[HEADER:]))


# 68, T, seven address bytes, C, L: the shared hunt (drivers/framing.py)
_LAYOUT = Layout(HEADER, None, "68, type, address ... 16", _frame)


def scan(buffer: bytes) -> tuple[Frame | FrameError | None, int]:
    """The first frame in `buffer` or a FrameError, and the bytes used (framing.Layout.scan)."""
    return _LAYOUT.scan(buffer)


def parse(data: bytes) -> Frame:
    """The first frame in `data` (any leading FE and junk skipped), or FrameError."""
    return _LAYOUT.parse(data)


# --- replies ---------------------------------------------------------------------


def mismatch(request: Frame, reply: Frame) -> str | None:
    """Why `reply` does not answer `request`, or None when it may.

    On a shared line a frame can come from a neighbour answering late, or from
    the meter asked but for its previous question (another DI, another SER).
    Those are skipped while the answer is awaited; `reply_data` judges the rest.
    """
    if not address_matches(request.address, reply.address):
        return f"a reply from meter {reply.address}"
    if not reply.is_reply or reply.function != request.function:
        return f"a frame with control code {reply.control:02X}"
    if reply.is_abnormal:
        return None
    if len(reply.data) >= 3 and not di_matches(request.data[:2].hex(), reply.data[:2]):
        return f"a reply for DI {reply.data[:2].hex().upper()}"
    if len(reply.data) >= 3 and reply.data[2] != request.data[2]:
        return f"a reply with serial number {reply.data[2]} (asked {request.data[2]})"
    return None


def reply_data(request: Frame, reply: Frame) -> bytes:
    """The data after DI and SER that `reply` carries for `request`, once proven to answer it.

    An abnormal reply raises DeviceRejected with its status read out.
    """
    why = mismatch(request, reply)
    if why is not None:
        raise BadReply(f"{why}, not the answer")
    if reply.is_abnormal:
        # SER then ST (two bytes); a meter sending ST alone is read the same way
        st = reply.data[1:3] if len(reply.data) >= 3 else reply.data
        code = int.from_bytes(st, "little")
        raise DeviceRejected(f"abnormal reply: {describe_status(st)}", code)
    if len(reply.data) < 3:
        raise BadReply(f"reply with {len(reply.data)} data bytes, no DI and serial number")
    return reply.data[3:]


def check_type(asked: int, reply: Frame) -> None:
    """A reply from a meter of another family would be read with the wrong layout."""
    if reply.meter_type != asked and family_of(reply.meter_type) != family_of(asked):
        raise BadReply(
            f"the meter answered as type {reply.meter_type:02X}H, not {asked:02X}H: "
            "set meter_type to what the meter is"
        )


def meter_address(reply: Frame) -> str:
    """The address a meter gave in its reply to `read_address`: the frame's own."""
    return reply.address


# --- values --------------------------------------------------------------------


def decode_bcd(raw: bytes, decimals: int) -> float:
    """Little-endian packed BCD -> number."""
    text = raw[::-1].hex()
    if not text.isdigit():
        raise DecodeError(f"not BCD: {raw.hex(' ').upper()} has a digit above 9")
    return int(text) / 10**decimals


def encode_bcd(value: float, size: int, decimals: int) -> bytes:
    """The inverse of decode_bcd; wraps like the meter's register."""
    count = round(value * 10**decimals) % 10 ** (size * 2)
    return bytes.fromhex(f"{count:0{size * 2}d}")[::-1]


def decode_field(data: bytes, di: str, meter_type: int, field: str, unit: str) -> float:
    """The value of `field` in the data (after DI and SER) of `di`, in `unit`.

    Raises DecodeError when the data has another length than the layout, a digit
    is not BCD, or the unit code is unknown or of another kind.
    """
    family = family_of(meter_type) or ""
    layout = layout_of(di, family)
    if layout is None:
        raise DecodeError(
            f"DI {di.upper()} is not known for a {family or 'non-water/heat/gas'} meter"
        )
    if len(data) != layout.length:
        raise DecodeError(
            f"{len(data)} data bytes where a {family} meter's DI {di.upper()} has {layout.length}"
            " (is meter_type right?)"
        )
    if field in STATUS_FIELDS:
        if layout.status is None:
            raise DecodeError(f"DI {di.upper()} has no status")
        return status_bit(data[layout.status : layout.status + 2], field)
    spec = layout.fields.get(field)
    if spec is None:
        raise DecodeError(f"DI {di.upper()} of a {family} meter has no {field}")
    return _value(data, spec, field, unit)


def _value(data: bytes, spec: Slot, field: str, unit: str) -> float:
    raw = data[spec.offset : spec.offset + spec.size]
    try:
        number = decode_bcd(raw, spec.decimals)
    except DecodeError as exc:
        raise DecodeError(f"{field}: {exc}") from None
    if spec.dimension is None:
        return number
    code = data[spec.offset + spec.size]
    try:
        return convert(number, code, unit, spec.dimension)
    except ValueError as exc:
        raise DecodeError(f"{field}: {exc}") from None


def status_bit(st: bytes, field: str) -> float:
    """1.0 or 0.0 for a status field, from ST's first byte."""
    valve = st[0] & 0x03
    value = {
        "valve_open": valve == 0,
        "valve_closed": valve == 1,
        "valve_fault": valve == 3,
        "battery_low": bool(st[0] & 0x04),
    }[field]
    return 1.0 if value else 0.0
