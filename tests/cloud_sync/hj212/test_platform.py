"""The HJ 212-2017 test platform itself, against the standard's worked example and against a
raw client written here: what the agent's tests rely on it to catch and to do."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.hj212 import (
    MN,
    FrameError,
    Platform,
    crc16,
    frame,
    gateway,
    parse,
    problems,
    segment,
    take_frames,
)

pytestmark = pytest.mark.timeout(30)

EXAMPLE = (  # appendix A's worked example (the standard prints its length and CRC with it)
    "QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
    "Flag=5;CP=&&RtdInterval=30&&"
)
MINUTE = "DataTime=20160801084000;a05001-Cou=12.5,a05001-Flag=N;w01018-Avg=40.1,w01018-Flag=N"


def bitwise_crc(data: bytes) -> int:
    """Appendix A's C function, step by step, as the reference for the table."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ byte
        for _ in range(8):
            carry = crc & 1
            crc >>= 1
            if carry:
                crc ^= 0xA001
    return crc


def seg(cn: str, cp: str, **kw: Any) -> str:
    """A segment with a fixed QN (parametrize ids must not change between pytest workers)."""
    return segment(cn, cp, **{"qn": "20160801085857223", **kw})


def upload(qn: str, cn: str = "2051", cp: str = MINUTE, flag: int = 5, **kw: Any) -> bytes:
    return frame(segment(cn, cp, qn=qn, flag=flag, **kw))


# --- framing -------------------------------------------------------------------------


def test_the_worked_example_has_length_0101_and_crc_1c80() -> None:
    """Appendix A: the example's segment is 101 bytes and its CRC16 is 1C80."""
    assert b"##0101" + EXAMPLE.encode() + b"1C80\r\n" == frame(EXAMPLE)
    assert parse(frame(EXAMPLE)).values == {"RtdInterval": "30"}


@given(st.binary(max_size=300))
def test_the_table_crc_is_the_standards_bitwise_crc(data: bytes) -> None:
    """The 256-entry table gives what appendix A's bit-by-bit loop gives, for any bytes."""
    assert bitwise_crc(data) == crc16(data)


def test_the_crc_is_not_crc16_modbus() -> None:
    """MODBUS XORs each byte into the low byte: its CRC of the example differs from 1C80."""
    modbus = 0xFFFF
    for byte in EXAMPLE.encode():
        modbus ^= byte
        for _ in range(8):
            modbus = (modbus >> 1) ^ 0xA001 if modbus & 1 else modbus >> 1
    assert modbus != crc16(EXAMPLE.encode()) == 0x1C80


@given(
    st.lists(st.text(st.characters(codec="ascii", exclude_characters="#\r\n"), max_size=30)),
    st.lists(st.integers(1, 400), max_size=8),
)
def test_frames_come_out_whole_between_garbage_and_across_reads(
    garbage: list[str], cuts: list[int]
) -> None:
    """Frames separated by any garbage without # and cut into reads anywhere come out whole,
    in order, and each run of garbage is reported."""
    frames = [upload(f"20160801085000{i:03d}") for i in range(len(garbage))]
    stream = b"".join(g.encode() + f for g, f in zip(garbage, frames, strict=True))
    buffer, found, skipped, at = bytearray(), [], [], 0
    for cut in [*sorted(cuts), len(stream)]:
        buffer += stream[at:cut]
        at = max(at, cut)
        taken, junk = take_frames(buffer)
        found += taken
        skipped += junk
    assert frames == found
    assert bool(skipped) == any(garbage)


@given(st.binary(max_size=200))
def test_garbage_is_never_a_crash(data: bytes) -> None:
    """Any bytes are a frame or a FrameError; a parsed frame's checks never raise either."""
    for candidate in (data, frame(data), b"##" + data + b"\r\n"):
        try:
            got = parse(candidate)
        except FrameError:
            continue
        assert isinstance(problems(got), list)


BAD = [  # (segment, what the error says)
    (seg("2051", "DataTime=20160801084000;a05001-Cou=1.25e3,a05001-Flag=N"), "exponent"),
    (seg("2051", "DataTime=20160801084000;a05001-Cou=12.5,a05001-Flag=X"), "table 8"),
    (seg("2051", "DataTime=20161301084000;a05001-Cou=12.5"), "DataTime=20161301084000"),
    (seg("2051", "a05001-Cou=12.5;DataTime=20160801084000"), "open with DataTime"),
    (seg("2051", "DataTime=20160801084000;a05001-Cou=NaN"), "not a decimal number"),
    (seg("2051", MINUTE, flag=1), "not 000001"),
    (seg("2051", MINUTE, flag=7), "bit D"),
    (seg("2051", MINUTE, flag=7, pnum=2, pno=3), "PNO <= PNUM"),
    (seg("2051", MINUTE, mn="ABC"), "24 characters"),
    (seg("2051", MINUTE, st="91"), "ST=91"),
    (seg("2051", MINUTE, qn="2016080108"), "YYYYMMDDhhmmsszzz"),
    (seg("9012", "ExeRtn=1", st="91", flag=5), "asks for no answer"),
    (seg("9011", "QnRtn=42", st="91", flag=4), "table 7"),
    (seg("1012", "SystemTime=20160801085857"), "table 9"),
    (seg("1061", "RtdInterval=5", flag=4), "30..3600"),
]


@pytest.mark.parametrize(("text", "why"), BAD, ids=[why for _, why in BAD])
def test_a_wrong_value_is_named(text: str, why: str) -> None:
    """Each value the standard rules out is a problem that says which and why."""
    assert [p for p in problems(parse(frame(text))) if why in p]


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (frame(EXAMPLE)[:-6] + b"1C81\r\n", "bad CRC"),
        (frame(EXAMPLE)[:-6] + b"1c80\r\n", "upper-case"),
        (frame(EXAMPLE).replace(b"##0101", b"##0102"), "length says 102"),
        (frame(EXAMPLE.replace("QN=20160801085857223;ST=32", "ST=32;QN=20160801085857223")), "QN"),
        (frame(EXAMPLE.replace(";CP=&&RtdInterval=30&&", ";CP=RtdInterval=30")), "&&"),
        (frame(seg("2051", "DataTime=20160801084000" + ";a=1" * 232, mn="A")), "over 950"),
        (frame(seg("2051", "x" * 1000, mn="A" * 24)), "over 1024"),
        (frame(seg("2051", "DataTime=20160801084000;a05001-Cou")), "not key=value"),
    ],
)
def test_a_broken_frame_is_refused_with_its_reason(raw: bytes, why: str) -> None:
    """Envelope and layout: CRC, length, field order, CP's && and sizes, key=value."""
    with pytest.raises(FrameError, match=why):
        parse(raw)


# --- the platform on a socket --------------------------------------------------------


async def test_an_upload_wanting_an_answer_gets_9014_with_its_qn() -> None:
    """A 2051 upload with Flag=5 is kept and answered as in C.16: same QN, PW, MN; ST=91,
    CN=9014, Flag=4, CP=&&&&."""
    async with Platform() as platform, gateway(platform.port) as gw:
        await gw.send(upload("20160801085000001"))
        answer = await gw.read()
        expected = "QN=20160801085000001;ST=91;CN=9014;PW=123456;MN=" + MN + ";Flag=4;CP=&&&&"
        assert frame(expected) == answer.raw
        assert [f.qn for f in platform.received] == ["20160801085000001"]
        assert platform.received[0].values["a05001-Cou"] == "12.5"
        assert platform.errors == []


async def test_an_upload_without_flag_a_is_kept_and_not_answered() -> None:
    """Flag=4 asks no answer: the next answer the gateway reads is the next frame's."""
    async with Platform() as platform, gateway(platform.port) as gw:
        await gw.send(upload("20160801085000001", flag=4), upload("20160801085000002"))
        assert (await gw.read()).qn == "20160801085000002"
        assert len(platform.data()) == 2
        assert platform.errors == []


async def test_bad_crc_and_wrong_length_are_errors_and_not_answered() -> None:
    """A frame failing its CRC or length check is an error, unanswered and not received."""
    good = upload("20160801085000003")
    bad_crc = upload("20160801085000001")[:-6] + b"0000\r\n"
    bad_length = upload("20160801085000002").replace(b"##0", b"##1", 1)
    async with Platform() as platform, gateway(platform.port) as gw:
        await gw.send(bad_crc + bad_length + good)
        assert (await gw.read()).qn == "20160801085000003"
        assert [f.qn for f in platform.received] == ["20160801085000003"]
        assert [e.split(":")[0].split(" bytes")[0] for e in platform.errors] == [
            "bad CRC",
            f"length says {len(bad_length) - 12 + 1000}",
        ]


async def test_garbage_between_frames_is_skipped_and_reported() -> None:
    """Bytes outside frames are skipped (the platform resyncs on ##) and reported."""
    async with Platform() as platform, gateway(platform.port) as gw:
        await gw.send(b"\x00junk" + upload("20160801085000001") + b"AT+OK\r\n")
        await gw.send(upload("20160801085000002"))
        assert [(await gw.read()).qn, (await gw.read()).qn] == [
            "20160801085000001",
            "20160801085000002",
        ]
        assert all("garbage" in e for e in platform.errors)
        assert sum(int(e.split()[0]) for e in platform.errors) == len(b"\x00junk" + b"AT+OK\r\n")


async def test_a_frame_split_over_several_writes_is_read() -> None:
    """A frame arriving a few bytes at a time is put together and answered."""
    raw = upload("20160801085000001")
    async with Platform() as platform, gateway(platform.port) as gw:
        await gw.send(*(raw[i : i + 7] for i in range(0, len(raw), 7)))
        assert (await gw.read()).qn == "20160801085000001"
        assert platform.errors == []


async def test_wrong_password_and_unknown_mn_are_errors() -> None:
    """PW must be the platform's and MN one of its own; such a frame goes unanswered."""
    other = "010000A8900016F000169DC1"
    async with Platform(pw="654321", mns={MN}) as platform, gateway(platform.port) as gw:
        await gw.send(
            upload("20160801085000001"), upload("20160801085000002", mn=other, pw="654321")
        )
        await gw.send(upload("20160801085000003", pw="654321"))
        assert (await gw.read()).qn == "20160801085000003"
        assert ["PW=123456", "MN=" + other] == [e.split(":")[0] for e in platform.errors]


async def test_split_packets_are_put_back_together() -> None:
    """C.50: PNUM=2 packets with their own QNs and the same DataTime, each answered, are one
    message in data(), with the items of both and DataTime once."""
    first = "DataTime=20160801080000;w00000-Cou=63.0,w00000-Flag=N"
    second = "DataTime=20160801080000;w01018-Avg=40.1,w01018-Flag=N"
    async with Platform() as platform, gateway(platform.port) as gw:
        await gw.send(upload("20160801085857534", "2061", first, 7, pnum=2, pno=1))
        assert (await gw.read()).qn == "20160801085857534"
        await gw.send(upload("20160801085857534", "2061", first, 7, pnum=2, pno=1))  # resent
        assert (await gw.read()).qn == "20160801085857534"
        await gw.send(upload("20160801085857535", "2061", second, 7, pnum=2, pno=2))
        assert (await gw.read()).qn == "20160801085857535"
        [message] = platform.data("2061", MN)
        assert message.packets == 2
        assert message.values == {
            "DataTime": "20160801080000",
            "w00000-Cou": "63.0",
            "w00000-Flag": "N",
            "w01018-Avg": "40.1",
            "w01018-Flag": "N",
        }
        assert platform.errors == []


async def test_packets_out_of_order_are_an_error() -> None:
    """PNO 2 with no PNO 1 before it is an error and no message."""
    async with Platform() as platform, gateway(platform.port) as gw:
        await gw.send(upload("20160801085857535", "2061", MINUTE, 7, pnum=2, pno=2))
        await gw.read()
        assert platform.data("2061") == []
        assert platform.errors == ["CN=2061 packet PNO=2/PNUM=2 after 0"]


async def answered(platform: Platform, count: int) -> list[str]:
    """The QNs answered out of `count` uploads, read up to a final upload answered for sure."""
    async with gateway(platform.port) as gw:
        await gw.send(*(upload(f"20160801085000{i:03d}") for i in range(count)))
        await platform.wait_for(lambda: len(platform.received) == count)
        platform.silent = 0.0  # the draws for the `count` are done with the last received
        await gw.send(upload("20160801085959999"))
        qns = []
        while (qn := (await gw.read()).qn) != "20160801085959999":
            qns.append(qn)
        return qns


async def test_silent_leaves_a_seeded_share_unanswered() -> None:
    """silent=0.5 leaves some of 20 uploads unanswered, the same ones for the same seed;
    all are received."""
    runs = []
    for _ in range(2):
        async with Platform(silent=0.5, seed=7) as platform:
            runs.append(await answered(platform, 20))
            assert len(platform.received) == 21
    assert 0 < len(runs[0]) < 20
    assert runs[0] == runs[1]


async def test_hang_up_drops_the_connection_without_answering() -> None:
    """hang_up=1: the frame is received, then the connection closes; the gateway may
    connect again."""
    async with Platform(hang_up=1.0) as platform:
        async with gateway(platform.port) as gw:
            await gw.send(upload("20160801085000001"))
            assert await gw.hung_up()
        platform.hang_up = 0.0
        async with gateway(platform.port) as gw:
            await gw.send(upload("20160801085000002"))
            assert (await gw.read()).qn == "20160801085000002"
        assert [f.qn for f in platform.received] == ["20160801085000001", "20160801085000002"]
        assert platform.accepted == 2
        assert platform.errors == []


async def test_stop_and_start_keep_the_port() -> None:
    """stop() drops the gateway and refuses connections; start() listens on the same port."""
    async with Platform() as platform:
        port = platform.port
        async with gateway(port) as gw:
            await platform.stop()
            assert await gw.hung_up()
        with pytest.raises(OSError):
            async with gateway(port):
                pass
        await platform.start()
        assert platform.port == port
        async with gateway(port) as gw:
            await gw.send(upload("20160801085000001"))
            assert (await gw.read()).qn == "20160801085000001"


async def test_two_gateways_at_once_each_get_their_own_answers_and_requests() -> None:
    """Two connections at once (a gateway reconnecting, or two): answers go back on the
    connection the frame came on, a request to the connection its MN last sent on."""
    other = "010000A8900016F000169DC1"
    async with (
        Platform() as platform,
        gateway(platform.port) as one,
        gateway(platform.port) as two,
    ):
        await one.send(upload("20160801085000001"))
        await two.send(upload("20160801085000002", mn=other))
        assert [(await one.read()).mn, (await two.read()).mn] == [MN, other]
        assert platform.connections == 2
        assert await platform.request("1061", mn=other, timeout=0.01) == []
        asked = await two.read()
        assert (asked.cn, asked.mn) == ("1061", other)


async def test_request_collects_the_replies_up_to_9012() -> None:
    """1011 (C.2): the platform's request (ST of the gateway's uploads, Flag=5) gets 9011,
    the 1011 with SystemTime and 9012, all with its QN, and request() returns the three."""
    async with Platform() as platform, gateway(platform.port) as gw:
        await gw.send(upload("20160801085000001", st="31"))
        await gw.read()

        async def answer() -> None:
            asked = await gw.read()
            assert (asked.cn, asked.fields["ST"], asked.flag, asked.mn) == ("1011", "31", 5, MN)
            qn = asked.qn
            await gw.send(
                frame(segment("9011", "QnRtn=1", qn=qn, st="91", flag=4)),
                frame(segment("1011", "SystemTime=20160801085857", qn=qn, st="31", flag=4)),
                frame(segment("9012", "ExeRtn=1", qn=qn, st="91", flag=4)),
            )

        replies, _ = await asyncio.gather(platform.request("1011", mn=MN), answer())
        assert [r.cn for r in replies] == ["9011", "1011", "9012"]
        assert replies[1].values == {"SystemTime": "20160801085857"}
        assert platform.errors == []


async def test_a_history_request_collects_the_data_under_their_own_qns() -> None:
    """2051 with BeginTime/EndTime (C.20): the minute data come with QNs of their own and
    are collected; a minute upload outside the window is not."""
    cp = "BeginTime=20160801084000;EndTime=20160801085000"
    async with Platform() as platform, gateway(platform.port) as gw:

        async def answer() -> None:
            qn = (await gw.read()).qn
            await gw.send(
                frame(segment("9011", "QnRtn=1", qn=qn, st="91", flag=4)),
                upload("20160801085857534", cp=MINUTE, flag=4),
                upload("20160801085857535", cp=MINUTE.replace("084000", "090000"), flag=4),
                frame(segment("9012", "ExeRtn=1", qn=qn, st="91", flag=4)),
            )

        replies, _ = await asyncio.gather(platform.request("2051", cp, mn=MN), answer())
        assert [r.qn[-3:] for r in replies if r.cn == "2051"] == ["534"]
        assert [r.cn for r in replies] == ["9011", "2051", "9012"]


async def test_a_refused_request_ends_at_9011_and_silence_at_the_timeout() -> None:
    """QnRtn other than 1 ends the request; a gateway that says nothing gives []."""
    async with Platform() as platform, gateway(platform.port) as gw:

        async def refuse() -> None:
            qn = (await gw.read()).qn
            await gw.send(frame(segment("9011", "QnRtn=8", qn=qn, st="91", flag=4)))

        replies, _ = await asyncio.gather(platform.request("1999", mn=MN), refuse())
        assert [(r.cn, r.values) for r in replies] == [("9011", {"QnRtn": "8"})]
        assert await platform.request("1061", mn=MN, timeout=0.05) == []
        await platform.send_raw(b"garbage")
        await gw.read()  # the 1061 request
        assert await gw.reader.readexactly(7) == b"garbage"


async def test_wait_for_gives_up_with_what_it_saw() -> None:
    """wait_for raises AssertionError naming the frames and errors when time runs out."""
    async with Platform() as platform:
        with pytest.raises(AssertionError, match="0 frames received"):
            await platform.wait_for(lambda: platform.received, timeout=0.02)
