"""DL/T 645 frames and values (editions 2007 and 1997): pure functions over bytes, no I/O.

A frame on the wire:

    [FE FE FE FE] 68 A0..A5 68 C L DATA(L) CS 16

The address is 12 BCD digits sent low byte first; every data byte is sent
+0x33; CS is the sum modulo 256 from the first 68 through the last data byte.
`Frame` holds the address as printed on the meter and the data with 0x33
already removed, so nothing above this module ever sees wire bytes.

Both editions share this framing (DL/T 645-1997 §4.2 frame format, DL/T 645-2007 §5:
start, address, control, length, +0x33, checksum, end). They differ in the
data identifier, 2 bytes DI1 DI0 in 1997 ("9010") and 4 bytes DI3..DI0 in 2007
("00010000"), and in the function codes: read data is 0x01 (reply 0x81, error
reply 0xC1) in 1997 and 0x11 (0x91, 0xD1) in 2007, and the bits of the error
byte mean different things. An `Edition` holds what differs; the function
code of a frame says which edition it belongs to, so a reply is judged by the
request it answers. A meter of one edition ignores the other's requests.

Values are packed BCD, little-endian, laid out by a point's `format`
("XXXXXX.XX": eight digits, two decimals). Anything that is not a frame raises
`FrameError`; anything that is not a value raises `DecodeError`. Both are
`BadReply`: a quality flag, never a number.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.errors import BadReply, DecodeError, DeviceRejected, FrameError
from drivers.dlt645.settings import WILDCARD, Dlt645Point
from drivers.framing import END as END  # the frame's bytes, named here for its users
from drivers.framing import PREAMBLE as PREAMBLE
from drivers.framing import START, Layout, framed

HEADER = 10  # 68, six address bytes, 68, C, L
MAX_FOLLOW_UPS = 15

READ_DATA, READ_FOLLOW_UP, READ_ADDRESS = 0x11, 0x12, 0x13
# DL/T 645-1997 control code, function bits D4..D0: 00001 read data, 00010 read follow-up data
READ_DATA_1997, READ_FOLLOW_UP_1997 = 0x01, 0x02
REPLY, ERROR, FOLLOWS = 0x80, 0x40, 0x20  # control code bits D7, D6, D5 (same in both editions)

# error word ERR of an error reply, bit by bit (DL/T 645-2007 §7.1 / domain.md §4.2)
ERROR_BITS = (
    "other error",
    "no requested data (DI not supported)",
    "password wrong / unauthorised",
    "baud rate cannot be changed",
    "too many year time zones",
    "too many daily periods",
    "too many tariffs",
    "reserved bit 7",
)
# error information byte ERR of a DL/T 645-1997 abnormal reply (C = C1H): bit 0 illegal data,
# bit 1 data identifier wrong, bit 2 password wrong, bits 4-6 too many year zones / daily
# periods / tariffs, bits 3 and 7 reserved (DL/T 645-1997, read data: the abnormal reply's
# error information word; corroborated by public 1997 drivers)
ERROR_BITS_1997 = (
    "illegal data",
    "data identifier wrong (DI not supported)",
    "password wrong",
    "reserved bit 3",
    "too many year time zones",
    "too many daily periods",
    "too many tariffs",
    "reserved bit 7",
)


@dataclass(frozen=True, slots=True)
class Edition:
    """What differs between DL/T 645-1997 and DL/T 645-2007 on the wire."""

    name: str  # "2007", "1997"
    di_digits: int  # hex digits of a data identifier: 8 (DI3..DI0) or 4 (DI1 DI0)
    read: int  # function code of read data
    follow_up: int  # function code of read follow-up data
    error_bits: tuple[str, ...]
    numbered_follow_ups: bool  # 2007 follow-up requests and replies carry a frame number

    @property
    def di_bytes(self) -> int:
        return self.di_digits // 2

    @property
    def title(self) -> str:
        return f"DL/T 645-{self.name}"


EDITION_2007 = Edition("2007", 8, READ_DATA, READ_FOLLOW_UP, ERROR_BITS, True)
EDITION_1997 = Edition("1997", 4, READ_DATA_1997, READ_FOLLOW_UP_1997, ERROR_BITS_1997, False)
EDITIONS = {e.name: e for e in (EDITION_2007, EDITION_1997)}


def edition_of(function: int) -> Edition:
    """The edition a read function code belongs to (0x01, 0x02: 1997; else 2007)."""
    return EDITION_1997 if function in (READ_DATA_1997, READ_FOLLOW_UP_1997) else EDITION_2007


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: `address` as printed ("000012345678"), `data` with 0x33 removed."""

    address: str
    control: int
    data: bytes = b""

    @property
    def function(self) -> int:
        return self.control & 0x1F

    @property
    def is_reply(self) -> bool:
        return bool(self.control & REPLY)

    @property
    def is_error(self) -> bool:
        return bool(self.control & ERROR)

    @property
    def follows(self) -> bool:
        """More data waits in follow-up frames (read them with 0x12)."""
        return bool(self.control & FOLLOWS)

    def encode(self, *, preamble: bool = True) -> bytes:
        if len(self.data) > 255:
            raise ValueError(f"{len(self.data)} data bytes do not fit in one frame (255 at most)")
        body = (
            bytes([START])
            + address_to_wire(self.address)
            + bytes([START, self.control, len(self.data)])
            + bytes((b + 0x33) & 0xFF for b in self.data)
        )
        return framed(body, preamble=preamble)


# --- addresses and data identifiers -------------------------------------------


def address_to_wire(address: str) -> bytes:
    """ "000012345678" -> 78 56 34 12 00 00 (low byte first); "AAAAAAAAAAAA" -> AA x 6."""
    if len(address) != 12:
        raise ValueError(f"a meter address has 12 digits (got {address!r})")
    return bytes.fromhex(address)[::-1]


def address_from_wire(wire: bytes) -> str:
    return wire[::-1].hex().upper()


def address_matches(asked: str, answered: str) -> bool:
    """The reply comes from the meter asked; an A in the request's address matches anything."""
    return all(a == "A" or a == b for a, b in zip(asked.upper(), answered, strict=True))


def di_to_wire(di: str) -> bytes:
    """ "00010000" (DI3..DI0, as documents write it) -> 00 00 01 00 (DI0 first, as sent);
    a 1997 identifier "9010" (DI1 DI0) -> 10 90."""
    if len(di) not in (4, 8):
        raise ValueError(f"a data identifier has 8 (2007) or 4 (1997) hex digits (got {di!r})")
    return bytes.fromhex(di)[::-1]


def di_from_wire(wire: bytes) -> str:
    return wire[::-1].hex().upper()


def describe_error(err: int, edition: Edition = EDITION_2007) -> str:
    """The error word of an error reply, read as bits: 0x03 is two reasons, not one code."""
    reasons = [text for bit, text in enumerate(edition.error_bits) if err & (1 << bit)]
    return "; ".join(reasons) if reasons else "no reason given (ERR 0x00)"


# --- requests ------------------------------------------------------------------


def read_data(address: str, di: str, edition: Edition = EDITION_2007) -> Frame:
    if len(di) != edition.di_digits:
        raise ValueError(f"{edition.title} data identifiers have {edition.di_digits} hex digits")
    return Frame(address, edition.read, di_to_wire(di))


def read_follow_up(address: str, di: str, seq: int, edition: Edition = EDITION_2007) -> Frame:
    """Ask for follow-up frame `seq` (1, 2, ...) of a reply that said more data follows.

    2007 numbers the follow-up frames (DI then frame number); the 1997 read
    follow-up request (function 00010) carries the DI alone.
    """
    number = bytes([seq & 0xFF]) if edition.numbered_follow_ups else b""
    return Frame(address, edition.follow_up, di_to_wire(di) + number)


def read_address() -> Frame:
    return Frame(WILDCARD, READ_ADDRESS)


# --- parsing -------------------------------------------------------------------


def _frame(body: bytes) -> Frame:
    """A checked body (68 through the last data byte) as a Frame, 0x33 taken off its data."""
    data = bytes((b - 0x33) & 0xFF for b in body[HEADER:])
    return Frame(address_from_wire(body[1:7]), body[8], data)


# 68, six address bytes, 68 (at offset 7), C, L: the shared hunt (drivers/framing.py)
_LAYOUT = Layout(HEADER, 7, "68, address, 68 ... 16", _frame)


def scan(buffer: bytes) -> tuple[Frame | FrameError | None, int]:
    """The first frame in `buffer` or a FrameError, and the bytes used (framing.Layout.scan)."""
    return _LAYOUT.scan(buffer)


def parse(data: bytes) -> Frame:
    """The first frame in `data` (any leading FE and junk skipped), or FrameError."""
    return _LAYOUT.parse(data)


# --- replies ---------------------------------------------------------------------


def mismatch(request: Frame, reply: Frame) -> str | None:
    """Why `reply` is not the answer to `request`, or None when it may be.

    On a shared line a reply can come from a neighbour that answered late, or
    from the meter asked but for its previous question: another address,
    another function, another echoed DI or follow-up frame number. Such frames
    are skipped while the answer is awaited. An error reply echoes no DI, so
    address and function are all it is checked by; `reply_data` judges the rest.
    """
    if not address_matches(request.address, reply.address):
        return f"a reply from meter {reply.address}"
    if not reply.is_reply or reply.function != request.function:
        return f"a frame with control code {reply.control:02X}"
    if reply.is_error or request.function not in _READS:
        return None
    edition = edition_of(request.function)
    size = edition.di_bytes
    echoed = reply.data[:size]
    if len(echoed) == size and echoed != request.data[:size]:
        return f"a reply for DI {di_from_wire(echoed)}"
    numbered = request.function == READ_FOLLOW_UP and len(reply.data) >= 5
    if numbered and reply.data[-1] != request.data[4]:
        return f"a reply for follow-up frame {reply.data[-1]}"
    return None


_READS = (READ_DATA, READ_FOLLOW_UP, READ_DATA_1997, READ_FOLLOW_UP_1997)


def reply_data(request: Frame, reply: Frame) -> bytes:
    """The data a reply carries for `request`, once it is proven to answer it.

    Checks the address (or the wildcard), the function, the error bit and, for
    reads, the echoed data identifier; a follow-up reply's trailing frame number
    must be the one asked for.
    """
    if not address_matches(request.address, reply.address):
        raise BadReply(f"reply from meter {reply.address}, not the one asked")
    if not reply.is_reply or reply.function != request.function:
        raise BadReply(f"unexpected reply, control code {reply.control:02X}")
    edition = edition_of(request.function)
    if reply.is_error:
        if not reply.data:
            raise DeviceRejected("error reply without an error word")
        reason = describe_error(reply.data[0], edition)
        raise DeviceRejected(f"error reply: {reason}", reply.data[0])
    if request.function in _READS:
        size = edition.di_bytes
        echoed = reply.data[:size]
        if echoed != request.data[:size]:
            shown = di_from_wire(echoed) if len(echoed) == size else "(none)"
            raise BadReply(f"reply for DI {shown}, not the one asked")
        if request.function == READ_FOLLOW_UP:
            if len(reply.data) < 5 or reply.data[-1] != request.data[4]:
                raise BadReply(f"follow-up reply is not frame {request.data[4]}")
            return reply.data[4:-1]
        return reply.data[size:]
    return reply.data


def meter_address(reply: Frame) -> str:
    """The address a meter gave in its reply to `read_address` (12 BCD digits)."""
    if len(reply.data) != 6:
        raise BadReply(f"address reply with {len(reply.data)} data bytes, 6 expected")
    address = address_from_wire(reply.data)
    if not address.isdigit():
        raise BadReply(f"address reply is not 12 BCD digits: {address}")
    return address


# --- values --------------------------------------------------------------------


def layout(fmt: str) -> tuple[int, int, int]:
    """(digits, decimals, bytes) of a format: XXXXXX.XX -> (8, 2, 4)."""
    whole, _, decimals = fmt.partition(".")
    digits = len(whole) + len(decimals)
    return digits, len(decimals), (digits + 1) // 2


def modulus(fmt: str) -> float:
    """Where an unsigned register of this format wraps to 0: XXXXXX.XX -> 1 000 000."""
    digits, decimals, _ = layout(fmt)
    return float(10 ** (digits - decimals))


def decode_bcd(raw: bytes, fmt: str, signed: bool = False) -> float:
    """Little-endian packed BCD -> number; with `signed`, bit 0x80 of the top byte is the sign."""
    _, decimals, size = layout(fmt)
    if len(raw) != size:
        raise DecodeError(f"{len(raw)} value bytes where format {fmt} has {size}")
    digits = bytearray(raw[::-1])
    negative = signed and bool(digits[0] & 0x80)
    if signed:
        digits[0] &= 0x7F
    text = digits.hex()
    if not text.isdigit():
        shown = raw.hex(" ").upper()
        raise DecodeError(f"not BCD: {shown} has a digit above 9 (format {fmt})")
    value = int(text) / 10**decimals
    return -value if negative else value


def encode_bcd(value: float, fmt: str, signed: bool = False) -> bytes:
    """The inverse of decode_bcd, for the simulator; an unsigned counter wraps like the meter's."""
    digits, decimals, size = layout(fmt)
    units = round(abs(value) * 10**decimals)
    if value < 0 and not signed:
        raise ValueError(f"{value} is negative; format {fmt} is unsigned")
    if signed:
        if units >= 8 * 10 ** (size * 2 - 1):
            raise ValueError(f"{value} does not fit format {fmt} with a sign bit")
    else:
        units %= 10**digits
    raw = bytearray.fromhex(f"{units:0{size * 2}d}")
    if value < 0 and units:
        raw[0] |= 0x80
    return bytes(raw[::-1])


def decode_point(raw: bytes, point: Dlt645Point) -> float:
    """The value of `point` from its reply's value bytes: BCD x scale + offset."""
    return decode_bcd(raw, point.format, point.signed) * point.scale + point.offset
