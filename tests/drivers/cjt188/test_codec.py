"""CJ/T 188 frames and values, checked against worked examples and fed garbage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import BadReply, DecodeError, DeviceRejected, FrameError
from drivers.cjt188.codec import (
    Frame,
    address_matches,
    decode_bcd,
    decode_field,
    describe_status,
    encode_bcd,
    mismatch,
    parse,
    read_address,
    read_data,
    reply_data,
    scan,
)
from drivers.cjt188.tables import DIMENSIONS, UNIT_CODES, convert

HEAT = "78330011223344"  # A6..A0 of the worked example below


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_a_read_request_is_the_published_example_byte_for_byte() -> None:
    """'CJ/T-188 冷热量表协议解析' (biecuoliao.com/pa/MPREpm3.html) reads a heat meter with
    68 20 44 33 22 11 00 33 78 01 03 1F 90 01 91 16: DI low byte first (as 2018 sends it),
    serial number 01, checksum 91. Preamble FE FE FE FE before it."""
    request = read_data(0x20, HEAT, "901F", 1, high_first=False)
    wire = hexbytes("FE FE FE FE 68 20 44 33 22 11 00 33 78 01 03 1F 90 01 91 16")
    assert request.encode() == wire


def test_a_2004_request_sends_the_identifier_high_byte_first() -> None:
    """'CJ/T-188 冷热量表协议解析2' (cnblogs.com/llguanli/p/8683992.html), a JY heat meter:
    68 20 32 41 31 40 00 00 00 01 03 90 1F 01 20 16."""
    request = read_data(0x20, "00000040314132", "901F", 1, high_first=True)
    assert request.encode(preamble=False) == hexbytes(
        "68 20 32 41 31 40 00 00 00 01 03 90 1F 01 20 16"
    )


# The reply of the first page's example (its field values; the checksum, which the page
# copies from the request, recomputed): heat 123456.78 kWh twice, power 123456.78 kW,
# flow rate 78 56 34 12 (1234.5678 m3/h read as XXXX.XXXX), volume 123456.78 m3,
# temperatures 1234.56, hours 123456, time, ST 00 00.
HEAT_REPLY = (
    "FE FE FE FE 68 20 44 33 22 11 00 33 78 81 2E 1F 90 01"
    " 78 56 34 12 05 78 56 34 12 05 78 56 34 12 17 78 56 34 12 35 78 56 34 12 2C"
    " 56 34 12 56 34 12 56 34 12 20 14 03 18 12 56 59 00 00 06 16"
)


@pytest.mark.parametrize(
    ("field", "unit", "value"),
    [
        ("settlement_heat", "kWh", 123456.78),
        ("heat", "kWh", 123456.78),
        ("heat", "MJ", 123456.78 * 3.6),
        ("power", "kW", 123456.78),
        ("flow_rate", "m3/h", 1234.5678),
        ("flow", "m3", 123456.78),
        ("flow", "L", 123456780.0),
        ("supply_temp", "°C", 1234.56),
        ("return_temp", "°C", 1234.56),
        ("hours", "h", 123456.0),
        ("valve_open", "", 1.0),
        ("battery_low", "", 0.0),
    ],
)
def test_the_worked_heat_reply_decodes_field_by_field(field: str, unit: str, value: float) -> None:
    request = read_data(0x20, HEAT, "901F", 1, high_first=False)
    reply = parse(hexbytes(HEAT_REPLY))
    assert (reply.meter_type, reply.address, reply.control) == (0x20, HEAT, 0x81)
    data = reply_data(request, reply)
    assert decode_field(data, "901F", 0x20, field, unit) == pytest.approx(value, rel=1e-12)


def test_the_reply_is_accepted_with_the_identifier_in_either_order() -> None:
    """A JY meter asked 90 1F answers 1F 90: the echo is the same DI."""
    asked = read_data(0x20, HEAT, "901F", 1, high_first=True)
    assert mismatch(asked, parse(hexbytes(HEAT_REPLY))) is None


def test_a_reply_for_another_identifier_or_serial_number_is_not_the_answer() -> None:
    reply = parse(hexbytes(HEAT_REPLY))
    other_di = read_data(0x20, HEAT, "D120", 1, high_first=False)
    other_ser = read_data(0x20, HEAT, "901F", 2, high_first=False)
    other_meter = read_data(0x20, "00000000000001", "901F", 1, high_first=False)
    assert mismatch(other_di, reply) == "a reply for DI 1F90"
    assert mismatch(other_ser, reply) == "a reply with serial number 1 (asked 2)"
    assert mismatch(other_meter, reply) == f"a reply from meter {HEAT}"
    with pytest.raises(BadReply, match="serial number 1"):
        reply_data(other_ser, reply)


def test_a_meter_that_changes_its_unit_reports_the_same_heat() -> None:
    """The same heat sent in kWh, MWh, MJ or GJ decodes to one number in the point's unit."""
    request = read_data(0x20, HEAT, "901F", 1, high_first=False)
    base = bytearray(parse(hexbytes(HEAT_REPLY)).data)
    readings = []
    for digits, code in (("78 56 34 12", 0x05), ("50 23 01 00", 0x08), ("00 44 44 44", 0x0E)):
        base[8:13] = hexbytes(digits) + bytes([code])  # the current heat's slot
        reply = Frame(0x20, HEAT, 0x81, bytes(base))
        readings.append(decode_field(reply_data(request, reply), "901F", 0x20, "heat", "kWh"))
    assert readings == pytest.approx([123456.78, 123500.0, 444444.0 / 3.6])


@pytest.mark.parametrize(
    ("code", "why"),
    [
        (0x2C, "unit code 2CH is m3, a volume unit, where an energy was expected"),
        (0x99, "unit code 99H is not in the CJ/T 188 unit table"),
    ],
)
def test_a_unit_code_of_another_kind_or_unknown_is_refused_by_name(code: int, why: str) -> None:
    data = bytearray(parse(hexbytes(HEAT_REPLY)).data[3:])
    data[9] = code  # the current heat's unit code
    with pytest.raises(DecodeError, match=why):
        decode_field(bytes(data), "901F", 0x20, "heat", "kWh")


def test_a_heat_reply_read_as_a_water_meter_names_the_meter_type() -> None:
    data = parse(hexbytes(HEAT_REPLY)).data[3:]
    with pytest.raises(DecodeError, match=r"43 data bytes .* 19 \(is meter_type right\?\)"):
        decode_field(data, "901F", 0x10, "flow", "m3")


def test_an_abnormal_reply_says_what_its_status_means() -> None:
    """C1H with SER and ST 05 00: valve closed, battery low."""
    request = read_data(0x10, "00000012345678", "901F", 7, high_first=True)
    reply = Frame(0x10, "00000012345678", 0xC1, bytes([7, 0x05, 0x00]))
    with pytest.raises(DeviceRejected, match="abnormal reply: valve closed; battery low") as got:
        reply_data(request, reply)
    assert got.value.code == 0x0005


def test_status_bits_read_as_the_standard_lays_them_out() -> None:
    assert describe_status(bytes([0x03, 0x00])) == "valve fault"
    assert describe_status(bytes([0x00, 0x80])) == "valve open; maker's bits 8000H"


def test_the_wildcard_address_matches_any_meter_and_read_address_uses_it() -> None:
    assert address_matches("AAAAAAAAAAAAAA", "00000012345678")
    assert address_matches("AAAAAAAA345678", "00000012345678")
    assert not address_matches("AAAAAAAA345679", "00000012345678")
    request = read_address(0x10, 3, high_first=True)
    assert request.encode(preamble=False) == hexbytes(
        "68 10 AA AA AA AA AA AA AA 03 03 81 0A 03 B2 16"
    )


def test_a_garbled_checksum_and_a_cut_frame_are_frame_errors() -> None:
    wire = bytearray(hexbytes(HEAT_REPLY))
    wire[-2] ^= 0xFF
    with pytest.raises(FrameError, match="garbled reply: checksum F9, the bytes add up to 06"):
        parse(bytes(wire))
    with pytest.raises(FrameError, match="incomplete frame: 20 bytes from its start, 59 bytes"):
        parse(hexbytes(HEAT_REPLY)[4:24])


def test_a_frame_is_found_after_junk_with_a_false_start_in_it() -> None:
    """68 in the noise promising a long frame does not hide the real one behind it."""
    junk = bytes([0x68, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x81, 0xF0, 0x33])
    found, used = scan(junk + hexbytes(HEAT_REPLY))
    assert isinstance(found, Frame) and found.address == HEAT
    assert used == len(junk) + len(hexbytes(HEAT_REPLY))


@given(st.binary(max_size=300))
def test_garbage_never_raises_anything_but_a_frame_error(data: bytes) -> None:
    found, used = scan(data)
    assert 0 <= used <= len(data)
    assert found is None or isinstance(found, Frame | FrameError)
    try:
        frame = parse(data)
    except FrameError:
        return
    assert frame.encode(preamble=False) in data


@given(st.binary(min_size=3, max_size=60), st.sampled_from(["901F", "D120", "D12B"]))
def test_garbage_data_decodes_to_a_value_or_a_decode_error(data: bytes, di: str) -> None:
    request = read_data(0x20, HEAT, di, 1, high_first=True)
    reply = Frame(0x20, HEAT, 0x81, request.data[:3] + data)
    for field, unit in (("heat", "kWh"), ("supply_temp", "°C"), ("battery_low", "")):
        try:
            value = decode_field(reply_data(request, reply), di, 0x20, field, unit)
        except DecodeError:
            continue
        assert value >= 0


@given(st.integers(min_value=0, max_value=99_999_999), st.integers(0, 4))
def test_bcd_round_trips(units: int, decimals: int) -> None:
    value = units / 10**decimals
    assert decode_bcd(encode_bcd(value, 4, decimals), decimals) == value


@given(
    st.sampled_from(sorted(UNIT_CODES)),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_a_unit_converted_and_back_is_the_same_value(code: int, value: float) -> None:
    meaning = UNIT_CODES[code]
    for unit, size in DIMENSIONS[meaning.dimension].items():
        there = convert(value, code, unit, meaning.dimension)
        assert there * size == pytest.approx(value * meaning.factor, rel=1e-12)


def test_the_unit_codes_are_the_tables_named_ones() -> None:
    """The codes the standard's unit table names, each what it says."""
    named = {
        0x02: "Wh", 0x05: "kWh", 0x08: "MWh", 0x0A: "MWh x 100", 0x01: "J", 0x0B: "kJ",
        0x0E: "MJ", 0x11: "GJ", 0x13: "GJ x 100", 0x14: "W", 0x17: "kW", 0x1A: "MW",
        0x29: "L", 0x2C: "m3", 0x32: "L/h", 0x35: "m3/h",
    }  # fmt: skip
    assert {code: UNIT_CODES[code].name for code in named} == named
    assert convert(1.0, 0x13, "GJ", "energy") == pytest.approx(100.0)
    assert convert(1.0, 0x0A, "kWh", "energy") == pytest.approx(100_000.0)


def test_a_reply_continued_in_another_frame_is_refused_by_its_length_not_misread() -> None:
    """2018's D5 (more frames follow) on a cut 901F reply: the function is still 01H, and
    the shorter data is refused with the length named."""
    request = read_data(0x20, HEAT, "901F", 1, high_first=False)
    whole = parse(hexbytes(HEAT_REPLY))
    first = Frame(0x20, HEAT, 0xA1, whole.data[:25])
    assert mismatch(request, first) is None
    with pytest.raises(DecodeError, match="22 data bytes where a heat meter's DI 901F has 43"):
        decode_field(reply_data(request, first), "901F", 0x20, "heat", "kWh")
