"""Which profile a meter found by `scan` is: each value judged by its name and unit, and a
profile named only when the evidence clearly favours it."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from agent.scan import scan_modbus
from agent.scan_match import Score, Verdict, choose, identification, judge
from config.profiles import Profile, profile_model, profile_path
from drivers.modbus.scan import Found, Sweep, crc16, find_rtu, read_pdu
from drivers.modbus.settings import ModbusPoint
from tests.fixtures.rtu_bus import RtuBus, profile_meter


def point(name: str, unit: str = "", kind: str = "gauge") -> ModbusPoint:
    return ModbusPoint(name=name, address=0, function="input", type="float32", unit=unit, kind=kind)


@pytest.mark.parametrize(
    ("p", "first", "second", "kind"),
    [
        (point("voltage_l1_v", "V"), 229.8, None, "strong"),
        (point("voltage_l12_v", "V"), 398.0, None, "strong"),  # line to line
        (point("voltage_l1_v", "V"), 0.0, None, "bad"),  # a zero-filled map
        (point("voltage_l1_v", "V"), 2298.0, None, "bad"),  # a x0.1 register read as V
        (point("frequency_hz", "Hz"), 49.98, None, "strong"),
        (point("frequency_hz", "Hz"), 0.0, None, "bad"),
        (point("power_factor"), -0.87, None, "good"),
        (point("power_factor"), 870.0, None, "bad"),
        (point("current_l1_a", "A"), 0.0, None, "good"),  # no load is plausible
        (point("current_l1_a", "A"), -4.0, None, "bad"),
        (point("power_kw", "kW"), -12.5, None, "good"),  # export
        (point("import_kwh", "kWh", "counter"), 100.0, 100.5, "strong"),  # live memory
        (point("import_kwh", "kWh", "counter"), 100.0, 100.0, "good"),  # no load
        (point("import_kwh", "kWh", "counter"), 100.0, 99.0, "bad"),  # fell
        (point("import_kwh", "kWh", "counter"), -1.0, None, "bad"),
        (point("thd_pct", "%"), 3.2, None, "ok"),
        (point("voltage_l1_v", "V"), "exception 02 (illegal data address)", None, "none"),
    ],
)
def test_judge(p: ModbusPoint, first: float | str, second: float | None, kind: str) -> None:
    verdict = judge(p, first, second)
    assert verdict.kind == kind, verdict.text
    assert verdict.text.startswith("0x0000 input float32")


@given(
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["V", "Hz", "A", "kW", ""])
)
def test_judge_takes_any_number(value: float, unit: str) -> None:
    """Whatever a register decodes to, a verdict comes back; voltages by their range."""
    verdict = judge(point("x", unit), value)
    assert verdict.kind in ("strong", "good", "ok", "bad")
    if unit == "V":
        assert (verdict.kind == "strong") == (80 <= value <= 500)


def score(name: str, *kinds: str, identified: bool | None = None) -> Score:
    return Score(name, identified, [Verdict(k, k) for k in kinds])


def test_choose_names_the_only_fit() -> None:
    scores = [score("a", "strong", "good", "good"), score("b", "bad", "none", "none")]
    assert choose(scores)[0] == "a"


def test_choose_never_guesses_between_two_alike() -> None:
    """Two profiles that explain the answers alike: unknown, both listed."""
    profile, why, fitting = choose([score("a", "strong", "good"), score("b", "strong", "good")])
    assert profile is None and fitting == ["a", "b"] and "not guessed" in why


def test_choose_takes_identification_first() -> None:
    scores = [score("a", "strong", "good", identified=True), score("b", "strong", "good")]
    assert choose(scores)[0] == "a"
    scores = [score("a", "strong", "good", identified=False), score("b", "strong", "good")]
    assert choose(scores)[0] == "b"  # a's model code says it is not a


def test_choose_takes_a_clear_margin_only() -> None:
    """A three-phase map explaining 2 more points beats a single-phase one; 1 more does not."""
    big = score("three", *["strong"] * 3, *["good"] * 8)
    assert choose([big, score("one", "strong", *["good"] * 8)])[0] == "three"
    assert choose([big, score("one", "strong", "strong", *["good"] * 8)])[0] is None


def test_weak_evidence_names_nothing() -> None:
    """Currents, power and counters at zero fit anything: without a live voltage or
    frequency or an identification, no profile is named."""
    assert choose([score("a", "good", "good", "good")]) == (
        None,
        "no profile fits what it answered",
        [],
    )


def test_identification_counts_only_what_answered() -> None:
    """A model code that differs rules a profile out; one the meter does not have (early
    firmware) leaves the decision to the values."""
    (code,) = with_identify("eastron-sdm630", 112).identify
    assert isinstance(code, ModbusPoint)
    assert identification([code], {"model_code": 112.0}) is True
    assert identification([code], {"model_code": 137.0}) is False
    assert identification([code], {"model_code": "exception 02 (illegal data address)"}) is None


def test_a_profile_mostly_unanswered_does_not_fit() -> None:
    assert not score("a", "strong", "none", "none").fits
    assert score("a", "strong", "good", "good", "good", "none").fits  # 80 % answered


@given(st.binary(max_size=64), st.integers(1, 247))
def test_find_rtu_fed_garbage(noise: bytes, unit: int) -> None:
    """Noise never crashes the reply hunt, and a reply behind noise (bytes a transceiver
    adds when it turns round; none of them the unit's address) is still found whole."""
    pdu = read_pdu("holding", 0x0048, 2)
    found = find_rtu(noise, unit, pdu)
    assert found is None or found.kind in ("data", "exception", "garbled")
    noise = bytes(b for b in noise if b != unit)
    body = bytes([unit, 3, 4, 0x46, 0x40, 0xE4, 0x00])
    reply = find_rtu(noise + body + crc16(body).to_bytes(2, "little"), unit, pdu)
    assert reply is not None and reply.kind == "data" and reply.data == body[3:]
    assert find_rtu(noise + body + b"\0\0", unit, pdu) is None  # a bad CRC is no reply


def test_crc16_of_the_specifications_example() -> None:
    """MODBUS over Serial Line V1.02 §6.2.2: the CRC is sent low byte first. A read of
    unit 1, holding 0, 1 register is the well-known frame 01 03 00 00 00 01 84 0A."""
    frame = bytes.fromhex("010300000001")
    assert crc16(frame).to_bytes(2, "little") == bytes.fromhex("840A")
    assert crc16(frame + bytes.fromhex("840A")) == 0


def with_identify(name: str, expect: float) -> Profile:
    """A shipped profile with an identification register added, as a profile may have."""
    data = yaml.safe_load(profile_path(name).read_text())
    data["identify"] = [
        {"name": "model_code", "address": 0xFC02, "function": "holding", "type": "uint16",
         "expect": [expect]}
    ]  # fmt: skip
    profile = profile_model(data).model_validate(data)
    assert isinstance(profile, Profile)
    return profile


async def test_two_profiles_alike_are_told_apart_by_identification_only() -> None:
    """The same register map under two names: a tie (unknown) until one profile's model
    code register answers what it expects; a model code that differs rules it out."""
    plain = profile_path("eastron-sdm630")
    clone = profile_model(yaml.safe_load(plain.read_text())).model_validate(
        yaml.safe_load(plain.read_text())
    )
    meter = profile_meter(5, "eastron-sdm630")
    meter.registers["holding", 0xFC02] = 112
    with RtuBus([meter]) as bus:
        line = {"port": bus.port, "baudrate": 9600, "parity": "N", "stopbits": 1, "unit": 5}
        sweep = Sweep(found=[Found(5, line, f"{bus.port} @9600 8N1", "2 bytes")])
        (tie,) = await scan_modbus(sweep, "modbus_rtu", 0.3, {"a": clone, "b": clone})
        assert tie.profile is None and tie.candidates == ["a", "b"] and not tie.active
        profiles = {"plain": clone, "sdm": with_identify("eastron-sdm630", 112)}
        (told,) = await scan_modbus(sweep, "modbus_rtu", 0.3, profiles)
        assert told.profile == "sdm"
        assert "0xfc02 holding uint16 = 112: sdm's identification (model_code)" in told.evidence
        profiles = {"plain": clone, "sdm": with_identify("eastron-sdm630", 113)}
        (other,) = await scan_modbus(sweep, "modbus_rtu", 0.3, profiles)
        assert other.profile == "plain"
        assert "0xfc02 holding uint16 = 112: not sdm's model_code (113)" in other.evidence
        assert set(bus.functions) <= {1, 2, 3, 4}
