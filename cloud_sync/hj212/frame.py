"""HJ 212-2017 frames: `##`, the length, the data segment, the CRC, CR LF. No I/O.

A frame on the wire (HJ 212-2017 §6.3.1, table 2; the worked frame of Appendix A):

    ##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80<CR><LF>

The length is the byte count of the data segment in four decimal digits (0 to 1024), the
CRC covers the data segment alone (Appendix A), four hex digits, high byte first. The data
segment (§6.3.2, table 3) is `QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;[PNUM=..;PNO=..;]CP=&&..&&`
with CP last.

Sending is strict: ASCII, at most 1024 bytes, an uppercase CRC, every field checked.
Reading accepts what public frames do that the text does not forbid outright and that is
unambiguous: a lowercase CRC, a length up to 9999, no QN or Flag (HJ/T 212-2005 devices),
UTF-8 in the segment (§6.3 allows Chinese as UTF-8), a PW or MN longer than table 3 says,
spaces around a field. Anything else is a FrameError with a short reason; docs/hj212.md
says where the standard's text can be read and which public frames the tests hold us to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.errors import FrameError

__all__ = [
    "FLAG_A",
    "FLAG_D",
    "MAX_SEGMENT",
    "Reader",
    "Segment",
    "crc16",
    "flag",
    "pack",
    "parse",
    "segment",
]

HEADER, TRAILER = b"##", b"\r\n"
MAX_SEGMENT = 1024  # table 2: the data segment is 0 <= n <= 1024 characters
_LONGEST_READ = 6 + 9999 + 6  # what four length digits can announce: the reader's bound

FLAG_A = 1  # table 3, Flag bit 0: the command wants an answer
FLAG_D = 2  # table 3, Flag bit 1: the segment carries PNUM and PNO
# table 3, Flag bits V5..V0 (bits 7..2): 000000 is HJ/T 212-2005, 000001 "this revision"
_VERSION_BITS = {2005: 0b000000, 2017: 0b000001}

_SHOWN = 48  # bytes of a bad frame quoted in its error


# --- the CRC (Appendix A) ------------------------------------------------------------


def _round(register: int) -> int:
    """Steps 4 to 7 of Appendix A: eight shifts right, XOR 0xA001 after a 1 fell out."""
    for _ in range(8):
        register = (register >> 1) ^ 0xA001 if register & 1 else register >> 1
    return register


# Appendix A XORs each byte into the register's high byte shifted down (`crc >> 8`), which
# is below 256, so the eight rounds only ever see a value below 256: one table lookup.
_TABLE = tuple(_round(i) for i in range(256))


def crc16(data: bytes) -> int:
    """HJ 212-2017 Appendix A over `data`: register 0xFFFF; for each byte
    `crc = (crc >> 8) ^ byte`, then eight rounds. Not CRC-16/MODBUS, which XORs the byte
    into the low byte and keeps the rest: over the Appendix A frame MODBUS gives 0759 where
    the standard says 1C80."""
    crc = 0xFFFF
    for byte in data:
        crc = _TABLE[(crc >> 8) ^ byte]
    return crc


# --- the data segment -----------------------------------------------------------------

# the header fields in the order of table 3; each value's form (table 3, leniently where
# public frames differ: PW up to 24 characters, MN up to 24 of 0-9A-Z)
_FIELDS = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO")
_FORMS = {
    "QN": re.compile(r"[0-9]{17}"),  # YYYYMMDDhhmmsszzz
    "ST": re.compile(r"[0-9A-Z]{2}"),  # §6.6.1: two of 0-9, A-Z
    "CN": re.compile(r"[0-9]{4}"),  # §6.6.5: four digits
    "PW": re.compile(r"(?:(?![;=&,])[!-~]){1,24}"),
    "MN": re.compile(r"[0-9A-Za-z]{1,24}"),
    "Flag": re.compile(r"[0-9]{1,3}"),  # 0-255
    "PNUM": re.compile(r"[0-9]{1,4}"),  # "PNUM=" and four digits make table 3's nine
    "PNO": re.compile(r"[0-9]{1,4}"),
}
_CP_OPEN, _CP_CLOSE = "CP=&&", "&&"
_NAME = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True, slots=True)
class Segment:
    """A parsed data segment; a field the segment does not carry is None. `cp` is the
    text between `CP=&&` and `&&`, read by `cp.items` or `cp.fields`."""

    qn: str | None
    st: str | None
    cn: str | None
    pw: str | None
    mn: str | None
    flag: int | None
    pnum: int | None
    pno: int | None
    cp: str

    def answer_wanted(self) -> bool:
        """Flag bit A: the sender waits for an answer (9011, 9013 or 9014)."""
        return self.flag is not None and bool(self.flag & FLAG_A)


def flag(version: int, *, answer: bool, split: bool) -> int:
    """The Flag value: the standard's version in bits 7..2, D (`split`: PNUM and PNO
    follow) and A (`answer`: an answer is wanted). 2017 with an answer is 5, as in the
    annex's requests; the annex's answers carry 4."""
    if version not in _VERSION_BITS:
        known = ", ".join(str(v) for v in _VERSION_BITS)
        raise ValueError(
            f"no Flag version bits known for HJ 212-{version} (known: {known}); the bits of "
            "HJ 212-2025 are not confirmed from its text (docs/hj212.md)"
        )
    return _VERSION_BITS[version] << 2 | (FLAG_D if split else 0) | (FLAG_A if answer else 0)


def segment(
    *,
    qn: str | None,
    st: str | None,
    cn: str | None,
    pw: str | None,
    mn: str | None,
    flag: int | None,
    cp: str,
    pnum: int | None = None,
    pno: int | None = None,
) -> str:
    """The data segment text, fields in table 3's order, a None field left out. A value
    that would not read back the same (a `;` in PW, `&&` in CP, PNUM without the D bit ...)
    is a ValueError: the caller built it wrong."""
    _check_packets(flag, pnum, pno, ValueError)
    numbers = (flag, pnum, pno)
    values = (qn, st, cn, pw, mn, *(None if n is None else str(n) for n in numbers))
    head = []
    for name, value in zip(_FIELDS, values, strict=True):
        if value is None:
            continue
        if not _FORMS[name].fullmatch(value):
            raise ValueError(f"{name}={value!r} is not a valid {name} (HJ 212-2017 table 3)")
        head.append(f"{name}={value};")
    if _CP_CLOSE in cp:
        raise ValueError(f"CP content may not hold '&&' (it closes the field): {cp[:40]!r}")
    return f"{''.join(head)}{_CP_OPEN}{cp}{_CP_CLOSE}"


def parse(segment_text: str) -> Segment:
    """The data segment `segment_text` read into its fields; FrameError with a short reason
    if it is not one (no closing CP, a field without '=', QN not 17 digits, PNO without the D
    bit ...). Header fields the standard does not name are skipped."""
    at = segment_text.find(_CP_OPEN)
    if at < 0:
        raise FrameError(f"no {_CP_OPEN} in the data segment: {_excerpt(segment_text)}")
    if not segment_text.endswith(_CP_CLOSE) or len(segment_text) < at + 7:
        raise FrameError(
            f"the data segment does not end with CP's closing &&: {_excerpt(segment_text)}"
        )
    cp = segment_text[at + len(_CP_OPEN) : -len(_CP_CLOSE)]
    if _CP_CLOSE in cp:
        raise FrameError(f"'&&' inside CP: {_excerpt(cp)}")
    found = _header(segment_text[:at])
    numbers = {name: int(found[name]) if name in found else None for name in _FIELDS[5:]}
    _check_packets(numbers["Flag"], numbers["PNUM"], numbers["PNO"], FrameError)
    return Segment(
        qn=found.get("QN"),
        st=found.get("ST"),
        cn=found.get("CN"),
        pw=found.get("PW"),
        mn=found.get("MN"),
        flag=numbers["Flag"],
        pnum=numbers["PNUM"],
        pno=numbers["PNO"],
        cp=cp,
    )


def _header(head: str) -> dict[str, str]:
    """The `name=value;` fields before CP, each checked against its form."""
    head = head.rstrip(" ")
    if head and not head.endswith(";"):
        raise FrameError(f"CP must follow a ';': {_excerpt(head[-40:])}")
    found: dict[str, str] = {}
    for part in head[:-1].split(";") if head else []:
        name, equals, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not _NAME.fullmatch(name):
            raise FrameError(f"{part.strip()[:40]!r} is not a name=value field")
        if name in found:
            raise FrameError(f"{name} appears twice")
        form = _FORMS.get(name)
        if form is None:
            continue
        if not form.fullmatch(value):
            raise FrameError(f"{name}={value[:40]!r} is not a valid {name}")
        found[name] = value
    return found


def _check_packets(
    flag: int | None, pnum: int | None, pno: int | None, error: type[Exception]
) -> None:
    """Flag is a byte, PNUM and PNO come together, PNO counts from 1 to PNUM, and the D
    bit says whether they are there."""
    if flag is not None and not 0 <= flag <= 255:
        raise error(f"Flag={flag} is out of range (0 to 255)")
    if (pnum is None) != (pno is None):
        raise error("PNUM and PNO come together (HJ 212-2017 table 3)")
    if pnum is not None and pno is not None and not 1 <= pno <= pnum:
        raise error(f"PNO={pno} is not a packet of PNUM={pnum} (they count from 1)")
    if flag is not None and bool(flag & FLAG_D) != (pnum is not None):
        said = "set" if flag & FLAG_D else "clear"
        has = "carries" if pnum is not None else "lacks"
        raise error(f"Flag={flag} has the D bit {said} but the segment {has} PNUM and PNO")


def _excerpt(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text[:_SHOWN].decode("utf-8", "backslashreplace")
    return repr(text[:_SHOWN]) + (" ..." if len(text) > _SHOWN else "")


# --- frames ---------------------------------------------------------------------------


def pack(segment: str) -> bytes:
    """The frame around a data segment: `##`, its length as %04d, the segment, its CRC as
    %04X, CR LF. ValueError if the segment is not ASCII or longer than 1024 bytes: split
    the CP over packets (`cp.packets`, `cp.cp_limit`) instead."""
    try:
        data = segment.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(
            f"a data segment sent by the agent is ASCII: {_excerpt(segment)}"
        ) from None
    if len(data) > MAX_SEGMENT:
        raise ValueError(
            f"a data segment holds at most {MAX_SEGMENT} bytes (HJ 212-2017 table 2), "
            f"this one {len(data)}: split its CP over packets"
        )
    return b"%s%04d%s%04X%s" % (HEADER, len(data), data, crc16(data), TRAILER)


class Reader:
    """Frames out of a TCP byte stream. `feed` takes what arrived and returns the frames it
    completes, in order: a Segment for each good one, a FrameError for each bad one (its
    CRC, its length, its segment) that is then skipped. Junk between frames is dropped; a
    `##` whose length is not four digits starts nothing. A bad frame is skipped by its
    `##` only, so a good frame that junk made look like part of it is still found; a frame
    start still waiting for bytes does not hold back a complete good frame after it (that
    start is reported cut short). Memory stays under one longest frame (10011 bytes)
    whatever is fed."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Segment | FrameError]:
        self._buffer += data
        out: list[Segment | FrameError] = []
        while True:
            found, used = _scan(self._buffer)
            del self._buffer[:used]
            if found is None:
                return out
            out.append(found)


def _scan(buffer: bytearray) -> tuple[Segment | FrameError | None, int]:
    """The first frame in `buffer` and the bytes it ends at, or (None, bytes that can be
    dropped) when none is complete yet. Never raises."""
    pending: int | None = None  # the first frame start still waiting for bytes
    at = buffer.find(HEADER)
    while at >= 0:
        end = _end(buffer, at)
        if end is None:  # "##" without four digits: junk
            pass
        elif end > len(buffer):
            pending = at if pending is None else pending
        else:
            found, used = _checked(bytes(buffer[at:end]))
            if pending is None:
                return found, at + used
            if isinstance(found, Segment):
                cut = _excerpt(bytes(buffer[pending:at]))
                return FrameError(f"frame cut short, a whole frame follows: {cut}"), at
        at = buffer.find(HEADER, at + 1)
    if pending is not None:
        return None, pending
    return None, len(buffer) - (1 if buffer.endswith(b"#") else 0)


def _end(buffer: bytearray, at: int) -> int | None:
    """Where the frame starting at `at` ends by its length; past the buffer while its
    length digits are still arriving; None if what follows `##` is no length."""
    digits = bytes(buffer[at + 2 : at + 6])
    if digits and not digits.isdigit():
        return None
    if len(digits) < 4:
        return len(buffer) + 1
    return at + len(HEADER) + 4 + int(digits) + 4 + len(TRAILER)


def _checked(raw: bytes) -> tuple[Segment | FrameError, int]:
    """A complete frame by its length, read; with the bytes it uses up: all of it once the
    CRC vouches for it, else only its `##` (what looked like a frame may hide one)."""
    length = int(raw[2:6])
    data, crc = raw[6 : 6 + length], raw[6 + length : 10 + length]
    if raw[-2:] != TRAILER:
        return FrameError(f"no CR LF after {length} bytes and the CRC: {_excerpt(raw)}"), 2
    if not re.fullmatch(rb"[0-9A-Fa-f]{4}", crc):
        return FrameError(f"CRC {_excerpt(crc)} is not four hex digits: {_excerpt(raw)}"), 2
    if int(crc, 16) != crc16(data):
        return FrameError(
            f"CRC {crc.decode()} does not match the data segment's {crc16(data):04X}: "
            f"{_excerpt(raw)}"
        ), 2
    try:
        return parse(data.decode("utf-8")), len(raw)
    except UnicodeDecodeError:
        return FrameError(f"the data segment is not UTF-8: {_excerpt(raw)}"), len(raw)
    except FrameError as exc:
        return exc, len(raw)
