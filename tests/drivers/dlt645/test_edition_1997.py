"""DL/T 645-1997 beside 2007: frames, the driver on a line of both, and the config that says
which edition a meter speaks. The meters are tests/fixtures/dlt645_std.py, written from the
standards and not from the driver's codec."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.loader import load_config, load_profile
from domain.errors import BadReply, ConfigInvalid, DeviceRejected
from drivers.dlt645.codec import (
    EDITION_1997,
    EDITION_2007,
    decode_point,
    di_to_wire,
    parse,
    read_data,
    read_follow_up,
    reply_data,
)
from drivers.dlt645.driver import Dlt645Driver
from drivers.dlt645.settings import Dlt645Device, Dlt645Point, edition_of
from tests.fixtures.config import GATEWAY
from tests.fixtures.dlt645 import driver
from tests.fixtures.dlt645_std import Bus, Meter, bcd, frame

pytestmark = pytest.mark.timeout(30)

PROFILE = [
    p for p in load_profile("dlt645-1997-energy").profile.points if isinstance(p, Dlt645Point)
]
OLD, NEW = "000000000414", "000012345678"  # a 1997 and a 2007 meter
ROOT = Path(__file__).resolve().parents[3]


def device(
    port: str, address: str, edition: int, points: list[Dlt645Point], name: str = "m"
) -> Dlt645Device:
    return Dlt645Device(
        name=name,
        dlt645={
            "port": port,
            "parity": "N",
            "address": address,
            "timeout": "300ms",
            "edition": edition,
        },
        points=points,
    )


# --- frames ---------------------------------------------------------------------------


def test_a_1997_read_is_the_published_frame() -> None:
    """Read 9010 from meter 000000000414: control 01, two DI bytes 10 90 sent +33
    (domain.md §4.6, public vector; the FE wake-up bytes are the driver's own)."""
    request = read_data(OLD, "9010", EDITION_1997)
    assert request.encode(preamble=False).hex(" ").upper() == (
        "68 14 04 00 00 00 00 68 01 02 43 C3 F1 16"
    )
    assert read_data(NEW, "9010", EDITION_1997).encode(preamble=False).hex(" ").upper() == (
        "68 78 56 34 12 00 00 68 01 02 43 C3 ED 16"
    )


def test_a_1997_reply_decodes_to_the_published_value() -> None:
    """Reply 81, DI echoed, 12 345.67 kWh (domain.md §4.6, checked by script)."""
    request = read_data(NEW, "9010", EDITION_1997)
    reply = parse(bytes.fromhex("68 78 56 34 12 00 00 68 81 06 43 C3 9A 78 56 34 0D 16"))
    assert decode_point(reply_data(request, reply), PROFILE[0]) == 12345.67


def test_a_meter_makers_1997_example_reads_the_same() -> None:
    """An independent published 1997 exchange (https://kaledl.com/down/1493168.html: meter
    RS3430163 / 138000130754): the driver frames the same requests and reads 0.01 kWh."""
    assert read_data("000003430163", "9010", EDITION_1997).encode(preamble=False) == (
        bytes.fromhex("68 63 01 43 03 00 00 68 01 02 43 C3 83 16")
    )
    request = read_data("138000130754", "9010", EDITION_1997)
    assert request.encode(preamble=False) == bytes.fromhex(
        "68 54 07 13 00 80 13 68 01 02 43 C3 DA 16"
    )
    reply = parse(bytes.fromhex("68 54 07 13 00 80 13 68 81 06 43 C3 34 33 33 33 2B 16"))
    assert decode_point(reply_data(request, reply), PROFILE[0]) == 0.01


def test_a_1997_abnormal_reply_reads_the_1997_error_byte() -> None:
    """C1 with ERR bit 1: in 1997 "data identifier wrong", not 2007's wording; bit 0 is
    "illegal data" (2007: "other error")."""
    request = read_data(OLD, "9011", EDITION_1997)
    reply = parse(frame(OLD, 0xC1, bytes([0x03])))
    with pytest.raises(DeviceRejected) as caught:
        reply_data(request, reply)
    assert str(caught.value) == (
        "error reply: illegal data; data identifier wrong (DI not supported)"
    )
    assert caught.value.code == 3


def test_a_2007_reply_does_not_answer_a_1997_request() -> None:
    """Function codes tell the editions apart: a 91 reply is not the answer to a 01 read."""
    request = read_data(NEW, "9010", EDITION_1997)
    reply = parse(frame(NEW, 0x91, di_to_wire("00010000") + bcd(1.0, 8, 2)))
    with pytest.raises(BadReply, match="control code 91"):
        reply_data(request, reply)


def test_a_1997_follow_up_request_carries_the_di_alone() -> None:
    """1997 read follow-up data is function 02 with the DI; 2007's 12 adds a frame number."""
    assert read_follow_up(OLD, "9010", 1, EDITION_1997).data == bytes.fromhex("1090")
    assert read_follow_up(OLD, "00010000", 1, EDITION_2007).data == bytes.fromhex("0000010001")


def test_a_di_of_the_wrong_length_is_never_sent() -> None:
    """A 2007 DI in a 1997 request is a programming error, refused before the wire."""
    with pytest.raises(ValueError, match="1997 data identifiers have 4 hex digits"):
        read_data(OLD, "00010000", EDITION_1997)


@given(
    di=st.text("0123456789ABCDEF", min_size=4, max_size=4),
    units=st.integers(0, 99_999_999),
    address=st.text("0123456789", min_size=12, max_size=12),
)
def test_any_1997_reply_framed_by_the_standard_decodes_exactly(
    di: str, units: int, address: str
) -> None:
    """The driver's codec reads what the standard's rules frame, for any DI, value and address."""
    value = units / 100
    wire = frame(address, 0x81, bytes.fromhex(di)[::-1] + bcd(value, 8, 2))
    raw = reply_data(read_data(address, di, EDITION_1997), parse(wire))
    assert decode_point(raw, Dlt645Point(name="e", di=di)) == value


@given(st.binary(max_size=40))
def test_garbage_is_never_a_1997_value(junk: bytes) -> None:
    """Bytes that are not the reply raise a domain error (BadReply or its kin), nothing else:
    never a value (a reply of this address, DI and checksum is not drawn from 40 bytes)."""
    request = read_data(OLD, "9010", EDITION_1997)
    with pytest.raises((BadReply, DeviceRejected)):
        decode_point(reply_data(request, parse(junk)), PROFILE[0])


# --- both editions on one line -----------------------------------------------------------


def energy_point(di: str) -> Dlt645Point:
    return Dlt645Point(name="import_kwh", di=di, unit="kWh", kind="counter")


async def test_a_1997_and_a_2007_meter_share_one_port() -> None:
    """Each device asks in its own edition; each meter answers only its own, so both read
    good through the one shared port."""
    old = Meter(OLD, "1997", {"9010": bcd(9580.15, 8, 2)})
    new = Meter(NEW, "2007", {"00010000": bcd(12345.67, 8, 2)})
    async with (
        Bus([old, new]) as line,
        driver(device(line.port, OLD, 1997, [energy_point("9010")], "old")) as d97,
        driver(device(line.port, NEW, 2007, [energy_point("00010000")], "new")) as d07,
    ):
        (r97,) = await d97.read()
        (r07,) = await d07.read()
    assert (r97.value, r07.value) == (9580.15, 12345.67)
    assert old.asked == ["9010"] and new.asked == ["00010000"]
    assert {hex(r.control) for r in line.heard} == {"0x1", "0x11"}


async def test_a_1997_error_reply_names_device_meter_di_and_the_1997_reason() -> None:
    """A tariff the meter lacks: the reading's reason in 1997 words, with its DI."""
    async with Bus([Meter(OLD, "1997", {"9010": bcd(1.0, 8, 2)})]) as line:
        points = [energy_point("9010"), Dlt645Point(name="t1", di="9011", unit="kWh")]
        async with driver(device(line.port, OLD, 1997, points)) as d:
            energy, tariff = await d.read()
    assert energy.good and not tariff.good
    assert tariff.reason == (
        "m meter 000000000414 DI 9011: error reply: data identifier wrong (DI not supported)"
    )


async def test_a_2007_device_on_a_1997_meter_hears_nothing() -> None:
    """The 1997 meter ignores 2007 requests: the configured edition matters."""
    async with (
        Bus([Meter(OLD, "1997", {"9010": bcd(1.0, 8, 2)})]) as line,
        driver(device(line.port, OLD, 2007, [energy_point("00010000")])) as d,
    ):
        (reading,) = await d.read()
    assert reading.reason is not None and "no reply within 0.3s" in reading.reason


@pytest.mark.parametrize("configured", [2007, 1997])
async def test_identify_says_which_edition_answered(configured: int) -> None:
    """Asked in the configured edition first, then the other: a 1997 meter is found either
    way, its address from its reply frame, and identify says 1997."""
    points = [energy_point("9010" if configured == 1997 else "00010000")]
    async with (
        Bus([Meter(OLD, "1997", {"9010": bcd(1.0, 8, 2)})]) as line,
        driver(device(line.port, "AAAAAAAAAAAA", configured, points)) as d,
    ):
        assert await d.identify() == {"address": OLD, "edition": "1997"}


async def test_identify_finds_a_2007_meter_from_a_1997_device() -> None:
    """The other way round: a device written as 1997 on a 2007 meter learns it is 2007."""
    async with (
        Bus([Meter(NEW, "2007", {"00010000": bcd(1.0, 8, 2)})]) as line,
        driver(device(line.port, "AAAAAAAAAAAA", 1997, [energy_point("9010")])) as d,
    ):
        assert await d.identify() == {"address": NEW, "edition": "2007"}


# --- configuration --------------------------------------------------------------------------


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device_yaml: str) -> Any:
    monkeypatch.chdir(tmp_path)
    Path("agent.yaml").write_text(GATEWAY + "devices:\n" + device_yaml, encoding="utf-8")
    return load_config("agent.yaml")


def refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device_yaml: str) -> str:
    """The one problem `check` finds in this device (failing if it finds none, or more)."""
    with pytest.raises(ConfigInvalid) as caught:
        load(tmp_path, monkeypatch, device_yaml)
    (problem,) = [str(p) for p in caught.value.problems]
    return problem


def test_a_1997_device_with_its_profile_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """edition: 1997 and the 1997 profile: valid; an edition left out stays unwritten."""
    loaded = load(
        tmp_path,
        monkeypatch,
        "  - name: old\n    profile: dlt645-1997-energy\n"
        '    dlt645: {port: /dev/ttyUSB1, address: "000000000414", edition: 1997}\n'
        "  - name: new\n    profile: dlt645-2007-energy\n"
        '    dlt645: {port: /dev/ttyUSB1, address: "000012345678"}\n',
    )
    old, new = loaded.config.devices
    assert (old.dlt645.edition, new.dlt645.edition) == (1997, None)
    assert (edition_of(old), edition_of(new)) == (1997, 2007)


def test_a_2007_di_on_a_1997_device_is_an_error_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error names file, line, column and field, and says what would be right."""
    problem = refused(
        tmp_path,
        monkeypatch,
        "  - name: old\n"
        '    dlt645: {port: /dev/ttyUSB1, address: "000000000414", edition: 1997}\n'
        '    points:\n      - {name: e, di: "00010000", unit: kWh}\n',
    )
    assert problem.startswith("agent.yaml:")
    assert "devices[0].points[0].di:" in problem
    assert '"00010000" is a DL/T 645-2007 data identifier; this meter speaks 1997' in problem
    assert 'a DI has 4 hex digits, e.g. "9010"' in problem


def test_a_1997_profile_on_a_device_written_2007_is_an_error_at_the_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """edition: 2007 written beside the 1997 profile: caught at the device's profile line."""
    problem = refused(
        tmp_path,
        monkeypatch,
        "  - name: old\n    profile: dlt645-1997-energy\n"
        '    dlt645: {port: /dev/ttyUSB1, address: "000000000414", edition: 2007}\n',
    )
    line = GATEWAY.count("\n") + 3  # "devices:", "- name", then the profile line
    assert problem.startswith(f"agent.yaml:{line}:")
    assert "devices[0].profile: profile dlt645-1997-energy reads DL/T 645-1997" in problem
    assert "set edition: 1997 under dlt645: (or leave it out)" in problem


def test_left_out_the_edition_follows_the_data_identifiers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No edition written: the 1997 profile's DIs make the device 1997, own 4-digit points
    too; 8-digit ones 2007. The driver asks in that edition."""
    loaded = load(
        tmp_path,
        monkeypatch,
        "  - name: a\n    profile: dlt645-1997-energy\n"
        '    dlt645: {port: /dev/ttyUSB1, address: "000000000414"}\n'
        '  - name: b\n    dlt645: {port: /dev/ttyUSB1, address: "000000000415"}\n'
        '    points: [{name: e, di: "9010", unit: kWh, kind: counter}]\n'
        '  - name: c\n    dlt645: {port: /dev/ttyUSB1, address: "000000000416"}\n'
        '    points: [{name: e, di: "00010000", unit: kWh, kind: counter}]\n',
    )
    devices = loaded.config.devices
    assert [d.dlt645.edition for d in devices] == [None, None, None]
    assert [edition_of(d) for d in devices] == [1997, 1997, 2007]
    made = Dlt645Driver(devices[0])
    try:
        assert made.edition is EDITION_1997
    finally:
        asyncio.run(made.close())


def test_a_device_mixing_editions_is_an_error_at_the_odd_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No edition written, a 1997 profile and an own 2007 point: the point is reported, with
    where the edition came from."""
    problem = refused(
        tmp_path,
        monkeypatch,
        "  - name: old\n    profile: dlt645-1997-energy\n"
        '    dlt645: {port: /dev/ttyUSB1, address: "000000000414"}\n'
        '    points: [{name: q, di: "00030000", unit: kvarh}]\n',
    )
    assert "devices[0].points[0].di:" in problem
    assert "this meter speaks 1997 (as its profile dlt645-1997-energy)" in problem
    assert "a meter speaks one edition" in problem


def test_an_edition_that_does_not_exist_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """edition: 2000 names the field and the editions there are."""
    problem = refused(
        tmp_path,
        monkeypatch,
        "  - name: m\n    profile: dlt645-2007-energy\n"
        '    dlt645: {port: /dev/ttyUSB1, address: "000012345678", edition: 2000}\n',
    )
    assert "devices[0].dlt645.edition" in problem
    assert "2007" in problem and "1997" in problem


@pytest.mark.parametrize(
    "snippet",
    re.findall(r"```yaml\n(.*?)```", (ROOT / "drivers" / "dlt645" / "README.md").read_text(), re.S),
)
def test_the_driver_readme_examples_pass_check(
    snippet: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each device shown in drivers/dlt645/README.md loads (and passes the edition check)."""
    device_yaml = "\n".join(line.removeprefix("  ") for line in snippet.splitlines())
    loaded = load(tmp_path, monkeypatch, "  " + device_yaml.replace("\n", "\n  ") + "\n")
    assert loaded.config.devices
