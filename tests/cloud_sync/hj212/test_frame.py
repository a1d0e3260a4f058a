"""HJ 212-2017 frames against the standard's worked example, its Appendix C segments and
frames other public implementations made.

The standard's text: HJ 212-2017 污染物在线监控(监测)系统数据传输标准, the PDF of that name (in
full-width brackets) in docs/ of the public repository guocay/hj212-protocol. Appendix A
gives one whole frame; Appendix C gives data segments only (no length, no CRC), so the
frames with CRCs beside it come from public libraries whose CRC agrees with Appendix A.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_sync.hj212.codes import CN_DATA_ANSWER, CN_REQUEST_ANSWER, ST_INTERACTION
from cloud_sync.hj212.frame import (
    FLAG_A,
    FLAG_D,
    MAX_SEGMENT,
    Reader,
    Segment,
    crc16,
    flag,
    pack,
    parse,
    segment,
)
from domain.errors import FrameError

MN = "010000A8900016F000169DC0"  # the device of every example in Appendix C
LONGEST_FRAME = 6 + 9999 + 6  # what four length digits can announce

# Appendix A: the worked frame, "1C80 为 CRC16 校验码"
WORKED = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
    b"Flag=5;CP=&&RtdInterval=30&&1C80\r\n"
)

# Whole frames with CRCs made by other public implementations (bytes as published)
PUBLIC_FRAMES = [
    WORKED,
    # liruoyu2008/HJ212Interpreter, README.md: a 9011 answer, two 2011 uploads, a 2081
    b"##0094QN=20231008125115215;ST=22;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;"
    b"CP=&&QnRtn=1&&CC01\r\n",
    b"##0162QN=20231008123340461;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
    b"CP=&&DataTime=20231008123340;w01008-SampleTime=20231008123340,w01008-Rtd=123.456&&F441\r\n",
    b"##0137QN=20231008130452757;ST=22;CN=2081;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
    b"CP=&&DataTime=20231008130452;RestartTime=20231007130452&&3AC0\r\n",
    b"##0162QN=20231008132300648;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
    b"CP=&&DataTime=20231008132300;w01008-SampleTime=20231008132300,w01008-Rtd=123.456&&2800\r\n",
    # jinuxx/hj212, src/test/java/com/hj212/T212MapperTest.java: a 9014 answer and a 2061
    # upload whose PW has 24 characters and whose MN 15 (longer and shorter than table 3 says)
    b"##0087QN=20160801085000001;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;"
    b"CP=&&&&C241\r\n",
    b"##0285QN=20190925181031464;ST=22;CN=2061;PW=BF470F88957588DE902D1A52;MN=Z13401000010301;"
    b"Flag=5;CP=&&DataTime=20190924220000;a34006-Avg=2.69700,a34006-Flag=N;a34007-Avg=7.96600,"
    b"a34007-Flag=N;a34048-Avg=3.30600,a34048-Flag=N;a34047-Avg=7.35700,a34047-Flag=N;"
    b"a34049-Avg=10.66300,a34049-Flag=N&&C181\r\n",
]


def data_of(frame: bytes) -> str:
    return frame[6:-6].decode()


def appendix_a(data: bytes) -> int:
    """Appendix A's C function CRC16_Checkout, line by line."""
    crc_reg = 0xFFFF
    for byte in data:
        crc_reg = (crc_reg >> 8) ^ byte
        for _ in range(8):
            check = crc_reg & 0x0001
            crc_reg >>= 1
            if check == 0x0001:
                crc_reg ^= 0xA001
    return crc_reg


# --- the CRC -------------------------------------------------------------------------------


def test_the_crc_of_the_worked_example_is_1c80() -> None:
    """Appendix A: the CRC of the worked data segment is 1C80."""
    assert crc16(WORKED[6:-6]) == 0x1C80


@given(st.binary(max_size=300))
def test_the_crc_is_appendix_a_line_by_line(data: bytes) -> None:
    """The table lookup gives what Appendix A's C function gives, for any bytes."""
    assert appendix_a(data) == crc16(data)


def test_the_crc_is_not_crc16_modbus() -> None:
    """CRC-16/MODBUS (check value 4B37 for "123456789", in the public CRC catalogues)
    differs from Appendix A: the byte goes into the high byte shifted down."""
    assert crc16(b"123456789") != 0x4B37


# --- whole frames ------------------------------------------------------------------------


@pytest.mark.parametrize("frame", PUBLIC_FRAMES, ids=lambda f: f[:20].decode())
def test_pack_makes_the_published_frame(frame: bytes) -> None:
    """pack() frames a published data segment into exactly the published bytes."""
    assert frame == pack(data_of(frame))


@pytest.mark.parametrize("frame", PUBLIC_FRAMES, ids=lambda f: f[:20].decode())
def test_the_reader_reads_each_published_frame(frame: bytes) -> None:
    """Fed a published frame, the reader returns its data segment, parsed."""
    assert [parse(data_of(frame))] == Reader().feed(frame)


def test_the_worked_frame_reads_into_its_fields() -> None:
    """The Appendix A frame: QN, ST 32, CN 1062 with RtdInterval=30, Flag 5 (2017, answer)."""
    expected = Segment(
        qn="20160801085857223", st="32", cn="1062", pw="100000", mn=MN,
        flag=5, pnum=None, pno=None, cp="RtdInterval=30",
    )  # fmt: skip
    [read] = Reader().feed(WORKED)
    assert (expected, True) == (read, expected.answer_wanted())


def test_a_flag_with_d_but_no_packet_numbers_is_refused() -> None:
    """A public test frame (jinuxx/hj212, T212MapperTest.java) has Flag=7, D set, but no
    PNUM/PNO; table 3 says D means they are there. Its CRC is right, its segment is not."""
    frame = (
        b"##0453QN=20160801085000001;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;"
        b"Flag=7;CP=&&DataTime=20160801084000;a21005-Rtd=1.1,a21005-Flag=N;a21004-Rtd=112,"
        b"a21004-Flag=N;a21026-Rtd=58,a21026-Flag=N;LA-td=50.1,LA-Flag=N;a34004-Rtd=207,"
        b"a34004-Flag=N;a34002-Rtd=295,a34002-Flag=N;a01001-Rtd=12.6,a01001-Flag=N;"
        b"a01002-Rtd=32,a01002-Flag=N;a01006-Rtd=101.02,a01006-Flag=N;a01007-Rtd=2.1,"
        b"a01007-Flag=N;a01008-Rtd=120,a01008-Flag=N;a34001-Rtd=217,a34001-Flag=N;&&c0c1\r\n"
    )
    [read] = Reader().feed(frame)
    assert isinstance(read, FrameError)
    assert "D bit set but the segment lacks PNUM and PNO" in str(read)


def test_a_lowercase_crc_is_read() -> None:
    """Some devices write the CRC in lowercase (c0c1 above): the reader takes it."""
    assert [parse(data_of(WORKED))] == Reader().feed(WORKED.replace(b"1C80", b"1c80"))


def test_a_segment_in_utf8_is_read_by_its_byte_length() -> None:
    """§6.3: Chinese is sent as UTF-8, and the length counts bytes. Table C.40's log
    upload, framed with its UTF-8 byte count, reads back with the text intact."""
    text = (
        f"QN=20160801085857223;ST=32;CN=3020;PW=123456;MN={MN};Flag=5;"
        "CP=&&DataTime=20100301145000;PolId=w01018;i11001-Info=//清洗管路//&&"
    )
    data = text.encode()
    frame = b"##%04d%s%04X\r\n" % (len(data), data, crc16(data))
    [read] = Reader().feed(frame)
    assert isinstance(read, Segment)
    assert read.cp == "DataTime=20100301145000;PolId=w01018;i11001-Info=//清洗管路//"


def test_pack_refuses_what_the_agent_must_not_send() -> None:
    """The agent sends ASCII, and at most 1024 bytes of segment (table 2)."""
    longest = segment(qn=None, st=None, cn=None, pw=None, mn=None, flag=None, cp="x" * 1017)
    assert len(pack(longest)) - 12 == MAX_SEGMENT
    with pytest.raises(ValueError, match="at most 1024 bytes"):
        pack(longest.replace("CP=&&", "CP=&&x"))
    with pytest.raises(ValueError, match="ASCII"):
        pack("CP=&&i11001-Info=//清洗管路//&&")


# --- Appendix C: the data segments of the standard's examples --------------------------

# Appendix C's CPs that do not fit on a line; each printed with a "…" for more items
C16 = (
    "DataTime=20160801084000;w00000-Cou=10.5,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,"
    "w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N;w01018-Cou=10.5,"
    "w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N;…"
)
C17 = (
    "DataTime=20160801080000;w00000-Cou=63.0,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,"
    "w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N;w01018-Cou=63.0,"
    "w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N;…"
)
C18 = (
    "DataTime=20160801000000;w00000-Cou=1512.0,w00000-Min=16.4,w00000-Avg=17.5,"
    "w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N;"
    "w01018-Cou=2142.0,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N;…"
)
C20 = (
    "DataTime=20160801084000;w00000-Cou=10.5,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,"
    "w00000-Flag=N;…"
)
C49_1 = (
    "DataTime=20160801080000;w00000-Cou=63.0,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,"
    "w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N;…"
)
C49_2 = (
    "DataTime=20160801080000;w01018-Cou=63.0,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,"
    "w01018-Flag=N;…"
)


def printed(qn: str, st: str, cn: str, flag: str, cp: str, packets: str = "") -> str:
    """A segment of Appendix C: every example there has PW=123456 and the same MN."""
    return f"QN={qn};ST={st};CN={cn};PW=123456;MN={MN};Flag={flag};{packets}CP=&&{cp}&&"


QN = "20160801085857223"  # the request number of most examples
APPENDIX_C = [  # (table, data segment as printed)
    ("C.1", printed(QN, "32", "1000", "5", "OverTime=5;ReCount=3")),
    ("C.1", printed(QN, "91", "9011", "4", "QnRtn=1")),
    ("C.1", printed(QN, "91", "9012", "4", "ExeRtn=1")),
    ("C.2", printed(QN, "32", "1011", "5", "PolId=w01018")),
    ("C.3", printed(QN, "32", "1012", "5", "PolId=w01018;SystemTime=20160801085857")),
    ("C.5", printed(QN, "32", "1061", "5", "")),
    ("C.5", printed(QN, "32", "1061", "4", "RtdInterval=30")),
    ("C.6", printed(QN, "32", "1062", "5", "RtdInterval=30")),
    ("C.8", printed(QN, "32", "1064", "5", "MinInterval=10")),
    ("C.9", printed(QN, "32", "1072", "5", "NewPW=654321")),
    ("C.10", printed(QN, "32", "2011", "5", "")),
    ("C.11", printed(QN, "91", "9013", "4", "")),
    ("C.14", printed(QN, "91", "9014", "4", "")),
    ("C.16", printed("20160801085000001", "32", "2051", "5", C16)),
    ("C.16", printed("20160801085000001", "91", "9014", "4", "")),
    ("C.17", printed("20160801090000001", "32", "2061", "5", C17)),
    ("C.18", printed("20160802000000001", "32", "2031", "5", C18)),
    ("C.20", printed(QN, "32", "2051", "5", "BeginTime=20160801084000;EndTime=20160801084000")),
    ("C.20", printed("20160801085857534", "32", "2051", "4", C20)),
    ("C.21", printed(QN, "32", "2061", "5", "BeginTime=20160801080000;EndTime=20160801080000")),
    ("C.22", printed(QN, "32", "2031", "5", "BeginTime=20160801000000;EndTime=20160801000000")),
    ("C.24", printed(QN, "32", "2081", "5", "DataTime=20160801085857;RestartTime=20160801085624")),
    ("C.48", printed("20160801085857534", "91", "9014", "4", "")),
    ("C.49", printed("20160801085857534", "32", "2061", "6", C49_1, "PNUM=2;PNO=1;")),
    ("C.49", printed("20160801085857535", "32", "2061", "6", C49_2, "PNUM=2;PNO=2;")),
    ("C.50", printed("20160801085857534", "32", "2061", "7", C49_1, "PNUM=2;PNO=1;")),
    ("C.50", printed("20160801085857535", "91", "9014", "4", "")),
]


def without_ellipsis(text: str) -> str:
    return text.replace(";…&&", "&&")


@pytest.mark.parametrize(("table", "text"), APPENDIX_C, ids=[t for t, _ in APPENDIX_C])
def test_segment_rebuilds_each_appendix_c_segment(table: str, text: str) -> None:
    """Each printed segment of Appendix C (its "…" left out) parses, and segment() builds
    the same text back from what was read: fields in table 3's order, nothing lost."""
    text = without_ellipsis(text)
    read = parse(text)
    rebuilt = segment(
        qn=read.qn, st=read.st, cn=read.cn, pw=read.pw, mn=read.mn, flag=read.flag,
        cp=read.cp, pnum=read.pnum, pno=read.pno,
    )  # fmt: skip
    assert text == rebuilt


def test_the_split_packets_of_table_c49_carry_their_numbers() -> None:
    """Table C.49: Flag=6 (2017, D, no answer), PNUM=2, PNO 1 and 2, each with its own QN."""
    first, second = (parse(without_ellipsis(text)) for t, text in APPENDIX_C if t == "C.49")
    assert [(s.qn, s.flag, s.pnum, s.pno, s.answer_wanted()) for s in (first, second)] == [
        ("20160801085857534", 6, 2, 1, False),
        ("20160801085857535", 6, 2, 2, False),
    ]


def test_the_answers_of_appendix_c_are_built_from_scratch() -> None:
    """The 9011 of table C.1 and the 9014 of table C.48, built field by field: ST 91, the
    request's QN echoed, Flag 4 (2017, no answer wanted)."""
    answers = [
        segment(
            qn="20160801085857223", st=ST_INTERACTION, cn=CN_REQUEST_ANSWER, pw="123456",
            mn=MN, flag=flag(2017, answer=False, split=False), cp="QnRtn=1",
        ),
        segment(
            qn="20160801085857534", st=ST_INTERACTION, cn=CN_DATA_ANSWER, pw="123456",
            mn=MN, flag=flag(2017, answer=False, split=False), cp="",
        ),
    ]  # fmt: skip
    assert [
        f"QN=20160801085857223;ST=91;CN=9011;PW=123456;MN={MN};Flag=4;CP=&&QnRtn=1&&",
        f"QN=20160801085857534;ST=91;CN=9014;PW=123456;MN={MN};Flag=4;CP=&&&&",
    ] == answers


@pytest.mark.parametrize(
    ("table", "text", "reason"),
    [
        # table C.22 prints a ',' after the QN of its upload
        ("C.22", f"QN=20160801085857534,ST=32;CN=2031;PW=123456;MN={MN};Flag=5;CP=&&&&", "QN="),
        # table C.19 prints Flag=5 straight before CP, without its ';'
        ("C.19", f"QN=20160802000000001;ST=32;CN=2041;PW=123456;MN={MN};Flag=5CP=&&&&", "';'"),
    ],
)
def test_the_misprints_of_appendix_c_are_refused(table: str, text: str, reason: str) -> None:
    """Two segments of Appendix C are misprinted; read strictly, they are not segments."""
    with pytest.raises(FrameError, match=reason):
        parse(text)


# --- Flag -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "split", "value", "where"),
    [
        (True, False, 5, "table C.1's requests"),
        (False, False, 4, "table C.1's answers"),
        (False, True, 6, "table C.49's packets"),
        (True, True, 7, "table C.50's packets; table 3: Flag=7"),
    ],
)
def test_flag_for_2017(answer: bool, split: bool, value: int, where: str) -> None:
    """Version 000001 in bits 7..2, D in bit 1, A in bit 0 give the values of the examples."""
    assert value == flag(2017, answer=answer, split=split)


def test_flag_bits() -> None:
    """A is bit 0 and D bit 1 (table 3); 2005 is version 000000."""
    assert (FLAG_A, FLAG_D, flag(2005, answer=True, split=False)) == (1, 2, 1)


def test_flag_for_2025_is_refused_until_its_bits_are_confirmed() -> None:
    """The version bits of HJ 212-2025 are not read from its text (docs/hj212.md)."""
    with pytest.raises(ValueError, match="2025"):
        flag(2025, answer=True, split=False)


# --- building and reading segments -----------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"pnum": 2}, "come together"),
        ({"pnum": 2, "pno": 1}, "D bit clear"),
        ({"flag": 7}, "D bit set"),
        ({"flag": 7, "pnum": 2, "pno": 3}, "PNO=3"),
        ({"flag": 256}, "out of range"),
        ({"pw": "12;456"}, "PW"),
        ({"qn": "2016080108585722"}, "QN"),
        ({"cp": "a=1&&b=2"}, "&&"),
    ],
)
def test_segment_refuses_what_would_not_read_back(fields: dict, reason: str) -> None:
    """A field segment() cannot write so that parse() reads it the same is a ValueError."""
    given_fields = {
        "qn": "20160801085857223", "st": "32", "cn": "2011", "pw": "123456", "mn": MN,
        "flag": 5, "cp": "", **fields,
    }  # fmt: skip
    with pytest.raises(ValueError, match=reason):
        segment(**given_fields)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("QN=20160801085857223;ST=32", "no CP=&&"),
        ("CP=&&a=1&&;", "does not end"),
        ("CP=&&a=1&&b=2&&", "'&&' inside CP"),
        ("ST=32;ST=31;CP=&&&&", "twice"),
        ("ST;CP=&&&&", "name=value"),
        ("Flag=x;CP=&&&&", "Flag"),
        ("Flag=300;CP=&&&&", "out of range"),
        ("Flag=6;PNUM=2;PNO=0;CP=&&&&", "PNO=0"),
        ("Flag=4;PNUM=2;PNO=1;CP=&&&&", "D bit clear"),
        ("ST=3;CP=&&&&", "ST"),
        ("CN=20511;CP=&&&&", "CN"),
    ],
)
def test_parse_says_what_is_wrong(text: str, reason: str) -> None:
    """A malformed segment is a FrameError that names the fault."""
    with pytest.raises(FrameError, match=reason):
        parse(text)


def test_parse_lets_pass_what_the_standard_prints_and_devices_send() -> None:
    """Spaces around a field (table C.43 prints "; Flag=5"), a field the standard does not
    name (skipped), and no QN or Flag (HJ/T 212-2005 devices)."""
    assert [
        Segment(None, "32", None, None, None, 5, None, None, ""),
        Segment(None, "32", "2011", "123456", "0873HHMZWSLH02", None, None, None, "a=1"),
    ] == [
        parse("ST=32; Flag=5 ;RF=1;CP=&&&&"),
        parse("ST=32;CN=2011;PW=123456;MN=0873HHMZWSLH02;CP=&&a=1&&"),
    ]


# --- properties ----------------------------------------------------------------------------

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
values = st.text(alphabet="0123456789.-ABCNFMSDT", min_size=1, max_size=10)
cp_items = st.lists(
    st.lists(st.tuples(names, values), min_size=1, max_size=3).map(
        lambda pairs: ",".join(f"{n}-Rtd={v}" for n, v in pairs)
    ),
    max_size=4,
).map(";".join)


@st.composite
def segments(draw: st.DrawFn) -> str:
    split = draw(st.booleans())
    pnum = draw(st.integers(1, 9999)) if split else None
    pno = draw(st.integers(1, pnum)) if pnum is not None else None
    return segment(
        qn=draw(st.none() | st.integers(0, 10**17 - 1).map("{:017d}".format)),
        st=draw(st.sampled_from(["31", "32", "91", "A0"])),
        cn=draw(st.sampled_from(["2011", "2051", "9014", "1012"])),
        pw=draw(st.text(alphabet="0123456789abcdefXYZ!#$", min_size=1, max_size=9)),
        mn=draw(st.binary(min_size=12, max_size=12).map(lambda b: b.hex().upper())),
        flag=flag(2017, answer=draw(st.booleans()), split=split),
        cp=draw(cp_items),
        pnum=pnum,
        pno=pno,
    )


@given(segments())
def test_a_built_segment_reads_back(text: str) -> None:
    """parse(segment(...)) gives back what was built, and segment() rebuilds the text."""
    read = parse(text)
    assert text == segment(
        qn=read.qn, st=read.st, cn=read.cn, pw=read.pw, mn=read.mn, flag=read.flag,
        cp=read.cp, pnum=read.pnum, pno=read.pno,
    )  # fmt: skip


@given(
    st.text()
    | st.builds(lambda a, b: f"{a};CP=&&{b}&&", st.text(), st.text())
    | st.builds(lambda a, b: f"Flag={a};PNUM={b};PNO=1;CP=&&&&", st.text(), st.text())
)
def test_parse_raises_nothing_but_frame_error(text: str) -> None:
    """Whatever the text, parse() returns a Segment or raises FrameError."""
    with contextlib.suppress(FrameError):
        assert isinstance(parse(text), Segment)


@given(st.binary(max_size=2000), st.lists(st.integers(1, 300), max_size=20))
def test_the_reader_survives_any_bytes(data: bytes, cuts: list[int]) -> None:
    """Random bytes in random pieces: no exception, and the reader holds less than one
    longest frame."""
    reader, at = Reader(), 0
    for size in [*cuts, len(data)]:
        reader.feed(data[at : at + size])
        at += size
        assert reader.buffered < LONGEST_FRAME


junk = st.lists(
    st.binary(max_size=12) | st.sampled_from([b"##", b"#", b"##9999", b"##0012", b"\r\n", b"##00"]),
    max_size=3,
).map(b"".join)


@given(st.lists(st.tuples(junk, segments()), min_size=1, max_size=4), junk, st.data())
def test_the_reader_finds_every_frame_among_junk(
    parts: list[tuple[bytes, str]], tail: bytes, data: st.DataObject
) -> None:
    """Good frames with junk before, between and after them, cut anywhere: the reader
    returns exactly the good frames, in order, and never raises."""
    stream = b"".join(j + pack(text) for j, text in parts) + tail
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8).map(sorted))
    reader = Reader()
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += reader.feed(stream[start:end])
    assert [parse(text) for _, text in parts] == [s for s in got if isinstance(s, Segment)]


def test_a_false_start_does_not_hold_back_a_good_frame() -> None:
    """`##9999` in junk promises ten thousand bytes; the good frame after it is read at
    once, and the false start is reported cut short."""
    got = Reader().feed(b"xx##9999junk" + WORKED)
    assert isinstance(got[0], FrameError)
    assert "cut short" in str(got[0])
    assert [parse(data_of(WORKED))] == got[1:]


def test_a_bad_crc_is_reported_and_the_next_frame_still_read() -> None:
    """A frame with a wrong CRC is a FrameError naming both CRCs; the next one reads."""
    got = Reader().feed(WORKED.replace(b"1C80", b"1C81") + WORKED)
    assert isinstance(got[0], FrameError)
    assert "CRC 1C81 does not match the data segment's 1C80" in str(got[0])
    assert [parse(data_of(WORKED))] == got[1:]


def test_a_wrong_length_is_reported() -> None:
    """A length that does not put CR LF after the CRC is a FrameError."""
    got = Reader().feed(WORKED.replace(b"##0101", b"##0100"))
    assert len(got) == 1 and isinstance(got[0], FrameError)
    assert "no CR LF" in str(got[0])


def test_a_frame_fed_byte_by_byte_is_read_once_complete() -> None:
    """Nothing comes out until the last byte, then the frame."""
    reader = Reader()
    got = [reader.feed(WORKED[i : i + 1]) for i in range(len(WORKED))]
    assert [[]] * (len(WORKED) - 1) + [[parse(data_of(WORKED))]] == got
    assert reader.buffered == 0
