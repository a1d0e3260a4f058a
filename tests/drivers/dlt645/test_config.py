"""What a technician writes for a DL/T 645 meter, and what the loader makes of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import LoadedConfig, load_config, load_profile
from domain.errors import ConfigInvalid
from drivers.dlt645.settings import Dlt645Device
from tests.fixtures.config import GATEWAY as HEAD

GATEWAY = (
    HEAD
    + """\
devices:
  - name: workshop3
    profile: dlt645-2007-energy
"""
)


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, link: str) -> LoadedConfig:
    monkeypatch.chdir(tmp_path)
    Path("agent.yaml").write_text(GATEWAY + f"    dlt645: {link}\n", encoding="utf-8")
    return load_config("agent.yaml")


def test_the_wildcard_address_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """AAAAAAAAAAAA reaches the only meter of a point-to-point link."""
    loaded = load(tmp_path, monkeypatch, '{port: /dev/ttyUSB1, address: "AAAAAAAAAAAA"}')
    device = loaded.config.devices[0]
    assert isinstance(device, Dlt645Device)
    assert device.dlt645.address == "AAAAAAAAAAAA"
    assert (device.dlt645.baudrate, device.dlt645.parity, device.dlt645.timeout) == (2400, "E", 1.0)


def test_the_broadcast_address_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """999999999999 never gets a reply, so it is an error at its position."""
    with pytest.raises(ConfigInvalid) as caught:
        load(tmp_path, monkeypatch, '{port: /dev/ttyUSB1, address: "999999999999"}')
    assert [str(p) for p in caught.value.problems] == [
        "agent.yaml:11:43: devices[0].dlt645.address: 999999999999 is the broadcast address, "
        "which meters never answer; write the meter's own address"
    ]


def test_a_short_address_says_what_is_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An address of the wrong form is reported with the expected form."""
    with pytest.raises(ConfigInvalid) as caught:
        load(tmp_path, monkeypatch, '{port: /dev/ttyUSB1, address: "12345678"}')
    (problem,) = [str(p) for p in caught.value.problems]
    assert problem.startswith("agent.yaml:11:43: devices[0].dlt645.address: has the wrong form")
    assert '"AAAAAAAAAAAA"' in problem


def test_the_profile_names_the_agreed_points() -> None:
    """The shipped profile uses the shared point names, tariffs 1-4 and all three phases."""
    names = [p.name for p in load_profile("dlt645-2007-energy").profile.points]
    assert names == [
        "import_kwh",
        "import_t1_kwh",
        "import_t2_kwh",
        "import_t3_kwh",
        "import_t4_kwh",
        "export_kwh",
        "power_kw",
        "voltage_l1_v",
        "voltage_l2_v",
        "voltage_l3_v",
        "current_l1_a",
        "current_l2_a",
        "current_l3_a",
        "power_factor",
        "frequency_hz",
    ]
