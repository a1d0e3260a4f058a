"""`edge-agent init`: a starter config per protocol that passes `check` as written."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from asyncio.subprocess import Process
from collections.abc import Awaitable
from pathlib import Path

import pytest

from agent.cli import main
from config.loader import load_profile
from tests.fixtures.opcua import PLANT_VALUES, PlantServer

ROOT = Path(__file__).resolve().parents[2]

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
    "opcua": ["--opcua", "opc.tcp://10.0.0.5:4840", "--offline"],  # nothing asked of 10.0.0.5
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
    again = ["init", "-c", str(path), "--opcua", "opc.tcp://h:4840", "--force", "--offline"]
    assert main(again) == 0
    assert "opc.tcp://h:4840" in path.read_text()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--dlt645", "/dev/ttyUSB1"], "--dlt645 needs --address"),
        (["--dlt645", "/dev/ttyUSB1", "--address", "12345"], "dlt645.address: has the wrong form"),
        (["--modbus-tcp", "10.0.0.1"], "name the meter's --profile ("),
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


def _agent(*args: str, env: dict[str, str] | None = None) -> Awaitable[Process]:
    """`edge-agent ARGS` as a technician types it, while this test's loop serves OPC UA."""
    return asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )  # fmt: skip


async def _finished(started: Awaitable[Process]) -> tuple[int, str, str]:
    process = await started
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.timeout(120)
async def test_init_opcua_writes_the_node_ids_the_server_has(tmp_path: Path) -> None:
    """init --opcua browses the server: every numeric variable is a point with its real node
    id; one named as a profile point takes its name, unit and kind, the others are marked
    CHANGE; the file passes check and probe reads every point good from it."""
    server = PlantServer()
    await server.start()
    path = tmp_path / "agent.yaml"
    (tmp_path / "sync-token").write_text("t0ken")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "STATE_DIRECTORY": str(tmp_path / "state")}
    try:
        written = await _finished(_agent("init", "-c", str(path), "--opcua", server.endpoint))
        checked = await _finished(_agent("check", "-c", str(path), env=env))
        probed = await _finished(_agent("probe", "-c", str(path), "meter1", "--json"))
    finally:
        await server.stop()
    assert written[0] == 0, written[2]
    assert "3 points, 2 marked CHANGE" in written[1]
    text = path.read_text()
    points = {
        line.split('name: "')[1].split('"')[0]: line
        for line in text.splitlines()
        if line.strip().startswith("- {name:")
    }
    assert list(points) == ["import_kwh", "ptot", "u_l1"]
    assert (
        f'node: "{server.nodes["ImportActiveEnergy"]}", unit: "kWh", kind: "counter"}}'
        in (points["import_kwh"])
    )
    assert "CHANGE" not in points["import_kwh"]
    assert f'node: "{server.nodes["Ptot"]}"' in points["ptot"] and "# CHANGE: " in points["ptot"]
    assert f'node: "{server.nodes["U_L1"]}"' in points["u_l1"] and "# CHANGE: " in points["u_l1"]
    assert "EnergyMeter." not in text  # not one of the generic profile's node ids
    assert "    energy: {carrier: electricity, counter: import_kwh}" in text.splitlines()
    assert checked[0] == 0, checked[2]
    assert probed[0] == 0, probed[2]
    values = {k: v["value"] for k, v in json.loads(probed[1])["points"].items()}
    assert values == {
        "import_kwh": pytest.approx(PLANT_VALUES["ImportActiveEnergy"][0]),
        "ptot": pytest.approx(PLANT_VALUES["Ptot"][0]),
        "u_l1": pytest.approx(PLANT_VALUES["U_L1"][0]),
    }


def test_init_opcua_without_a_server_says_so_and_how_to_go_on(tmp_path: Path, capsys) -> None:
    """Nothing answers at the endpoint: exit 69, nothing written, --offline suggested."""
    path = tmp_path / "agent.yaml"
    assert main(["init", "-c", str(path), "--opcua", "opc.tcp://127.0.0.1:9/"]) == 69
    err = capsys.readouterr().err
    assert "connection refused" in err and "--offline writes the profile's points" in err
    assert not path.exists()


def test_init_opcua_offline_marks_every_node_id_to_change(tmp_path: Path, capsys) -> None:
    """--offline writes the generic profile's points, each node id marked CHANGE, and no
    profile: line (its points would merge back under the written ones)."""
    path = tmp_path / "agent.yaml"
    assert main(["init", "-c", str(path), "--opcua", "opc.tcp://10.0.0.5:4840", "--offline"]) == 0
    text = path.read_text()
    lines = [line for line in text.splitlines() if line.strip().startswith("- {name:")]
    assert len(lines) == len(load_profile("opcua-energy-meter").profile.points)
    assert all(line.endswith("# CHANGE: the node id on your server") for line in lines)
    assert "profile:" not in text
