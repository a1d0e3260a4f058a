"""`edge-agent scan`: the meters of a bus found, judged and written into a config that
passes `check` and polls them; read-only throughout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from tests.fixtures.rtu_bus import BusMeter, RtuBus, profile_meter

FAST = ["--units", "1-40", "--baud", "9600,19200", "--framing", "8N1,8E1", "--timeout", "0.03"]


def cabinet() -> list[BusMeter]:
    """8 meters of 4 profiles at mixed unit ids (one at 19200, one silent) and a broken
    device at unit 9 that answers with garbage."""
    return [
        profile_meter(3, "eastron-sdm630"),
        profile_meter(22, "eastron-sdm630", shift=1.5),
        profile_meter(5, "chint-dtsu666"),
        profile_meter(28, "chint-dtsu666", baudrate=19200),
        profile_meter(11, "schneider-pm5560"),
        profile_meter(30, "schneider-pm5560", silent=True),
        profile_meter(17, "acrel-adw300"),
        profile_meter(36, "acrel-adw300", shift=-2.0),
        BusMeter(9, garbage=True),
    ]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sync token where systemd's credential puts it, so `check` can pass."""
    (tmp_path / "sync-token").write_text("t0ken")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    return tmp_path


def test_scan_finds_the_seven_meters_of_a_bus_and_writes_a_config_that_polls_them(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The done-when case of issue 15: exactly the 7 meters that can answer, each with its
    profile (the 19200 one at its own speed), nothing but reads sent; the config written
    passes check and every device in it polls good."""
    path = env / "agent.yaml"
    with RtuBus(cabinet()) as bus:
        assert main(["scan", "--rtu", bus.port, *FAST, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        found = {m["link"]["unit"]: (m["profile"], m["link"]["baudrate"]) for m in report["meters"]}
        assert found == {
            3: ("eastron-sdm630", 9600),
            22: ("eastron-sdm630", 9600),
            5: ("chint-dtsu666", 9600),
            28: ("chint-dtsu666", 19200),
            11: ("schneider-pm5560", 9600),
            17: ("acrel-adw300", 9600),
            36: ("acrel-adw300", 9600),
        }
        assert [g.split(" on ")[0] for g in report["garbled"]] == ["unit 9"]
        assert any("8E1" in r and "refuses" in r for r in report["refused"])
        assert set(bus.functions) <= {1, 2, 3, 4}, bus.functions  # reads only

        assert main(["scan", "--rtu", bus.port, *FAST, "--write", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"{path}: written (6 devices, 1 commented out)" in out
        assert "0x0000 input float32 = 230.5 V: plausible voltage" in out
        assert main(["check", "-c", str(path)]) == 0
        assert f"{path}: ok (6 devices, 0 rules)" in capsys.readouterr().out
        text = path.read_text()
        assert "# - name: meter_u28" in text and "set this meter to 9600 8N1" in text
        for unit in (3, 22, 5, 11, 17, 36):
            assert main(["probe", "-c", str(path), f"meter_u{unit}", "--json"]) == 0
            points = json.loads(capsys.readouterr().out)["points"]
            assert points["voltage_l1_v"]["quality"] == "good"
            meter = next(m for m in bus.meters if m.unit == unit)
            assert points["voltage_l1_v"]["value"] == pytest.approx(meter.values["voltage_l1_v"])
            assert points["import_kwh"]["value"] >= 12345.5
        assert set(bus.functions) <= {1, 2, 3, 4}, bus.functions
