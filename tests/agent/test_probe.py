"""`edge-agent probe`: one device read now, printed for a technician or as JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.probe import probe
from config.loader import load_config
from drivers.dlt645.simulator import SimulatedBus
from drivers.modbus.simulator import LoadCurve, MeterServer, SimulatedMeter
from tests.fixtures.dlt645 import ADDRESS, meter
from tests.fixtures.dlt645_std import Bus, Meter, bcd
from tests.fixtures.modbus import POINTS
from tests.fixtures.pty_bus import held_port

pytestmark = pytest.mark.timeout(30)
GATEWAY = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
sync: {url: "https://central.example/api/v1/batches"}
devices:
"""


def config(tmp_path: Path, devices: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "agent.yaml"
    path.write_text(GATEWAY + devices)
    return load_config(path)


async def test_json_gives_every_point_with_value_unit_and_quality(tmp_path: Path, capsys) -> None:
    """--json prints one object {device, points: {name: {value, unit, quality}}}; exit 0."""
    sim = SimulatedMeter(1, POINTS, LoadCurve(base_kw=42.0, swing_kw=0.0), counter="energy_kwh")
    server = MeterServer([sim])
    await server.start()
    devices = (
        f"  - name: press\n    modbus_tcp: {{host: 127.0.0.1, port: {server.port}}}\n"
        "    points:\n"
        "      - {name: power_kw, address: 0, function: input, type: float32, unit: kW}\n"
        "      - {name: energy_kwh, address: 10, type: uint32, scale: 0.01, unit: kWh,"
        " kind: counter}\n"
    )
    try:
        code = await probe(config(tmp_path, devices), "press", as_json=True, plan_only=False)
    finally:
        await server.stop()
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["device"] == "press"
    assert out["points"]["power_kw"] == {
        "value": pytest.approx(42.0),
        "unit": "kW",
        "quality": "good",
    }
    assert out["points"]["energy_kwh"]["unit"] == "kWh"


async def test_an_unreachable_device_says_why_and_exits_1(tmp_path: Path, capsys) -> None:
    """Every point bad with the reason; exit status 1 for scripts."""
    devices = (
        "  - name: gone\n    modbus_tcp: {host: 127.0.0.1, port: 9, timeout: 500ms}\n"
        "    points: [{name: e, address: 0, type: uint32, unit: kWh, kind: counter}]\n"
    )
    code = await probe(config(tmp_path, devices), "gone", as_json=True, plan_only=False)
    point = json.loads(capsys.readouterr().out)["points"]["e"]
    assert code == 1
    assert (point["value"], point["quality"]) == (None, "bad")
    assert "cannot connect to 127.0.0.1:9" in point["reason"]


async def test_plan_shows_the_requests_without_sending_them(tmp_path: Path, capsys) -> None:
    """--plan lists the coalesced requests of a profile: nothing is sent."""
    devices = "  - name: m\n    profile: eastron-sdm630\n    modbus_tcp: {host: 192.0.2.1}\n"
    code = await probe(config(tmp_path, devices), "m", as_json=False, plan_only=True)
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith("m: 2 requests, 36 registers, 11 points")
    assert out[1].strip().startswith("input @0x0000 x12")


async def test_identify_reads_the_address_of_the_one_meter_on_the_line(
    tmp_path: Path, capsys
) -> None:
    """DL/T 645 with the wildcard address: probe --identify prints the meter's own address."""
    async with SimulatedBus([meter()], parity="N") as line:
        devices = (
            f"  - name: w3\n    dlt645: {{port: {line.port}, parity: N, address: AAAAAAAAAAAA}}\n"
            "    profile: dlt645-2007-energy\n"
        )
        code = await probe(
            config(tmp_path, devices), "w3", as_json=False, plan_only=False, identify=True
        )
    assert code == 0
    assert capsys.readouterr().out.strip() == f"w3: meter address {ADDRESS}, edition 2007"


async def test_identify_says_a_1997_meter_answered(tmp_path: Path, capsys) -> None:
    """A device written as 2007 on a DL/T 645-1997 meter: --identify finds it in the other
    edition and says so, in text and in --json."""
    meter97 = Meter("000000000414", "1997", {"9010": bcd(9580.15, 8, 2)})
    devices = "  - name: w3\n    dlt645: {{port: {}, parity: N, address: AAAAAAAAAAAA}}\n"
    devices += "    profile: dlt645-2007-energy\n"
    async with Bus([meter97]) as line:
        loaded = config(tmp_path, devices.format(line.port))
        code = await probe(loaded, "w3", as_json=False, plan_only=False, identify=True)
        text = capsys.readouterr().out.strip()
        code_json = await probe(loaded, "w3", as_json=True, plan_only=False, identify=True)
    assert (code, code_json) == (0, 0)
    assert text == "w3: meter address 000000000414, edition 1997"
    assert json.loads(capsys.readouterr().out) == {
        "device": "w3",
        "address": "000000000414",
        "edition": "1997",
    }


async def test_an_unknown_device_lists_the_known_ones(tmp_path: Path, capsys) -> None:
    """A typo in the device name: exit 2 and the names there are."""
    devices = "  - name: main\n    profile: eastron-sdm630\n    modbus_tcp: {host: 192.0.2.1}\n"
    code = await probe(config(tmp_path, devices), "mian", as_json=False, plan_only=False)
    assert code == 2
    assert "no device named 'mian' (devices: main)" in capsys.readouterr().err


async def test_browse_is_refused_for_a_device_whose_driver_cannot(tmp_path: Path, capsys) -> None:
    """--browse asks the driver for the ability; a Modbus meter has none: exit 2, nothing sent."""
    devices = "  - name: main\n    profile: eastron-sdm630\n    modbus_tcp: {host: 192.0.2.1}\n"
    code = await probe(config(tmp_path, devices), "main", as_json=False, plan_only=False, browse="")
    assert code == 2
    assert capsys.readouterr().err == "main: --browse is for OPC UA devices\n"


async def test_identify_answers_in_json_when_asked(tmp_path: Path, capsys) -> None:
    """--identify --json prints one object {device, address, edition}, as --json does for a
    read."""
    async with SimulatedBus([meter()], parity="N") as line:
        devices = (
            f"  - name: w3\n    dlt645: {{port: {line.port}, parity: N, address: AAAAAAAAAAAA}}\n"
            "    profile: dlt645-2007-energy\n"
        )
        code = await probe(
            config(tmp_path, devices), "w3", as_json=True, plan_only=False, identify=True
        )
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {
        "device": "w3",
        "address": ADDRESS,
        "edition": "2007",
    }


async def test_identify_failing_in_json_gives_the_reason(tmp_path: Path, capsys) -> None:
    """A dead line under --json: {device, error}, exit 1, for the script to read."""
    devices = (
        "  - name: w3\n    dlt645: {port: /dev/ttyPROBE-absent, address: AAAAAAAAAAAA}\n"
        "    profile: dlt645-2007-energy\n"
    )
    code = await probe(
        config(tmp_path, devices), "w3", as_json=True, plan_only=False, identify=True
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["device"] == "w3"
    assert "cannot open /dev/ttyPROBE-absent" in out["error"]


async def test_plan_of_an_opcua_device_lists_each_node(tmp_path: Path, capsys) -> None:
    """--plan for OPC UA names every node it reads and the points it serves; nothing is sent."""
    devices = (
        "  - name: plc\n    opcua: {endpoint: 'opc.tcp://127.0.0.1:4840'}\n"
        "    points:\n"
        "      - {name: volume_m3, node: 'ns=2;s=Boiler.GasVolume', unit: m3, kind: counter}\n"
        "      - {name: flow_m3h, node: 'ns=2;s=Boiler.GasFlow', unit: m3/h}\n"
    )
    code = await probe(config(tmp_path, devices), "plc", as_json=False, plan_only=True)
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        "plc: 2 nodes on opc.tcp://127.0.0.1:4840, read, None",
        "  read ns=2;s=Boiler.GasVolume: volume_m3",
        "  read ns=2;s=Boiler.GasFlow: flow_m3h",
    ]


async def test_plan_in_json_gives_the_requests(tmp_path: Path, capsys) -> None:
    """--plan --json: {device, plan, requests: [{request, points}]}, as the table shows it."""
    devices = "  - name: m\n    profile: eastron-sdm630\n    modbus_tcp: {host: 192.0.2.1}\n"
    code = await probe(config(tmp_path, devices), "m", as_json=True, plan_only=True)
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["plan"].startswith("m: 2 requests, 36 registers, 11 points")
    assert out["requests"][0]["request"].startswith("input @0x0000 x12")
    assert "voltage_l1_v" in out["requests"][0]["points"]


async def test_the_table_shows_a_counter_in_full(tmp_path: Path, capsys) -> None:
    """A counter's every digit is printed (12345.67 kWh, not 12345.7); gauges keep 6 digits."""
    async with SimulatedBus([meter()], parity="N") as line:
        devices = (
            f"  - name: w3\n    dlt645: {{port: {line.port}, parity: N, address: '{ADDRESS}'}}\n"
            "    points:\n"
            "      - {name: import_kwh, di: '00010000', format: XXXXXX.XX, unit: kWh,"
            " kind: counter}\n"
            "      - {name: voltage_l1_v, di: '02010100', format: XXX.X, unit: V}\n"
        )
        code = await probe(config(tmp_path, devices), "w3", as_json=False, plan_only=False)
    shown = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert code == 0
    assert shown == {"import_kwh": "12345.67", "voltage_l1_v": "230"}


@pytest.mark.parametrize(
    "link",
    ["modbus_rtu: {port: PORT, unit: 1, timeout: 300ms}", "dlt645: {port: PORT, parity: N}"],
    ids=["modbus_rtu", "dlt645"],
)
async def test_a_port_the_daemon_holds_is_said_to_be_in_use(
    link: str, tmp_path: Path, capsys
) -> None:
    """probe on a serial port another program holds (the running daemon) gives the reason,
    whatever the protocol: 'in use by another program'."""
    with held_port() as name:
        profile = "eastron-sdm630" if link.startswith("modbus") else "dlt645-2007-energy"
        devices = f"  - name: m\n    {link.replace('PORT', name)}\n    profile: {profile}\n"
        if link.startswith("dlt645"):
            devices = devices.replace("parity: N}", f"parity: N, address: '{ADDRESS}'}}")
        code = await probe(config(tmp_path, devices), "m", as_json=True, plan_only=False)
    reasons = {p["reason"] for p in json.loads(capsys.readouterr().out)["points"].values()}
    assert code == 1
    assert reasons and all("in use by another program" in r for r in reasons), reasons
