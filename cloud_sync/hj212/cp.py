"""The data area of HJ 212-2017 (CP, §6.3.3): items and fields, numbers, time stamps, and
the split of a long CP over packets. Pure functions, no I/O.

Inside CP a field is `name=value`; the fields of one item (one pollutant's values) are
joined by ',', items by ';' (§6.3.3.1): `DataTime=20160801084000;a05001-Cou=12.5,a05001-
Flag=N`. Times are local (DataTime, SystemTime, BeginTime, EndTime as YYYYMMDDhhmmss,
table 4; QN with milliseconds, table 3). Numbers are plain decimals with a point and a
sign (N14.2 is 14 integer digits and 2 decimals, §6.3.3.2.2): never an exponent.

A CP field holds at most 950 characters, and table 3 counts a field's length with its
name and '=' (QN=..., 20): so `CP=&&...&&` as a whole is at most 950, which leaves 943 for
what is between the &&. Longer data goes in packets (PNUM, PNO, Flag bit D), each starting
with the same DataTime, as the split example of Appendix C (table C.49) shows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from cloud_sync.hj212.frame import MAX_SEGMENT
from domain.errors import FrameError

__all__ = [
    "MAX_CP",
    "PACKET_CP",
    "cp_limit",
    "fields",
    "item",
    "items",
    "number",
    "packets",
    "parse_stamp",
    "qn",
    "stamp",
]

MAX_CP = 950  # table 3: CP, 0 <= n <= 950, counted as `CP=&&...&&`
_WRAPPER = len("CP=&&&&")
# table 3's longest header: QN 20, ST 5, CN 7, PW 9, MN 27, Flag 8, PNUM 9, PNO 8, each with
# its ';'. A CP field of PACKET_CP beside it keeps the segment within 1024 bytes (table 2).
_LONGEST_HEADER = 20 + 5 + 7 + 9 + 27 + 8 + 9 + 8 + 8
PACKET_CP = min(MAX_CP, MAX_SEGMENT - _LONGEST_HEADER)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_STAMP = re.compile(r"[0-9]{14}")


# --- reading -----------------------------------------------------------------------------


def items(cp: str) -> list[dict[str, str]]:
    """ "a=1,b=2;c=3" -> [{"a": "1", "b": "2"}, {"c": "3"}]. Spaces around a name or value
    and empty items (a trailing ';', `CP=&& &&` of table C.4) are let pass, as public frames
    carry them; a field without '=', a bad name or a name twice in one item is a
    FrameError."""
    found = []
    for raw in cp.split(";"):
        if not raw.strip():
            continue
        one: dict[str, str] = {}
        for field in raw.split(","):
            name, equals, value = field.partition("=")
            name = name.strip()
            if not equals or not _NAME.fullmatch(name):
                raise FrameError(f"{field.strip()[:40]!r} in CP is not a name=value field")
            if name in one:
                raise FrameError(f"{name} appears twice in one CP item")
            one[name] = value.strip()
        found.append(one)
    return found


def fields(cp: str) -> dict[str, str]:
    """Every field of CP in one mapping, a later one winning: what a command's parameters
    (BeginTime, EndTime, SystemTime, RtdInterval ...) need."""
    return {name: value for one in items(cp) for name, value in one.items()}


def parse_stamp(text: str, tz: ZoneInfo) -> float:
    """A YYYYMMDDhhmmss local time in `tz` as a Unix time. FrameError if it is not 14 digits,
    no date, or a local time that does not exist (skipped by a DST change); a time that
    occurs twice is taken the first time."""
    if not _STAMP.fullmatch(text):
        raise FrameError(f"{text[:20]!r} is not a YYYYMMDDhhmmss time")
    year, month, day = int(text[0:4]), int(text[4:6]), int(text[6:8])
    hour, minute, second = int(text[8:10]), int(text[10:12]), int(text[12:14])
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        raise FrameError(f"{text} is no date and time") from None
    ts = local.timestamp()
    if datetime.fromtimestamp(ts, tz).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise FrameError(f"{text} does not exist in {tz.key} (skipped by a clock change)")
    return ts


# --- writing -----------------------------------------------------------------------------


def number(value: float, decimals: int) -> str:
    """`value` with `decimals` places as the standard writes numbers: fixed point, never an
    exponent, never "-0.00". ValueError on NaN or infinity, which have no such form."""
    if not math.isfinite(value):
        raise ValueError(f"{value} has no decimal form")
    if decimals < 0:
        raise ValueError(f"decimals must be 0 or more (got {decimals})")
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def stamp(ts: float, tz: ZoneInfo) -> str:
    """The Unix time `ts` as YYYYMMDDhhmmss in `tz` (DataTime, SystemTime ...)."""
    t = datetime.fromtimestamp(ts, tz)
    return f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"


def qn(ts: float, tz: ZoneInfo) -> str:
    """The Unix time `ts` as a QN, YYYYMMDDhhmmsszzz in `tz` (table 3: to the millisecond)."""
    return f"{stamp(ts, tz)}{datetime.fromtimestamp(ts, tz).microsecond // 1000:03d}"


def item(code: str, values: Mapping[str, str]) -> str:
    """One item of a data upload: item("a05001", {"Cou": "12.5", "Flag": "N"}) is
    "a05001-Cou=12.5,a05001-Flag=N" (§6.3.3.1, table 4)."""
    if not _NAME.fullmatch(code) or not values:
        raise ValueError(f"an item needs a code and at least one value (got {code!r})")
    for kind, value in values.items():
        if not _NAME.fullmatch(kind) or re.search(r"[;,=&]", value):
            raise ValueError(f"{code}-{kind}={value!r} would not read back as one field")
    return ",".join(f"{code}-{kind}={value}" for kind, value in values.items())


def packets(head: list[str], items: list[str], limit: int = PACKET_CP) -> list[str]:
    """The CP contents of one or more packets: `head` (DataTime=...) starts each one,
    then as many whole `items` as keep the CP field, `CP=&&...&&`, within `limit`
    characters (table 3 counts the field so). Always at least one packet. ValueError if an
    item alone does not fit beside the head, or holds ';' or '&&'.

    The default, 923, keeps both limits, 950 for CP and 1024 for the whole segment, beside
    any header of table 3's lengths; `cp_limit` gives the exact room beside a given one
    (a PW longer than table 3's six characters needs it)."""
    for one in [*head, *items]:
        if not one.strip() or ";" in one or "&&" in one:
            raise ValueError(f"{one[:40]!r} is not one CP item")
    room = limit - _WRAPPER
    base = len(";".join(head))
    bodies: list[str] = []
    chunk: list[str] = []
    used = base
    for one in items:
        grown = used + len(one) + (1 if head or chunk else 0)
        if chunk and grown > room:
            bodies.append(";".join([*head, *chunk]))
            chunk, used = [], base
            grown = used + len(one) + (1 if head else 0)
        if grown > room:
            raise ValueError(
                f"item {one[:40]!r}... ({len(one)} characters) does not fit into a CP of "
                f"{limit} beside its head"
            )
        chunk.append(one)
        used = grown
    if base > room:
        raise ValueError(f"the head alone ({base} characters) does not fit into a CP of {limit}")
    bodies.append(";".join([*head, *chunk]))
    return bodies


def cp_limit(bare: str) -> int:
    """The `limit` for `packets` that keeps a whole data segment within 1024 bytes (table
    2) too: `bare` is the segment with an empty CP, `frame.segment(..., cp="")`, with the
    PNUM and PNO it will carry."""
    return min(MAX_CP, MAX_SEGMENT - len(bare.encode()) + _WRAPPER)
