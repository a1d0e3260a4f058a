"""Meter profiles: every shipped one validates, and devices merge them as documented."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.base import OWN_POINTS
from config.loader import load_profile
from config.profiles import list_profiles
from domain.errors import ConfigInvalid
from drivers.modbus.settings import ModbusPoint
from drivers.registry import PROTOCOLS
from tests.fixtures.config import GATEWAY, Load, Problems, Write

# a device of each profile family, linked as its protocol's spec shows in the docs
TRANSPORTS = {
    spec.family: f"{key}: {json.dumps(dict(spec.example))}" for key, spec in PROTOCOLS.items()
}


def test_the_library_lists_the_shipped_profiles() -> None:
    """list_profiles() names each file in the protocols' profiles/ folders, sorted."""
    assert list_profiles() == sorted(list_profiles())
    assert {"eastron-sdm630", "dlt645-2007-energy"} <= set(list_profiles())


@pytest.mark.parametrize("name", list_profiles())
def test_every_shipped_profile_validates_and_serves_a_device(name: str, load: Load) -> None:
    """Each profile passes the validator and gives a device of its protocol its points."""
    loaded = load_profile(name)
    assert loaded.profile.source.strip()
    transport = TRANSPORTS[loaded.profile.protocol]
    text = GATEWAY + f"devices:\n  - name: meter\n    profile: {name}\n    {transport}\n"
    device = load(text).config.devices[0]
    assert [p.name for p in device.points] == [p.name for p in loaded.profile.points]


def test_a_device_point_replaces_the_profile_point_of_that_name(load: Load) -> None:
    """Own points override profile points by name, in place; the others are added at the end."""
    text = GATEWAY + (
        "devices:\n"
        "  - name: incomer\n"
        "    profile: eastron-sdm630\n"
        "    modbus_tcp: {host: 10.0.0.1}\n"
        "    points:\n"
        "      - {name: import_kwh, address: 0x0156, function: input, type: float32,"
        " unit: kWh, kind: counter}\n"
        "      - {name: thd_v1, address: 0x00EA, function: input, type: float32, unit: '%'}\n"
    )
    points = load(text).config.devices[0].points
    names = [p.name for p in points]
    assert len(points) == len(load_profile("eastron-sdm630").profile.points) + 1
    assert names.index("import_kwh") == 9
    assert points[9].address == 0x0156
    assert names[-1] == "thd_v1"


@pytest.mark.parametrize("key", PROTOCOLS)
def test_every_protocol_documents_points_as_they_merge(key: str) -> None:
    """The reference (docs/configuration.md, the schema) says of a device's `points:` what
    merge_points does: replaced by name, the others added; never "replace the profile's"."""
    description = PROTOCOLS[key].device.model_fields["points"].description
    assert description == OWN_POINTS
    assert "replaces that point" in OWN_POINTS and "others are added" in OWN_POINTS


def test_an_unknown_profile_suggests_the_closest_and_lists_all(problems: Problems) -> None:
    """A typo in a profile name is reported at the `profile` value with the known names."""
    text = GATEWAY + (
        "devices:\n  - name: incomer\n    profile: eastron-sdm360\n    modbus_tcp: {host: h}\n"
    )
    assert problems(text) == [
        "agent.yaml:10:14: devices[0].profile: unknown profile 'eastron-sdm360' "
        f"(did you mean 'eastron-sdm630'?); known: {', '.join(list_profiles())}"
    ]


def test_a_profile_of_another_protocol_is_refused(problems: Problems) -> None:
    """A DL/T 645 profile cannot serve a Modbus device."""
    text = GATEWAY + (
        "devices:\n  - name: incomer\n    profile: dlt645-2007-energy\n    modbus_tcp: {host: h}\n"
    )
    assert problems(text) == [
        "agent.yaml:10:14: devices[0].profile: 'dlt645-2007-energy' is a dlt645 profile; "
        "this device speaks modbus_tcp"
    ]


def test_a_modbus_profile_serves_rtu_and_tcp_alike(load: Load) -> None:
    """The Modbus family covers both transports."""
    text = GATEWAY + (
        "devices:\n  - name: incomer\n    profile: eastron-sdm630\n"
        "    modbus_rtu: {port: /dev/ttyUSB0}\n"
    )
    assert len(load(text).config.devices[0].points) == len(load_profile("eastron-sdm630").points)


@pytest.fixture
def library(monkeypatch: pytest.MonkeyPatch, write: Write) -> Path:
    """A profile directory of our own, under the working directory of the test."""
    folder = Path("profiles").resolve()
    folder.mkdir()
    monkeypatch.setattr("config.profiles.PROFILE_DIRS", (folder,))
    return folder


def test_an_error_in_a_profile_is_reported_in_the_profile_file(
    library: Path, problems: Problems
) -> None:
    """A broken profile is reported at its own file, line and column."""
    (library / "acme-m1.yaml").write_text(
        "protocol: modbus\n"
        "description: Acme M1\n"
        "source: Acme M1 manual, table 3\n"
        "points:\n"
        "  - {name: energy_kwh, adress: 0, type: uint32, kind: counter}\n",
        encoding="utf-8",
    )
    text = GATEWAY + "devices:\n  - name: m1\n    profile: acme-m1\n    modbus_tcp: {host: h}\n"
    assert problems(text) == [
        "profiles/acme-m1.yaml:5:5: points[0]: missing required field 'address'",
        "profiles/acme-m1.yaml:5:24: points[0].adress: unknown key (did you mean 'address'?)",
    ]


def test_a_profile_without_protocol_says_which_exist(library: Path) -> None:
    """`protocol:` is required and must be a known family."""
    (library / "acme-m2.yaml").write_text(
        "protocol: modbus-tcp\ndescription: Acme M2\nsource: manual\npoints: [{name: a}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigInvalid) as caught:
        load_profile("acme-m2")
    assert [str(p) for p in caught.value.problems] == [
        "profiles/acme-m2.yaml:1:11: protocol: must be one of 'modbus', 'opcua', 'dlt645', "
        "'cjt188' (got 'modbus-tcp')"
    ]


def test_a_profile_point_with_a_meaningless_option_is_refused(library: Path) -> None:
    """The point rules of devices hold for profiles too, reported in the profile."""
    (library / "acme-m3.yaml").write_text(
        "protocol: modbus\ndescription: Acme M3\nsource: manual\n"
        "points:\n  - {name: pf, address: 4, type: int16, word_order: little}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigInvalid) as caught:
        load_profile("acme-m3")
    assert [str(p) for p in caught.value.problems] == [
        "profiles/acme-m3.yaml:5:41: points[0].word_order: "
        "word_order is meaningless with type: int16"
    ]


def test_a_coil_without_type_reads_a_bool(load: Load) -> None:
    """function: coil with no type resolves to type: bool in the loaded config."""
    text = GATEWAY + (
        "devices:\n  - name: light\n    modbus_tcp: {host: h}\n"
        "    points: [{name: lamp, address: 5, function: coil}]\n"
    )
    point = load(text).config.devices[0].points[0]
    assert isinstance(point, ModbusPoint)
    assert point.type == "bool"


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_listing_gives_the_count_and_each_profile_with_its_manual(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`edge-agent profiles`: how many, then one line each: name, protocol, meter, manual."""
    from agent.cli import main, manual

    assert main(["profiles"]) == 0
    first, *lines = capsys.readouterr().out.splitlines()
    assert first.startswith(f"{len(list_profiles())} meter profiles;")
    assert [line.split()[0] for line in lines] == list_profiles()
    for name, line in zip(list_profiles(), lines, strict=True):
        profile = load_profile(name).profile
        assert profile.description in line
        assert line.endswith(f"| {manual(profile.source)}")


def test_the_manual_is_the_source_up_to_its_first_colon() -> None:
    """A source names the manual, then after ': ' where in it; without a colon, all of it."""
    from agent.cli import manual

    assert manual("Acme M1 manual v2,\n  Acme Ltd: Table 3, p. 12") == "Acme M1 manual v2, Acme Ltd"
    assert manual("Acme M1 manual") == "Acme M1 manual"


def test_a_named_profile_shows_where_each_point_is_documented(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`edge-agent profiles eastron-sdm120`: manual, caveats, identify and every point's source."""
    from agent.cli import main

    assert main(["profiles", "eastron-sdm120"]) == 0
    out = capsys.readouterr().out
    profile = load_profile("eastron-sdm120").profile
    assert f"  source: {' '.join(profile.source.split())}" in out
    assert "  identify:\n    meter_code: p. 8, register 464515 (Meter code = 00 20)\n" in out
    for point in profile.points:
        assert f"    {point.name}" in out and f": {point.source}\n" in out
    assert "    import_kwh (counter, kWh): Register Map, p. 5, register 30073\n" in out


def test_the_readme_table_lists_every_shipped_profile() -> None:
    """README's "Meter profiles" table has one row per shipped profile, no more, no less."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n### Meter profiles\n", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list_profiles()
