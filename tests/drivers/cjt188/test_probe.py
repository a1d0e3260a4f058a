"""`edge-agent probe` on a CJ/T 188 meter: the points, the plan and --identify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.probe import probe
from config.loader import LoadedConfig, load_config
from tests.fixtures.cjt188 import T0, SimulatedBus, SimulatedMeter
from tests.fixtures.config import GATEWAY
from tests.fixtures.pty_bus import held_port

pytestmark = pytest.mark.timeout(30)

ADDRESS = "00000012345678"


def config(tmp_path: Path, port: str, address: str = ADDRESS) -> LoadedConfig:
    path = tmp_path / "agent.yaml"
    path.write_text(
        GATEWAY
        + "devices:\n  - name: heat1\n"
        + f"    cjt188: {{port: {port}, parity: N, address: '{address}', meter_type: heat}}\n"
        + "    profile: cjt188-heat\n"
    )
    return load_config(path)


async def test_probe_prints_every_point_with_its_unit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meter = SimulatedMeter(ADDRESS, 0x20, clock=lambda: T0, heat_kwh=12345.67)
    async with SimulatedBus([meter]) as bus:
        code = await probe(config(tmp_path, bus.port), "heat1", as_json=False, plan_only=False)
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert lines[0].split() == ["heat_kwh", "12345.67", "kWh", "good"]
    assert lines[5].split() == ["supply_temp_c", "75.3", "°C", "good"]
    assert len(lines) == 10


async def test_probe_json_and_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meter = SimulatedMeter(ADDRESS, 0x20, clock=lambda: T0, valve=1)
    async with SimulatedBus([meter]) as bus:
        loaded = config(tmp_path, bus.port)
        assert await probe(loaded, "heat1", as_json=True, plan_only=False) == 0
        assert await probe(loaded, "heat1", as_json=False, plan_only=True) == 0
    read, *plan = capsys.readouterr().out.splitlines()
    assert json.loads(read)["points"]["valve_open"] == {"value": 0.0, "unit": "", "quality": "good"}
    assert plan[0] == f"heat1: 1 data identifiers (10 points) on {bus.port} @2400 8N1, " + (
        f"20H (heat) meter {ADDRESS}"
    )
    assert plan[1].startswith("  DI 901F: heat_kwh, settlement_heat_kwh, power_kw")


async def test_identify_gives_the_lone_meters_address_and_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meter = SimulatedMeter(ADDRESS, 0x20, clock=lambda: T0)
    async with SimulatedBus([meter]) as bus:
        loaded = config(tmp_path, bus.port, "AAAAAAAAAAAAAA")
        code = await probe(loaded, "heat1", as_json=False, plan_only=False, identify=True)
    assert code == 0
    assert capsys.readouterr().out.strip() == f"heat1: meter address {ADDRESS}, type 20H (heat)"


async def test_a_silent_meter_is_probed_bad_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    meter = SimulatedMeter(ADDRESS, 0x20, silent=True)
    async with SimulatedBus([meter]) as bus:
        loaded = config(tmp_path, bus.port)
        code = await probe(loaded, "heat1", as_json=False, plan_only=False)
    assert code == 1
    assert f"heat1 meter {ADDRESS} DI 901F: no reply within 1.5s" in capsys.readouterr().out


async def test_a_port_the_daemon_holds_is_said_to_be_in_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """probe on a serial port another program holds (the running daemon) says so."""
    with held_port() as name:
        code = await probe(config(tmp_path, name), "heat1", as_json=True, plan_only=False)
    reasons = {p["reason"] for p in json.loads(capsys.readouterr().out)["points"].values()}
    assert code == 1
    assert reasons == {
        f"heat1 meter {ADDRESS} DI 901F: cannot open {name} at 2400 8N1: in use by another program"
    }
