"""The CP data area of HJ 212-2017: items and fields as Appendix C prints them, numbers,
local time stamps, and packets as table C.49 splits them.

The standard's text: the PDF named 污染物在线监控(监测)系统数据传输标准 (in full-width
brackets) in docs/ of the public repository guocay/hj212-protocol; §6.3.3, tables 3 and 4,
Appendix C.
"""

from __future__ import annotations

import contextlib
import math
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_sync.hj212.codes import CO2, DATA_FLAGS
from cloud_sync.hj212.cp import (
    MAX_CP,
    PACKET_CP,
    cp_limit,
    fields,
    item,
    items,
    number,
    packets,
    parse_stamp,
    qn,
    stamp,
)
from cloud_sync.hj212.frame import pack, segment
from domain.errors import FrameError

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")  # a zone with clock changes, for the gap and the fold
MN = "010000A8900016F000169DC0"

# table C.16, the CP of a minute upload ("…" left out)
MINUTE_CP = (
    "DataTime=20160801084000;w00000-Cou=10.5,w00000-Min=16.4,w00000-Avg=17.5,"
    "w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,"
    "w01001-Flag=N;w01018-Cou=10.5,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,"
    "w01018-Flag=N"
)


# --- items and fields ---------------------------------------------------------------------


def test_items_of_a_minute_upload() -> None:
    """Table C.16: ';' between items, ',' between one pollutant's values."""
    assert items(MINUTE_CP) == [
        {"DataTime": "20160801084000"},
        {"w00000-Cou": "10.5", "w00000-Min": "16.4", "w00000-Avg": "17.5",
         "w00000-Max": "20.1", "w00000-Flag": "N"},
        {"w01001-Min": "7.1", "w01001-Avg": "7.5", "w01001-Max": "7.8", "w01001-Flag": "N"},
        {"w01018-Cou": "10.5", "w01018-Min": "40.1", "w01018-Avg": "40.1",
         "w01018-Max": "40.1", "w01018-Flag": "N"},
    ]  # fmt: skip


def test_items_as_the_standard_and_devices_space_them() -> None:
    """Table C.4 answers with `CP=&& &&`, table C.42 prints "i12003-Info =0", a public
    device frame ends its CP with ';' (jinuxx/hj212, T212MapperTest.java): all read."""
    assert [
        items(" "),
        items("i12001-Info=1;i12003-Info =0"),
        items("a34001-Rtd=217;"),
    ] == [[], [{"i12001-Info": "1"}, {"i12003-Info": "0"}], [{"a34001-Rtd": "217"}]]


def test_fields_give_a_requests_parameters() -> None:
    """Table C.20 asks for minute data with BeginTime;EndTime; table C.23 prints the two
    with ',' between them: both read into one mapping."""
    asked = {"BeginTime": "20160801084000", "EndTime": "20160801084000"}
    assert [asked, asked] == [
        fields("BeginTime=20160801084000;EndTime=20160801084000"),
        fields("BeginTime=20160801084000,EndTime=20160801084000"),
    ]


def test_a_later_field_wins() -> None:
    """fields() flattens: a name given twice in different items keeps its last value."""
    assert fields("SystemTime=1;PolId=w01018;SystemTime=2") == {
        "PolId": "w01018",
        "SystemTime": "2",
    }


@pytest.mark.parametrize(
    ("cp", "reason"),
    [
        ("DataTime", "name=value"),
        ("a=1,,b=2", "name=value"),
        ("=1", "name=value"),
        ("-x=1", "name=value"),
        ("a=1,a=2", "twice"),
    ],
)
def test_items_says_what_is_wrong(cp: str, reason: str) -> None:
    """A malformed CP is a FrameError that names the field."""
    with pytest.raises(FrameError, match=reason):
        items(cp)


@given(st.text())
def test_items_raise_nothing_but_frame_error(cp: str) -> None:
    """Whatever the text, items() returns a list or raises FrameError."""
    with contextlib.suppress(FrameError):
        assert isinstance(items(cp), list)


def test_an_item_is_built_as_the_standard_writes_it() -> None:
    """item() joins one pollutant's values as table C.16 does; CO2 is a05001 (table B.2)."""
    assert ["a05001-Cou=12.5,a05001-Flag=N", MINUTE_CP.split(";")[3]] == [
        item(CO2, {"Cou": "12.5", "Flag": "N"}),
        item("w01018", {"Cou": "10.5", "Min": "40.1", "Avg": "40.1", "Max": "40.1", "Flag": "N"}),
    ]


@pytest.mark.parametrize(("code", "values"), [("a05001", {}), ("a05001", {"Cou": "1;2"})])
def test_item_refuses_what_would_not_read_back(code: str, values: dict[str, str]) -> None:
    """An item without values, or a value with ';', ',', '=' or '&' is a ValueError."""
    with pytest.raises(ValueError, match="a05001"):
        item(code, values)


def test_the_data_flags_are_table_8() -> None:
    """Table 8 has eight one-letter flags, N to B."""
    assert "".join(DATA_FLAGS) == "NFMSDCTB"


# --- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [
        (17.5, 1, "17.5"),  # table C.16
        (63.0, 1, "63.0"),  # table C.17 writes 63.0, not 63
        (2.697, 5, "2.69700"),  # jinuxx/hj212's 2061 frame
        (1e20, 2, "100000000000000000000.00"),
        (-0.001, 2, "0.00"),
        (-0.0, 0, "0"),
        (-2.5, 0, "-2"),  # the binary value is exact: a tie, to even
        (0.000001, 3, "0.000"),
    ],
)
def test_number_writes_fixed_point(value: float, decimals: int, text: str) -> None:
    """Fixed point with the given decimals, never an exponent, never a negative zero."""
    assert text == number(value, decimals)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_number_refuses_what_has_no_decimal_form(value: float) -> None:
    with pytest.raises(ValueError, match="no decimal form"):
        number(value, 2)


@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 8))
def test_number_is_within_half_a_unit_of_its_last_decimal(value: float, decimals: int) -> None:
    """The text is within half a unit of its last place of the exact value, and has no
    exponent and no "-0"."""
    text = number(value, decimals)
    assert "e" not in text.lower()
    assert abs(Decimal(text) - Decimal(value)) <= Decimal(5) * Decimal(10) ** -(decimals + 1)
    assert not (text.startswith("-") and Decimal(text) == 0)


# --- time -----------------------------------------------------------------------------------


def test_qn_and_stamp_of_the_appendix_c_example() -> None:
    """Appendix C: QN=20160801085857223 is 2016-08-01 08:58:57.223, local time."""
    ts = datetime(2016, 8, 1, 8, 58, 57, 223000, tzinfo=SHANGHAI).timestamp()
    assert (qn(ts, SHANGHAI), stamp(ts, SHANGHAI)) == ("20160801085857223", "20160801085857")


def test_parse_stamp_of_a_history_request() -> None:
    """Table C.20's BeginTime=20160801084000 is 08:40 local time."""
    expected = datetime(2016, 8, 1, 8, 40, tzinfo=SHANGHAI).timestamp()
    assert expected == parse_stamp("20160801084000", SHANGHAI)


@given(st.integers(946_684_800, 4_102_444_799), st.integers(0, 999_999))
def test_a_stamp_reads_back_to_its_second(seconds: int, micros: int) -> None:
    """parse_stamp(stamp(t)) is t without its fraction; qn adds the milliseconds."""
    ts = seconds + micros / 1e6
    assert float(seconds) == parse_stamp(stamp(ts, SHANGHAI), SHANGHAI)
    assert qn(ts, SHANGHAI).startswith(stamp(ts, SHANGHAI))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2016080108400", "YYYYMMDDhhmmss"),
        ("2016080108400x", "YYYYMMDDhhmmss"),
        ("20160230120000", "no date"),
        ("20240331023000", "does not exist"),  # Berlin skips 02:00-03:00 that night
    ],
)
def test_parse_stamp_says_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        parse_stamp(text, BERLIN)


def test_a_local_time_that_occurs_twice_is_taken_the_first_time() -> None:
    """Berlin runs 02:30 twice on 2024-10-27: the first, in summer time, is meant."""
    first = datetime(2024, 10, 27, 2, 30, tzinfo=BERLIN, fold=0).timestamp()
    assert first == parse_stamp("20241027023000", BERLIN)


# --- packets ------------------------------------------------------------------------------

HEAD = ["DataTime=20160801080000"]
HOURLY = [  # table C.49's three items, in the order the two packets carry them
    "w00000-Cou=63.0,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,w00000-Flag=N",
    "w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N",
    "w01018-Cou=63.0,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N",
]


def test_packets_split_as_table_c49() -> None:
    """With a limit that the first packet of table C.49 just fills, the three items split
    as the standard's example does: DataTime heads both packets."""
    first = ";".join([*HEAD, *HOURLY[:2]])
    assert [first, ";".join([HEAD[0], HOURLY[2]])] == packets(HEAD, HOURLY, len(first) + 7)


def test_one_packet_when_it_fits() -> None:
    """Under the limit there is one packet, and with no items the head alone."""
    assert [[";".join([*HEAD, *HOURLY])], HEAD] == [packets(HEAD, HOURLY), packets(HEAD, [])]


def test_an_item_too_long_for_any_packet_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        packets(HEAD, ["a" * MAX_CP], MAX_CP)


def test_an_item_with_a_separator_is_refused() -> None:
    with pytest.raises(ValueError, match="not one CP item"):
        packets(HEAD, ["a=1;b=2"])


def test_the_default_limit_fits_beside_the_longest_header() -> None:
    """A packet of the default size beside a header of table 3's longest fields (QN 17, ST
    2, CN 4, PW 6, MN 24, Flag 3, PNUM and PNO 4 digits) packs within 1024 bytes."""
    body = "x" * (PACKET_CP - 7)
    text = segment(
        qn="20160801085857223", st="32", cn="2061", pw="123456", mn=MN, flag=103,
        cp=body, pnum=9999, pno=9999,
    )  # fmt: skip
    assert len(pack(text)) - 12 == 1024


def test_cp_limit_is_the_room_beside_a_given_header() -> None:
    """cp_limit(bare) fills the segment to exactly 1024 bytes; one more does not pack."""
    header = {
        "qn": "20160801085857223", "st": "32", "cn": "2061", "pw": "BF470F88957588DE902D1A52",
        "mn": MN, "flag": 7, "pnum": 12, "pno": 3,
    }  # fmt: skip
    limit = cp_limit(segment(cp="", **header))
    full = segment(cp="y" * (limit - 7), **header)
    assert (1024, limit < MAX_CP) == (len(pack(full)) - 12, True)
    with pytest.raises(ValueError, match="1024"):
        pack(segment(cp="y" * (limit - 6), **header))


item_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-=,.", min_size=1, max_size=60)


@given(
    st.lists(item_text, max_size=2),
    st.lists(item_text, max_size=40),
    st.integers(200, MAX_CP),
)
def test_packets_reassemble_to_the_items(
    head: list[str], given_items: list[str], limit: int
) -> None:
    """Each packet starts with the head and keeps CP=&&...&& within the limit; the items,
    taken from the packets in order, are the items given."""
    bodies = packets(head, given_items, limit)
    parts = [body.split(";") if body else [] for body in bodies]
    assert all(len(body) + 7 <= limit for body in bodies)
    assert all(p[: len(head)] == head for p in parts)
    assert given_items == [one for p in parts for one in p[len(head) :]]
