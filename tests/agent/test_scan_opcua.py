"""`edge-agent scan --opcua`: variables with energy-like engineering units become points
of a config that passes `check`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncua import Server, ua

from agent.cli import main
from agent.scan import run
from drivers.opcua._address_space import initialized
from drivers.opcua.scan import unece, unit_of

# browse name -> (value, EngineeringUnits display name, UN/CEFACT code); None: no unit
VARIABLES = {
    "TotalEnergy": (48211.5, "kWh", "KWH"),
    "ActivePower": (12.5, "kW", "KWT"),
    "Voltage_L1": (229.8, "V", "VLT"),
    "GasVolume": (1520.25, "m³", "MTQ"),
    "Setpoint": (3.0, None, None),
}


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A server whose meter variables carry an EngineeringUnits property (an EUInformation,
    as OPC UA Part 8 §5.6.3 describes), one with only its display name set."""
    srv = await initialized(Server)  # its standard nodes from the simulator's shelf
    srv.set_endpoint("opc.tcp://127.0.0.1:0/")
    srv.disable_clock()
    ns = await srv.register_namespace("urn:test:units")
    folder = await srv.nodes.objects.add_object(ns, "Meter_7")
    for name, (value, display, code) in VARIABLES.items():
        node = await folder.add_variable(ns, name, ua.Variant(value, ua.VariantType.Double))
        if display is not None:
            eu = ua.EUInformation()
            eu.NamespaceUri = "http://www.opcfoundation.org/UA/units/un/cefact"
            eu.UnitId = unece(code) if name != "GasVolume" else -1  # GasVolume: name only
            eu.DisplayName = ua.LocalizedText(display)
            eu.Description = ua.LocalizedText(display)
            await node.add_property(0, "EngineeringUnits", eu)
    await srv.start()
    assert srv.bserver is not None
    try:
        yield f"opc.tcp://127.0.0.1:{srv.bserver.port}/"
    finally:
        await srv.stop()


def test_unit_ids_follow_the_cefact_common_codes() -> None:
    """UnitId: the common code's characters, one byte each (Part 8 §5.6.3): KWH = 0x4B5748."""
    assert unece("KWH") == 0x4B5748
    eu = ua.EUInformation(UnitId=0x4B5748, DisplayName=ua.LocalizedText("whatever"))
    assert unit_of(eu) == "kWh"
    assert unit_of(ua.EUInformation(UnitId=-1, DisplayName=ua.LocalizedText("m3/h"))) == "m3/h"
    assert unit_of(ua.EUInformation(UnitId=-1, DisplayName=ua.LocalizedText("°C"))) is None


async def test_scan_opcua_proposes_the_energy_like_variables(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Each variable with an energy-like unit is a point with its unit (a counter for kWh
    and m3), the others are left out; the config written passes check."""
    (tmp_path / "sync-token").write_text("t0ken")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert await run(opcua=server, as_json=True) == 0
    (meter,) = json.loads(capsys.readouterr().out)["meters"]
    points = {p["name"]: p for p in meter["points"]}
    assert {n: (p["unit"], p.get("kind")) for n, p in points.items()} == {
        "total_energy": ("kWh", "counter"),
        "active_power": ("kW", None),
        "voltage_l1": ("V", None),
        "gas_volume": ("m3", "counter"),
    }
    assert points["total_energy"]["node"].startswith("ns=2;i=")
    path = tmp_path / "agent.yaml"
    assert await run(opcua=server, write_to=path) == 0
    text = path.read_text()
    assert "energy: {carrier: electricity, counter: total_energy}" in text
    assert await asyncio.to_thread(main, ["check", "-c", str(path)]) == 0
    assert f"{path}: ok (1 devices, 0 rules)" in capsys.readouterr().out
