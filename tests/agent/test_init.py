"""`edge-agent init`: a starter config per protocol that passes `check` as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main

CASES = {
    "modbus-tcp": ["--profile", "eastron-sdm630", "--modbus-tcp", "192.168.10.21"],
    "modbus-tcp-port": [
        "--profile",
        "acrel-adw300",
        "--modbus-tcp",
        "10.0.0.7:5020",
        "--unit",
        "4",
    ],
    "modbus-rtu": ["--profile", "chint-dtsu666", "--modbus-rtu", "/dev/ttyUSB0", "--unit", "3"],
    "opcua": ["--opcua", "opc.tcp://10.0.0.5:4840"],
    "dlt645": ["--dlt645", "/dev/ttyUSB1", "--address", "000012345678"],
}


@pytest.mark.parametrize("case", CASES)
def test_init_writes_a_config_that_passes_check(
    case: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each protocol's starter passes `check` exactly as written, with the meter it was told,
    once its sync token is where systemd's credential puts it."""
    path = tmp_path / "etc" / "agent.yaml"
    (tmp_path / "sync-token").write_text("t0ken")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert main(["init", "-c", str(path), *CASES[case]]) == 0
    assert main(["check", "-c", str(path)]) == 0
    assert f"{path}: ok (1 devices, 0 rules)" in capsys.readouterr().out
    target = CASES[case][CASES[case].index(f"--{case.removesuffix('-port')}") + 1]
    assert target.split(":")[0] in path.read_text()


def test_init_never_overwrites_without_force(tmp_path: Path, capsys) -> None:
    """An existing file is kept (exit 78) unless --force is given."""
    path = tmp_path / "agent.yaml"
    path.write_text("# the technician's own\n")
    assert main(["init", "-c", str(path), "--opcua", "opc.tcp://10.0.0.5:4840"]) == 78
    assert "pass --force" in capsys.readouterr().err
    assert path.read_text() == "# the technician's own\n"
    assert main(["init", "-c", str(path), "--opcua", "opc.tcp://h:4840", "--force"]) == 0
    assert "opc.tcp://h:4840" in path.read_text()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--dlt645", "/dev/ttyUSB1"], "--dlt645 needs --address"),
        (["--dlt645", "/dev/ttyUSB1", "--address", "12345"], "dlt645.address: has the wrong form"),
        (["--modbus-tcp", "10.0.0.1"], "name the meter's --profile (acrel-adw300, "),
        (["--profile", "eastron-sdm630", "--opcua", "opc.tcp://h"], "is for modbus meters"),
        (["--profile", "nope", "--modbus-rtu", "/dev/ttyS0"], "unknown profile 'nope'"),
    ],
)
def test_init_refuses_what_would_not_work(
    args: list[str], says: str, tmp_path: Path, capsys
) -> None:
    """A missing or wrong value is named, and nothing is written."""
    path = tmp_path / "agent.yaml"
    assert main(["init", "-c", str(path), *args]) == 78
    assert says in capsys.readouterr().err
    assert not path.exists()
