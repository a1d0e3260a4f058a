"""Every shipped profile against its regression case: raw bytes in, the meter's values out.

A case is `tests/drivers/profile_cases/<profile>.yaml`: the raw registers or reply
frames a meter of that model would send (from a worked example in its manual, or
encoded by hand from a realistic reading; the case says which), and the value of
every point of the profile. The bytes are decoded by the drivers' own code, the
way a poll decodes them: Modbus registers through the request plan and the
coalesced decode of drivers/modbus/codec.py (and each point alone through the
general path, which must agree), DL/T 645 frames through the frame parser and
the reply checks of drivers/dlt645/codec.py, CJ/T 188 frames through
drivers/cjt188/codec.py, OPC UA values through
drivers/opcua/codec.py. Each Modbus case is also polled whole: the TCP driver
reads a pymodbus server on 127.0.0.1 that holds the case's registers. A profile
without a case fails here; so does a case without a profile, and a point whose
decoded value the case does not state.

A protocol family adds one decoder to DECODERS: (profile, its section of the
case) -> {point name: value}, for the points and the identify values the case
gives bytes for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from asyncua import ua

from config.loader import load_profile
from config.profiles import Profile, list_profiles
from domain.errors import EdgeAgentError
from drivers.cjt188 import codec as cjt188
from drivers.cjt188.settings import Cjt188Point
from drivers.dlt645 import codec as dlt645
from drivers.dlt645.settings import WILDCARD, Dlt645Point
from drivers.modbus.codec import decode_all, decode_registers, plan, width
from drivers.modbus.settings import ModbusPoint, ModbusTcp, ModbusTcpDevice
from drivers.modbus.tcp import ModbusTcpDriver
from drivers.opcua import codec as opcua
from drivers.opcua.settings import OpcUaPoint
from tests.fixtures.profile_cases import CASES, load_case, modbus_image, serving

Decoded = dict[str, float]


def _all_points(profile: Profile) -> list[Any]:
    """The profile's points, then its identify values (the same point model)."""
    return [*profile.points, *profile.identify]


# --- Modbus: registers -> plan -> coalesced reads, as a poll decodes them -------------


def decode_modbus(profile: Profile, section: Mapping[str, Any]) -> Decoded:
    image = modbus_image(section)
    points: list[ModbusPoint] = []
    for point in _all_points(profile):
        assert isinstance(point, ModbusPoint)
        cells = [(point.function, point.address + i) for i in range(width(point))]
        given = [c in image for c in cells]
        if point in profile.identify and not any(given):
            continue  # an identify value the case has no registers for
        assert all(given), f"{point.name}: the case lacks {point.function} {point.address:#06x}"
        points.append(point)
    decoded: Decoded = {}
    for request in plan(points):
        # a hole the plan bridges reads whatever the meter holds there: zeros here
        span = range(request.address, request.address + request.count)
        reply = [image.get((request.function, address), 0) for address in span]
        for point, value in zip(request.points, decode_all(request, reply), strict=True):
            assert not isinstance(value, EdgeAgentError), f"{point.name}: {value}"
            at = point.address - request.address
            alone = decode_registers(reply[at : at + width(point)], point)
            assert value == alone, f"{point.name}: coalesced {value} but alone {alone}"
            decoded[point.name] = value
    return decoded


# --- DL/T 645: DI -> the meter's whole reply frame ------------------------------------


def decode_dlt645(profile: Profile, section: Mapping[str, Any]) -> Decoded:
    frames = {str(di).upper(): str(text) for di, text in section.items()}
    decoded: Decoded = {}
    for point in _all_points(profile):
        assert isinstance(point, Dlt645Point)
        if point.di.upper() not in frames:
            assert point in profile.identify, f"{point.name}: the case has no frame for {point.di}"
            continue
        reply = dlt645.parse(bytes.fromhex(frames[point.di.upper()]))
        # a DI of 4 hex digits is DL/T 645-1997's: read 01H, reply 81H, the DI in 2 bytes
        edition = dlt645.EDITION_1997 if len(point.di) == 4 else dlt645.EDITION_2007
        value = dlt645.reply_data(dlt645.read_data(WILDCARD, point.di, edition), reply)
        decoded[point.name] = dlt645.decode_point(value, point)
    return decoded


# --- CJ/T 188: DI -> the meter's whole reply frame -------------------------------------


def decode_cjt188(profile: Profile, section: Mapping[str, Any]) -> Decoded:
    decoded: Decoded = {}
    for di, text in section.items():
        reply = cjt188.parse(bytes.fromhex(str(text)))
        request = cjt188.read_data(
            reply.meter_type, reply.address, str(di), reply.data[2], high_first=True
        )
        data = cjt188.reply_data(request, reply)
        cjt188.check_type(reply.meter_type, reply)
        for point in _all_points(profile):
            assert isinstance(point, Cjt188Point)
            if point.di.upper() == str(di).upper():
                value = cjt188.decode_field(
                    data, point.di, reply.meter_type, point.field, point.unit
                )
                decoded[point.name] = value * point.scale + point.offset
    return decoded


# --- OPC UA: node id -> the value the server sends ------------------------------------


def _variant(given: Any) -> ua.Variant:
    """A plain number is sent as a Double; `{type: UInt32, value: 7}` as that type."""
    if isinstance(given, dict):
        return ua.Variant(given["value"], getattr(ua.VariantType, given["type"]))
    return ua.Variant(float(given), ua.VariantType.Double)


def decode_opcua(profile: Profile, section: Mapping[str, Any]) -> Decoded:
    decoded: Decoded = {}
    for point in _all_points(profile):
        assert isinstance(point, OpcUaPoint)
        if point.node not in section:
            assert point in profile.identify, f"{point.name}: the case has no {point.node}"
            continue
        data = ua.DataValue(_variant(section[point.node]))
        decoded[point.name] = opcua.decode(point, data)
    return decoded


DECODERS: dict[str, Callable[[Profile, Mapping[str, Any]], Decoded]] = {
    "modbus": decode_modbus,
    "dlt645": decode_dlt645,
    "cjt188": decode_cjt188,
    "opcua": decode_opcua,
}
"""Profile family -> how its case's raw section is decoded (the case key is the family)."""


# --- the tests ------------------------------------------------------------------------


def _mismatches(profile: Profile, decoded: Decoded, expected: Mapping[str, Any]) -> list[str]:
    """What differs between the decoded values and the case's, one line each."""
    wrong: list[str] = []
    for point in profile.points:
        got, want = decoded[point.name], expected.get(point.name)
        if want is None:
            wrong.append(f"{point.name}: no expected value in the case")
        elif not math.isclose(got, float(want), rel_tol=1e-6):
            wrong.append(f"{point.name}: decoded {got}, case says {want}")
    for point in profile.identify:
        if point.name not in decoded:
            continue  # the case gives no registers for it
        got, want = decoded[point.name], expected.get(point.name)
        expect = getattr(point, "expect", [])  # the identify model of the family adds it
        if got not in expect:
            wrong.append(f"identify {point.name}: decoded {got}, expects {expect}")
        if want is not None and got != float(want):
            wrong.append(f"identify {point.name}: decoded {got}, case says {want}")
    known = {p.name for p in _all_points(profile)}
    wrong += [f"{name}: not a point of the profile" for name in expected if name not in known]
    return wrong


@pytest.mark.parametrize("name", list_profiles())
def test_a_profile_decodes_its_case(name: str) -> None:
    """Every point (and every identify value given bytes) decodes to the case's value."""
    profile = load_profile(name).profile
    case = load_case(name)
    decoder = DECODERS.get(profile.protocol)
    assert decoder is not None, f"no case decoder for protocol {profile.protocol}: add one"
    assert profile.protocol in case, f"{name}: the case needs a `{profile.protocol}:` section"
    decoded = decoder(profile, case[profile.protocol])
    assert _mismatches(profile, decoded, case["values"]) == []


MODBUS = [n for n in list_profiles() if load_profile(n).profile.protocol == "modbus"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", MODBUS)
async def test_a_modbus_profile_polled_over_tcp_reads_its_case(name: str) -> None:
    """The whole read path: the driver polls a real server holding the case's registers."""
    profile = load_profile(name).profile
    case = load_case(name)
    points = [p for p in profile.points if isinstance(p, ModbusPoint)]
    async with serving(modbus_image(case["modbus"])) as port:
        link = ModbusTcp.model_validate({"host": "127.0.0.1", "port": port, "timeout": "2s"})
        driver = ModbusTcpDriver(ModbusTcpDevice(name="meter", modbus_tcp=link, points=points))
        try:
            readings = {r.point: r for r in await driver.read()}
        finally:
            await driver.close()
    bad = {p: r.reason for p, r in readings.items() if not r.good}
    assert bad == {}
    values = {p: r.value for p, r in readings.items() if r.value is not None}
    assert _mismatches(profile, values, case["values"]) == []


def test_every_case_belongs_to_a_shipped_profile() -> None:
    """A case left behind by a renamed or withdrawn profile is an error, not dead weight."""
    orphans = sorted(p.stem for p in CASES.glob("*.yaml") if p.stem not in list_profiles())
    assert orphans == []


@pytest.mark.parametrize("name", list_profiles())
def test_every_profile_says_where_each_point_comes_from(name: str) -> None:
    """The profile names its manual; each point and identify value, where in it."""
    profile = load_profile(name).profile
    assert profile.source.strip()
    unsourced = [p.name for p in _all_points(profile) if not (p.source or "").strip()]
    assert unsourced == [], f"{name}: points without `source:`"


def test_the_decoders_catch_a_wrong_value() -> None:
    """The comparison is not vacuous: a case whose value is off by one part in 1e5 fails."""
    name = "eastron-sdm630"
    profile = load_profile(name).profile
    case = load_case(name)
    decoded = DECODERS[profile.protocol](profile, case[profile.protocol])
    expected = dict(case["values"])
    first = profile.points[0].name
    expected[first] = float(expected[first]) * (1 + 1e-5) + 1e-5
    assert _mismatches(profile, decoded, expected) == [
        f"{first}: decoded {decoded[first]}, case says {expected[first]}"
    ]
