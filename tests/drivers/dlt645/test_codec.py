"""DL/T 645-2007 frames and BCD values against the worked frames of domain.md §4.5 and §4.8."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.loader import load_profile
from config.profiles import list_profiles
from domain.errors import BadReply, DecodeError, DeviceRejected, FrameError
from drivers.dlt645.codec import (
    EDITION_1997,
    EDITION_2007,
    WILDCARD,
    Frame,
    decode_bcd,
    decode_point,
    describe_error,
    encode_bcd,
    meter_address,
    mismatch,
    modulus,
    parse,
    read_address,
    read_data,
    read_follow_up,
    reply_data,
    scan,
)
from drivers.dlt645.settings import Dlt645Point


def wire(text: str) -> bytes:
    return bytes.fromhex(text)


# --- requests ----------------------------------------------------------------------

REQUESTS = [
    ("000012345678", "00010000", "68 78 56 34 12 00 00 68 11 04 33 33 34 33 C6 16"),
    ("000012345678", "02030000", "68 78 56 34 12 00 00 68 11 04 33 33 36 35 CA 16"),
    ("000012345678", "02010100", "68 78 56 34 12 00 00 68 11 04 33 34 34 35 C9 16"),
    ("000012345678", "03300100", "68 78 56 34 12 00 00 68 11 04 33 34 63 36 F9 16"),
    ("000000000001", "00010000", "68 01 00 00 00 00 00 68 11 04 33 33 34 33 B3 16"),  # rulego
    ("123456789012", "02010100", "68 12 90 78 56 34 12 68 11 04 33 34 34 35 6B 16"),  # rulego
]


@pytest.mark.parametrize(("address", "di", "frame"), REQUESTS)
def test_a_read_request_is_the_worked_frame(address: str, di: str, frame: str) -> None:
    """read_data encodes address low byte first, DI0 first, +0x33 and the checksum as published."""
    assert wire(frame) == read_data(address, di).encode(preamble=False)


def test_a_request_starts_with_the_wake_up_preamble() -> None:
    """Requests are sent behind FE FE FE FE; the wildcard read-address frame is the public one."""
    assert wire("FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16") == read_address().encode()


def test_a_follow_up_request_carries_the_di_and_the_frame_number() -> None:
    """0x12 asks for follow-up frame n: DI0..DI3 then n, all +0x33."""
    frame = parse(read_follow_up("000012345678", "00010000", 1).encode())
    assert (0x12, bytes([0, 0, 1, 0, 1])) == (frame.control, frame.data)


# --- replies -------------------------------------------------------------------------

REPLIES = [
    # address, DI, format, signed, frame, value
    ("000012345678", "00010000", "XXXXXX.XX", False,
     "68 78 56 34 12 00 00 68 91 08 33 33 34 33 9A 78 56 34 E6 16", 12345.67),
    ("000012345678", "02030000", "XX.XXXX", True,
     "68 78 56 34 12 00 00 68 91 07 33 33 36 35 78 56 34 4F 16", 1.2345),
    ("000012345678", "02030000", "XX.XXXX", True,
     "68 78 56 34 12 00 00 68 91 07 33 33 36 35 78 56 B4 CF 16", -1.2345),
    ("000012345678", "02010100", "XXX.X", False,
     "68 78 56 34 12 00 00 68 91 06 33 34 34 35 38 55 D8 16", 220.5),
    ("000000000001", "00010000", "XXXXXX.XX", False,
     "68 01 00 00 00 00 00 68 91 08 33 33 34 33 AB 89 67 45 17 16", 123456.78),
    ("398192000337", "00010000", "XXXXXX.XX", False,
     "68 37 03 00 92 81 39 68 91 08 33 33 34 33 37 33 33 33 8C 16", 0.04),
]  # fmt: skip


@pytest.mark.parametrize(("address", "di", "fmt", "signed", "frame", "value"), REPLIES)
def test_a_reply_decodes_to_the_published_value(
    address: str, di: str, fmt: str, signed: bool, frame: str, value: float
) -> None:
    """Each worked reply is from the meter asked, echoes the DI and holds the published value."""
    reply = parse(wire(frame))
    data = reply_data(read_data(address, di), reply)
    assert (address, value) == (reply.address, decode_bcd(data, fmt, signed))


def test_a_reply_encodes_back_to_the_published_frame() -> None:
    """Frame.encode is parse's inverse on a worked reply."""
    frame = wire("68 78 56 34 12 00 00 68 91 08 33 33 34 33 9A 78 56 34 E6 16")
    assert frame == parse(frame).encode(preamble=False)


def test_the_address_reply_gives_the_meter_address() -> None:
    """A 0x93 reply carries the address, low byte first, in its data field."""
    reply = parse(wire("68 01 00 00 00 00 00 68 93 06 34 33 33 33 33 33 9D 16"))
    assert meter_address(reply) == "000000000001"
    assert reply.data == reply_data(read_address(), reply)


def test_an_error_reply_is_decoded_as_bits() -> None:
    """ERR 0x02 (the worked error reply) means the meter has no such data."""
    reply = parse(wire("68 78 56 34 12 00 00 68 D1 01 35 EB 16"))
    with pytest.raises(DeviceRejected) as caught:
        reply_data(read_data("000012345678", "00010000"), reply)
    assert (
        str(caught.value),
        caught.value.code,
    ) == ("error reply: no requested data (DI not supported)", 2)


ERRORS = [
    (0x01, "other error"),
    (0x02, "no requested data (DI not supported)"),
    (0x03, "other error; no requested data (DI not supported)"),  # the Go test's "no data"
    (0x04, "password wrong / unauthorised"),
    (0x00, "no reason given (ERR 0x00)"),
]


@pytest.mark.parametrize(("err", "text"), ERRORS)
def test_the_error_word_reads_bit_by_bit(err: int, text: str) -> None:
    """ERR is a bit field: 0x03 is two reasons, never a code of its own."""
    assert text == describe_error(err)


# --- what is not a frame, or not the answer ---------------------------------------------

WRONG_CHECKSUM = [
    ("68 37 03 00 92 81 39 68 91 06 33 34 34 35 C7 56 B6 16", 0xDA),  # Ua 239.4 V, §4.8
    ("68 16 00 00 00 15 20 68 11 04 35 33 B3 35 85 16", 0x80),  # read frequency, §4.8
]


@pytest.mark.parametrize(("frame", "correct"), WRONG_CHECKSUM)
def test_the_published_frames_with_a_wrong_checksum_are_rejected(frame: str, correct: int) -> None:
    """Both §4.8 examples fail the checksum; with the corrected checksum they parse."""
    raw = bytearray(wire(frame))
    with pytest.raises(
        FrameError, match=f"checksum {raw[-2]:02X}, the bytes add up to {correct:02X}"
    ):
        parse(bytes(raw))
    raw[-2] = correct
    assert parse(bytes(raw)).address in ("398192000337", "201500000016")


def test_the_corrected_voltage_example_reads_239_4_volts() -> None:
    """The §4.8 voltage reply, once its checksum is right, holds 239.4 V."""
    reply = parse(wire("68 37 03 00 92 81 39 68 91 06 33 34 34 35 C7 56 DA 16"))
    data = reply_data(read_data("398192000337", "02010100"), reply)
    assert decode_bcd(data, "XXX.X") == 239.4


def test_fe_preamble_and_junk_before_a_frame_are_skipped() -> None:
    """The parser resynchronises on 68 .. 68 after any FE bytes and line noise."""
    noise = wire("00 FF 68 12 FE FE FE FE")
    frame = wire("68 78 56 34 12 00 00 68 D1 01 35 EB 16")
    assert parse(frame) == parse(noise + frame)


def test_a_false_start_in_junk_is_skipped_once_its_length_shows_it() -> None:
    """68 .. 68 inside noise is a frame start until its announced end is not 16."""
    false_start = wire("68 01 02 03 04 05 06 68 11 02 AA BB CC 00")
    frame = wire("68 78 56 34 12 00 00 68 D1 01 35 EB 16")
    assert parse(false_start + frame) == parse(frame)


def test_a_frame_cut_short_is_incomplete() -> None:
    """Bytes up to the data field are not a frame yet."""
    with pytest.raises(FrameError, match="incomplete frame: 12 bytes from its start, 20 bytes"):
        parse(wire("FE FE 68 78 56 34 12 00 00 68 91 08 33 33"))


def test_noise_without_a_start_is_no_frame() -> None:
    """A reply at the wrong baud rate is no frame at all, and says what it was."""
    with pytest.raises(FrameError, match=r"no frame .* in 3 bytes: 00 7F FF"):
        parse(wire("00 7F FF"))


def test_a_reply_from_another_meter_is_refused() -> None:
    """The reply's address must be the one asked."""
    reply = parse(wire("68 01 00 00 00 00 00 68 91 08 33 33 34 33 AB 89 67 45 17 16"))
    with pytest.raises(BadReply, match="reply from meter 000000000001, not the one asked"):
        reply_data(read_data("000012345678", "00010000"), reply)


def test_the_wildcard_accepts_the_reply_of_any_meter() -> None:
    """On a point-to-point link the one meter answers AAAAAAAAAAAA with its own address."""
    reply = parse(wire("68 01 00 00 00 00 00 68 91 08 33 33 34 33 AB 89 67 45 17 16"))
    assert decode_bcd(reply_data(read_data(WILDCARD, "00010000"), reply), "XXXXXX.XX") == 123456.78


def test_a_reply_for_another_di_is_refused() -> None:
    """The echoed DI must be the requested one before anything is decoded."""
    reply = parse(wire("68 78 56 34 12 00 00 68 91 08 33 33 34 33 9A 78 56 34 E6 16"))
    with pytest.raises(BadReply, match="reply for DI 00010000, not the one asked"):
        reply_data(read_data("000012345678", "00020000"), reply)


def test_a_follow_up_reply_drops_its_frame_number() -> None:
    """0x92 replies end with the frame number asked; the value bytes are in between."""
    request = read_follow_up("000012345678", "00010000", 2)
    reply = Frame("000012345678", 0x92, bytes([0, 0, 1, 0, 0x45, 0x23, 2]))
    assert bytes([0x45, 0x23]) == reply_data(request, reply)
    with pytest.raises(BadReply, match="not frame 2"):
        reply_data(request, Frame("000012345678", 0x92, bytes([0, 0, 1, 0, 0x45, 0x23, 1])))


ME, B = "000012345678", "000000000002"
VALUE = bytes([0, 0, 1, 0, 0x45, 0x23, 0x01, 0x00])  # DI 00010000, 123.45 kWh

MISMATCHES = [
    (read_data(ME, "00010000"), Frame(ME, 0x91, VALUE), None),
    (read_data(WILDCARD, "00010000"), Frame(B, 0x91, VALUE), None),
    (read_data(ME, "00010000"), Frame(ME, 0xD1, b"\x02"), None),  # an error reply: no DI echo
    (read_data(ME, "00010000"), Frame(B, 0x91, VALUE), f"a reply from meter {B}"),
    (read_data(ME, "00010000"), Frame(ME, 0x93, VALUE[:6]), "a frame with control code 93"),
    (read_data(ME, "00010000"), Frame(ME, 0x11, VALUE[:4]), "a frame with control code 11"),
    (read_data(ME, "00020000"), Frame(ME, 0x91, VALUE), "a reply for DI 00010000"),
    (read_follow_up(ME, "00010000", 2), Frame(ME, 0x92, VALUE[:6] + b"\x02"), None),
    (read_follow_up(ME, "00010000", 2), Frame(ME, 0x92, VALUE[:6] + b"\x01"),
     "a reply for follow-up frame 1"),
    (read_address(), Frame("123456789012", 0x93, bytes(6)), None),
]  # fmt: skip


@pytest.mark.parametrize(("request_", "reply", "why"), MISMATCHES)
def test_a_frame_that_answers_another_question_is_told_apart(
    request_: Frame, reply: Frame, why: str | None
) -> None:
    """Another meter, function, DI or follow-up frame is not the answer; an error reply may be."""
    assert why == mismatch(request_, reply)


@given(st.binary(max_size=300))
def test_any_bytes_parse_to_a_frame_or_a_frame_error(data: bytes) -> None:
    """Whatever arrives on the line, parse returns a Frame or raises FrameError, nothing else."""
    try:
        result = parse(data)
    except FrameError:
        return
    assert isinstance(result, Frame)


@given(st.binary(max_size=300))
def test_scan_never_raises_and_consumes_within_the_buffer(data: bytes) -> None:
    """The streaming scanner reports errors as values and never runs past the bytes it has."""
    found, used = scan(data)
    assert isinstance(found, Frame | FrameError | None)
    assert 0 <= used <= len(data)


junk = st.binary(max_size=40).map(lambda b: b.replace(b"\x68", b""))


@given(
    junk,
    st.text("0123456789", min_size=12, max_size=12),
    st.integers(0, 255),
    st.binary(max_size=200),
)
def test_a_frame_behind_junk_parses_to_itself(
    noise: bytes, address: str, control: int, data: bytes
) -> None:
    """Encoding then parsing gives the same frame, whatever noise (without 68) comes first."""
    frame = Frame(address, control, data)
    assert frame == parse(noise + frame.encode())


# --- values ------------------------------------------------------------------------------

BCD = [
    # value bytes (as sent, low byte first, 0x33 removed), format, signed, value
    ("67 45 23 01", "XXXXXX.XX", False, 12345.67),
    ("99 99 99 99", "XXXXXX.XX", False, 999999.99),
    ("00 00 00 00", "XXXXXX.XX", False, 0.0),
    ("45 23 01", "XX.XXXX", True, 1.2345),
    ("45 23 81", "XX.XXXX", True, -1.2345),
    ("56 34 92", "XX.XXXX", True, -12.3456),  # mask 0x7F keeps the tens digit; 0x0F would not
    ("56 34 12", "XX.XXXX", True, 12.3456),
    ("00 10", "X.XXX", True, 1.0),
    ("50 89", "X.XXX", True, -0.95),
    ("01 50", "XX.XX", False, 50.01),
    ("05 22", "XXX.X", False, 220.5),
    ("34 12 00", "XXX.XXX", True, 1.234),
    ("34 12 80", "XXX.XXX", True, -1.234),
    ("21 43 05", "XXXXX", False, 54321.0),  # an odd digit count pads the top nibble
]


@pytest.mark.parametrize(("raw", "fmt", "signed", "value"), BCD)
def test_bcd_decodes_by_the_format(raw: str, fmt: str, signed: bool, value: float) -> None:
    """Little-endian packed BCD, decimals from the format, sign in bit 0x80 of the top byte."""
    assert value == decode_bcd(wire(raw), fmt, signed)


NOT_BCD = [
    ("6A 45 23 01", "XXXXXX.XX", False, "not BCD: 6A 45 23 01 has a digit above 9"),
    ("67 45 23 F1", "XXXXXX.XX", False, "not BCD: 67 45 23 F1 has a digit above 9"),
    ("45 23 81", "XXXXXX.XX", False, "3 value bytes where format XXXXXX.XX has 4"),
    ("45 23 FA", "XX.XXXX", True, "not BCD"),  # 0x7A: above 9 once the sign bit is masked
]


@pytest.mark.parametrize(("raw", "fmt", "signed", "message"), NOT_BCD)
def test_a_nibble_above_nine_or_a_wrong_size_is_a_decode_error(
    raw: str, fmt: str, signed: bool, message: str
) -> None:
    """A value that is not BCD in the point's format is never a number."""
    with pytest.raises(DecodeError, match=message):
        decode_bcd(wire(raw), fmt, signed)


def test_an_unsigned_value_keeps_its_top_digit() -> None:
    """Without `signed`, a top digit of 8 or 9 is a digit, not a sign."""
    assert decode_bcd(wire("67 45 23 91"), "XXXXXX.XX") == 912345.67


@given(st.integers(0, 99_999_999), st.sampled_from(["XXXXXX.XX", "XXXX.XXXX", "XXXXXXXX"]))
def test_unsigned_bcd_round_trips(units: int, fmt: str) -> None:
    """encode_bcd and decode_bcd are inverse over the whole unsigned range of a format."""
    decimals = len(fmt.partition(".")[2])
    value = units / 10**decimals
    assert value == decode_bcd(encode_bcd(value, fmt), fmt)


@given(st.integers(-799_999, 799_999))
def test_signed_bcd_round_trips(units: int) -> None:
    """Signed values up to 79.9999 round-trip through the sign bit."""
    value = units / 10**4
    assert value == decode_bcd(encode_bcd(value, "XX.XXXX", True), "XX.XXXX", True)


def test_the_energy_register_rolls_over_after_999999_99() -> None:
    """XXXXXX.XX wraps at 1 000 000 kWh, as the meter's own register does."""
    assert modulus("XXXXXX.XX") == 1_000_000.0
    assert decode_bcd(encode_bcd(1_000_000.01, "XXXXXX.XX"), "XXXXXX.XX") == 0.01


def test_scale_and_offset_apply_after_decoding() -> None:
    """value = BCD x scale + offset: a CT meter's secondary kWh times its ratio."""
    point = Dlt645Point(name="e", di="00010000", scale=40.0, offset=1.0)
    assert decode_point(wire("67 45 23 01"), point) == 12345.67 * 40.0 + 1.0


def _dlt645_points() -> list[tuple[str, Dlt645Point]]:
    return [
        (name, point)
        for name in list_profiles()
        for point in load_profile(name).profile.points
        if isinstance(point, Dlt645Point)
    ]


@pytest.mark.parametrize(("profile", "point"), _dlt645_points())
def test_every_dlt645_profile_point_decodes_a_synthetic_reply(
    profile: str, point: Dlt645Point
) -> None:
    """Each point of each shipped profile reads its value back from a reply frame of its
    edition (a 4-digit DI is DL/T 645-1997's)."""
    edition = EDITION_1997 if len(point.di) == 4 else EDITION_2007
    whole, _, decimals = point.format.partition(".")
    value = -1.5 if point.signed else (12.5 if len(whole) > 1 else 0.5) if decimals else 12.0
    request = read_data("000012345678", point.di, edition)
    reply = Frame(
        request.address,
        request.control | 0x80,
        request.data + encode_bcd(value, point.format, point.signed),
    )
    data = reply_data(request, parse(reply.encode()))
    assert value * point.scale + point.offset == decode_point(data, point)
