"""`edge-agent scan`: the meters of a bus found, judged and written into a config that
passes `check` and polls them; read-only throughout."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import serial

from agent.cli import main
from agent.scan import Meter, _one_line_per_port, run
from agent.scan_report import write
from config.loader import load_config, load_profile
from drivers.dlt645.settings import Dlt645Point
from drivers.modbus.scan import estimate
from drivers.modbus.settings import ModbusPoint
from drivers.modbus.simulator import LoadCurve, MeterServer, SimulatedMeter
from drivers.registry import make_driver
from tests.fixtures.dlt645_std import Meter as Dlt645Meter
from tests.fixtures.dlt645_std import bcd
from tests.fixtures.rtu_bus import BusMeter, Dlt645Line, RtuBus, TcpMeter, profile_meter

FAST = ["--units", "1-40", "--baud", "9600,19200", "--framing", "8N1,8E1", "--timeout", "0.1"]
FOUR = "eastron-sdm630,chint-dtsu666,schneider-pm5560,acrel-adw300"  # the cabinet's models
PROFILES = FOUR.split(",")
FEW = ["--units", "1-8", "--baud", "9600", "--framing", "8N1", "--timeout", "0.1"]


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
    passes check (the 19200 meter with a warning: the port is switched for it) and every
    device in it polls good, alone (probe) and all together on the one port."""
    path = env / "agent.yaml"
    with RtuBus(cabinet()) as bus:
        assert main(["scan", "--rtu", bus.port, *FAST, "--profiles", FOUR, "--json"]) == 0
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

        # the sweep of all 40 is proven above; writing, the same bus is asked again at the
        # units that answered it, the broken one and the silent one (a sweep's 0.1 s per
        # silent unit and setting, 7 s, spared), at the same speeds and framings
        again = ",".join(str(u) for u in sorted({*found, 9, 30}))
        write_args = ["--units", again, *FAST[2:], "--profiles", FOUR, "--write", str(path)]
        assert main(["scan", "--rtu", bus.port, *write_args]) == 0
        out = capsys.readouterr().out
        assert f"{path}: written (7 devices)" in out
        assert "0x0000 input float32 = 230.5 V: plausible voltage" in out
        assert main(["check", "-c", str(path)]) == 0
        checked = capsys.readouterr()
        assert f"{path}: ok (7 devices, 0 rules)" in checked.out
        assert "runs at 9600 N1 for 'meter_u3' (devices[0]) and at 19200 N1" in checked.err
        text = path.read_text()
        assert "  - name: meter_u28" in text and "switches the port to 19200 8N1" in text
        for unit in (3, 22, 5, 28, 11, 17, 36):
            assert main(["probe", "-c", str(path), f"meter_u{unit}", "--json"]) == 0
            points = json.loads(capsys.readouterr().out)["points"]
            assert points["voltage_l1_v"]["quality"] == "good"
            meter = next(m for m in bus.meters if m.unit == unit)
            assert points["voltage_l1_v"]["value"] == pytest.approx(meter.values["voltage_l1_v"])
            assert points["import_kwh"]["value"] >= 12345.5
        # and all 7 polled together, as the agent polls them: one port, two speeds
        assert asyncio.run(_poll_all(path, rounds=2)) == {
            f"meter_u{m.unit}": m.values["voltage_l1_v"] for m in bus.meters if m.served
        }
        assert set(bus.functions) <= {1, 2, 3, 4}, bus.functions


async def _poll_all(path: Path, rounds: int) -> dict[str, float]:
    """Every device of the config read at once by its driver, `rounds` times, as the
    agent's jobs would fire together; each reading good. The voltage L1 of each."""
    drivers = [make_driver(d) for d in load_config(path).config.devices]
    try:
        for _ in range(rounds):
            results = await asyncio.gather(*(d.read() for d in drivers))
            bad = [r for readings in results for r in readings if not r.good]
            assert not bad, bad
    finally:
        for driver in drivers:
            await driver.close()
    return {r.device: r.value for rs in results for r in rs if r.point == "voltage_l1_v"}  # type: ignore[misc]


def test_with_every_shipped_profile_no_meter_is_guessed_wrong(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Judged against all shipped profiles (some share a register map, as the Schneider
    PM2200 and PM5560 lists do), each meter gets its own profile or is unknown with its
    own among the candidates, written commented out naming them: never another's. A
    commented-out device, uncommented as it stands, passes check."""
    path = env / "agent.yaml"
    # the cabinet's units only (the sweep of all 40 is the seven-meter case's): this case is
    # about judging, and each unit id no meter has costs 0.1 s per setting
    cabinet_units = ["--units", ",".join(str(u) for u in sorted(m.unit for m in cabinet()))]
    with RtuBus(cabinet()) as bus:
        args = [*cabinet_units, *FAST[2:], "--json", "--write", str(path)]
        assert main(["scan", "--rtu", bus.port, *args]) == 0
    report = json.loads(capsys.readouterr().out)
    truth = {3: "eastron-sdm630", 22: "eastron-sdm630", 5: "chint-dtsu666", 28: "chint-dtsu666",
             11: "schneider-pm5560", 17: "acrel-adw300", 36: "acrel-adw300"}  # fmt: skip
    assert {m["link"]["unit"] for m in report["meters"]} == set(truth)
    for meter in report["meters"]:
        right = truth[meter["link"]["unit"]]
        if meter["profile"] is None:
            assert right in meter["candidates"], meter
            assert not meter["written"] and "read alike" in meter["note"]
        else:
            assert meter["profile"] == right, meter
    lines = path.read_text().splitlines()
    for meter in report["meters"]:
        if meter["written"]:
            continue
        at = lines.index(f"  # - name: {meter['name']}")
        lines[at] = lines[at].replace("  # ", "  ", 1)
        while at + 1 < len(lines) and lines[at + 1].startswith("  #   "):
            at += 1
            lines[at] = lines[at].replace("  # ", "  ", 1)
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    assert main(["check", "-c", str(path)]) == 0
    assert f"{path}: ok (7 devices, 0 rules)" in capsys.readouterr().out


def test_a_port_in_use_is_refused_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    """A port another program holds (a running agent) is not swept: exit 69, and why."""
    with RtuBus(cabinet()) as bus, serial.Serial(bus.port, 9600, exclusive=True):
        assert main(["scan", "--rtu", bus.port, *FAST]) == 69
        err = capsys.readouterr().err
        assert f"{bus.port}: in use by another program; not scanned" in err
        assert "systemctl stop edge-agent" in err
        assert not bus.functions


def test_write_never_overwrites_a_config_without_force(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing agent.yaml is kept, and its devices named, unless --force."""
    path = env / "agent.yaml"
    path.write_text("devices:\n  - {name: press_2}\n  - {name: boiler}\n")
    with RtuBus([profile_meter(3, "eastron-sdm630")]) as bus:
        assert main(["scan", "--rtu", bus.port, *FEW, "--write", str(path)]) == 78
        assert "exists with 2 devices (press_2, boiler)" in capsys.readouterr().err
        assert "press_2" in path.read_text()
        assert not bus.functions  # refused before anything was sent
        force = ["--write", str(path), "--force", "--profiles", FOUR]
        assert main(["scan", "--rtu", bus.port, *FEW, *force]) == 0
    assert "name: meter_u3" in path.read_text()


def test_a_meter_no_profile_fits_is_listed_unknown_and_not_written(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A meter whose registers read zero voltage under every map is unknown: listed with
    what it answered, commented out of the config, never guessed."""
    dead = profile_meter(4, "eastron-sdm630")
    for point in ("voltage_l1_v", "voltage_l2_v", "voltage_l3_v", "frequency_hz"):
        dead._store(next(p for p in _points("eastron-sdm630") if p.name == point), 0.0)
    path = env / "agent.yaml"
    with RtuBus([dead, profile_meter(6, "acrel-adw300")]) as bus:
        assert main(["scan", "--rtu", bus.port, *FEW, "--write", str(path)]) == 0
    out = capsys.readouterr().out
    assert any(
        line.startswith("meter_u4 ") and line.endswith(" unknown") for line in out.split("\n")
    )
    assert "0x0000 input float32 = 0 V: not a live voltage" in out
    text = path.read_text()
    assert "# - name: meter_u4" in text and "  - name: meter_u6" in text


def _points(profile: str) -> list[ModbusPoint]:
    return [p for p in load_profile(profile).profile.points if isinstance(p, ModbusPoint)]


async def test_scan_tcp_finds_units_behind_a_gateway(capsys: pytest.CaptureFixture[str]) -> None:
    """Two meters behind one Modbus TCP gateway, found by unit id and profile; the
    gateway's "target failed to respond" for other units is no meter."""
    meters = [
        SimulatedMeter(4, _points("eastron-sdm630"), LoadCurve(5.0, 1.0)),
        SimulatedMeter(9, _points("schneider-pm5560"), LoadCurve(8.0, 1.0)),
    ]
    server = MeterServer(meters, port=0)
    await server.start()
    try:
        target = f"127.0.0.1:{server.port}"
        code = await run(
            tcp=target, units=range(1, 13), timeout=0.5, as_json=True, profiles=PROFILES
        )
        assert code == 0
    finally:
        await server.stop()
    report = json.loads(capsys.readouterr().out)
    found = {m["link"]["unit"]: m["profile"] for m in report["meters"]}
    assert found == {4: "eastron-sdm630", 9: "schneider-pm5560"}
    assert report["meters"][0]["link"] == {"host": "127.0.0.1", "port": server.port, "unit": 4}


async def test_scan_tcp_rtu_framer_for_a_transparent_converter(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """RTU frames over TCP (a serial-to-Ethernet converter in transparent mode)."""
    meters = [SimulatedMeter(7, _points("chint-dtsu666"), LoadCurve(5.0, 1.0))]
    server = MeterServer(meters, port=0, framer="rtu")
    await server.start()
    try:
        target = f"127.0.0.1:{server.port}"
        code = await run(tcp=target, framer="rtu", units=range(5, 9), timeout=0.3, as_json=True)
    finally:
        await server.stop()
    assert code == 0
    (meter,) = json.loads(capsys.readouterr().out)["meters"]
    assert meter["profile"] == "chint-dtsu666"
    assert meter["link"] == {"host": "127.0.0.1", "port": server.port, "framer": "rtu", "unit": 7}


def test_a_meter_answering_8n1_and_8n2_alike_is_found_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A UART checks one stop bit: a meter at 8N1 answers 8N2 requests too. It is one
    meter, found at the first framing and not asked again at the second."""
    with RtuBus([profile_meter(2, "eastron-sdm630")]) as bus:
        args = ["--units", "1-4", "--baud", "9600", "--framing", "8N1,8N2", "--timeout", "0.1"]
        args += ["--profiles", FOUR]  # without, the SDM630 and SDM72 maps tie
        assert main(["scan", "--rtu", bus.port, *args, "--json"]) == 0
    (meter,) = json.loads(capsys.readouterr().out)["meters"]
    assert (meter["link"]["unit"], meter["link"]["stopbits"]) == (2, 1)
    assert meter["profile"] == "eastron-sdm630"


async def test_a_tcp_meter_that_answers_any_unit_is_found_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A meter reached directly answers every unit id: found once (at unit 1), not 247
    times, and only reads were sent."""
    meter = TcpMeter(profile_meter(1, "acrel-adw300"))
    await meter.start()
    try:
        assert await run(tcp=f"127.0.0.1:{meter.port}", timeout=0.5, as_json=True) == 0
    finally:
        await meter.stop()
    (found,) = json.loads(capsys.readouterr().out)["meters"]
    assert found["profile"] == "acrel-adw300"
    assert found["link"]["unit"] == 1 and "answers any unit id" in found["answer"]
    assert set(meter.functions) <= {1, 2, 3, 4}
    assert set(meter.units) == {255, 1, 246}  # three probes, then unit 1's reads; never 0


async def test_tcp_unit_0_is_asked_only_when_the_units_name_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A TCP-to-RTU gateway forwards unit 0 as a serial broadcast, so by default no
    request goes to unit 0; `--units 0-...` asks it, and a device answering 0 alone
    (the TCP guide accepts 0 for a direct connection) is found there."""
    meter = TcpMeter(profile_meter(0, "schneider-pm5560"), only=0)
    await meter.start()
    try:
        target = f"127.0.0.1:{meter.port}"
        assert await run(tcp=target, units=range(1, 5), as_json=True, profiles=PROFILES) == 1
        assert 0 not in meter.units and meter.units[255] == 1
        capsys.readouterr()
        args = ["scan", "--tcp", target, "--units", "0-4", "--json", "--profiles", FOUR]
        assert await asyncio.to_thread(main, args) == 0
    finally:
        await meter.stop()
    (found,) = json.loads(capsys.readouterr().out)["meters"]
    assert (found["link"]["unit"], found["profile"]) == (0, "schneider-pm5560")
    assert set(meter.functions) <= {1, 2, 3, 4}


async def test_a_tcp_meter_at_unit_255_only_is_found_there(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A device that answers only 255 (the TCP guide's unit id for a direct connection)
    and says 0B for the rest is found at 255."""
    meter = TcpMeter(profile_meter(255, "schneider-pm5560"), only=255)
    await meter.start()
    try:
        target = f"127.0.0.1:{meter.port}"
        code = await run(tcp=target, units=range(1, 11), as_json=True, profiles=PROFILES)
    finally:
        await meter.stop()
    assert code == 0
    (found,) = json.loads(capsys.readouterr().out)["meters"]
    assert (found["link"]["unit"], found["profile"]) == (255, "schneider-pm5560")


@pytest.mark.slow
def test_a_sweep_of_one_setting_takes_what_the_estimate_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """80 unit ids at 9600 8N1 with the default timeout take what `estimate` says, the
    function behind the README's figure for all 247 (about 30 s per setting, so about
    6 minutes for 4 speeds x 3 framings): each unit id costs its timeout and its frames."""
    with RtuBus(cabinet()) as bus:
        one = ["--baud", "9600", "--framing", "8N1", "--units", "1-80", "--json"]
        one += ["--profiles", FOUR]  # judging is not timed here (`seconds` is the sweep's)
        assert main(["scan", "--rtu", bus.port, *one]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["meters"]) == 6  # the 19200 one is not on this setting
    assert 80 * 0.1 < report["seconds"] < estimate(80, 1, 0.1) + 15  # + the profiles' reads


def test_a_flow_meter_with_nothing_live_is_offered_not_chosen(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flow meter has no voltage or frequency, and its totaliser does not move in a
    second: its values are plausible but prove nothing a blank map would not. The nearest
    profile is offered commented out (its carrier left to say), never written as found."""
    path = env / "agent.yaml"
    flow = profile_meter(4, "tuf-2000f")
    flow.counters = []  # no flow through it now: its totaliser stands still between reads
    # the SDM630 and SDM72 maps read alike (a tie): the cabinet's models are named
    models = ["--profiles", "tuf-2000f,eastron-sdm630,foxthermal-ft3,2flow-mag11"]
    with RtuBus([flow, profile_meter(6, "eastron-sdm630")]) as bus:
        assert main(["scan", "--rtu", bus.port, *FEW, *models, "--write", str(path)]) == 0
    out = capsys.readouterr().out
    assert "nearest, tuf-2000f: 3/3 points plausible" in out
    text = path.read_text()
    assert "  #   profile: tuf-2000f   # CHANGE: nearest by its values, unconfirmed" in text
    assert "  #   # energy: {carrier: CHANGE, counter: volume_m3}" in text
    assert "  - name: meter_u6" in text and "  - name: meter_u4" not in text


OLD, NEW = "000000000414", "000012345678"  # a DL/T 645-1997 and a 2007 meter's addresses
DLT645_READS = {0x01, 0x11, 0x13}  # 1997 read data, 2007 read data, 2007 read address
DLT645_TYPICAL = {"import": 12345.67, "export": 12.25, "power_kw": 2.875, "voltage": 230.5,
                  "current": 4.25, "power_factor": 0.93, "frequency_hz": 50.02}  # fmt: skip


def dlt645_meter(address: str, edition: str, **faults: Any) -> Dlt645Meter:
    """A meter of the edition answering every point of its edition's energy profile with a
    plausible value, encoded by the standards' BCD rule (dlt645_std.bcd)."""
    values, expected = {}, {}
    for point in load_profile(f"dlt645-{edition}-energy").profile.points:
        assert isinstance(point, Dlt645Point)
        whole, _, decimals = point.format.partition(".")
        key = next(k for k in DLT645_TYPICAL if point.name.startswith(k))
        value = round(DLT645_TYPICAL[key], len(decimals))
        digits = len(whole) + len(decimals)  # whole bytes: XXX (1997 voltage) is 2 bytes
        values[point.di] = bcd(value, digits + digits % 2, len(decimals))
        expected[point.name] = value
    meter = Dlt645Meter(address, edition, values, **faults)
    meter.asked = []
    setattr(meter, "expected", expected)  # noqa: B010  (what probe must read)
    return meter


def test_a_dlt645_bus_with_a_1997_and_a_2007_meter_is_told_apart_written_and_probed(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The done-when case of issue 15 for DL/T 645: the wildcard finds the one meter of each
    edition on the line; each is written with its own address, edition and profile; the
    config passes check and probe reads every point of both good. Only reads were sent."""
    path = env / "agent.yaml"
    meters = [dlt645_meter(OLD, "1997"), dlt645_meter(NEW, "2007")]
    args = ["--baud", "2400", "--framing", "8N1", "--timeout", "0.3"]  # a pty refuses 8E1 twice
    with Dlt645Line(meters) as line:
        assert main(["scan", "--dlt645", line.port, *args, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        found = {
            m["link"]["address"]: (m["profile"], m["link"].get("edition"), m["written"])
            for m in report["meters"]
        }
        assert found == {
            OLD: ("dlt645-1997-energy", 1997, True),
            NEW: ("dlt645-2007-energy", None, True),
        }
        assert main(["scan", "--dlt645", line.port, *args, "--write", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"{path}: written (2 devices)" in out
        assert "2007 read address (13H) at AAAAAAAAAAAA → 000012345678" in out
        assert "1997 read 9010 at AAAAAAAAAAAA → 12345.67 kWh from meter 000000000414" in out
        assert main(["check", "-c", str(path)]) == 0
        assert f"{path}: ok (2 devices, 0 rules)" in capsys.readouterr().out
        for meter, name in ((meters[0], "meter_414"), (meters[1], "meter_12345678")):
            assert main(["probe", "-c", str(path), name, "--json"]) == 0
            points = json.loads(capsys.readouterr().out)["points"]
            expected = getattr(meter, "expected")  # noqa: B009
            assert {n: p["quality"] for n, p in points.items()} == dict.fromkeys(expected, "good")
            assert {n: p["value"] for n, p in points.items()} == pytest.approx(expected)
        assert {r.control for r in line.heard} <= DLT645_READS


def test_dlt645_addresses_given_are_asked_and_a_meter_at_another_speed_is_set_aside(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the nameplate addresses each is asked in both editions; a meter found at another
    speed than the others on the port is written commented out, saying what to set."""
    path = env / "agent.yaml"
    far = "000000000777"
    meters = [
        dlt645_meter(OLD, "1997"),
        dlt645_meter(NEW, "2007"),
        dlt645_meter(far, "2007", baudrate=9600),
    ]
    with Dlt645Line(meters) as line:
        args = ["--baud", "2400,9600", "--framing", "8N1", "--timeout", "0.3"]
        args += ["--address", f"{OLD},{NEW}"]
        code = main(["scan", "--dlt645", line.port, *args, "--address", far, "--write", str(path)])
        assert code == 0
        out = capsys.readouterr().out
        assert f"{path}: written (2 devices, 1 commented out)" in out
        assert [(r.address, r.control) for r in line.heard][:2] == [(OLD, 0x11), (OLD, 0x01)]
    text = path.read_text()
    assert "  # - name: meter_777" in text
    assert "set this meter to 2400 8N1 (its menu), change baudrate/parity here" in text
    assert main(["check", "-c", str(path)]) == 0


def test_a_dlt645_port_in_use_is_refused_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A port another program holds (a running agent) is not scanned: exit 69, and why."""
    with Dlt645Line([dlt645_meter(NEW, "2007")]) as line:
        with serial.Serial(line.port, 2400, exclusive=True):
            assert main(["scan", "--dlt645", line.port, "--timeout", "0.3"]) == 69
        assert not line.heard
    err = capsys.readouterr().err
    assert err.startswith(f"cannot scan {line.port}: ") and "nothing was sent" in err
    assert "in use by another program" in err
    assert "systemctl stop edge-agent" in err


def test_a_dlt645_address_of_the_wrong_length_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A typo in --address: a usage error before the port is opened."""
    code = main(["scan", "--dlt645", "/dev/ttyDLT645-absent", "--address", "12345"])
    assert code == 64
    assert "a DL/T 645 address has 12 digits (got '12345')" in capsys.readouterr().err


def test_one_port_found_carrying_both_protocols_writes_the_one_most_meters_speak(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--rtu and --dlt645 in one scan: the meters of both are found and written. Were they
    on one port, `check` allows one protocol there, so the meters of the protocol fewer
    speak are written commented out, saying why, and the file passes check."""
    path = env / "agent.yaml"
    fast = ["--units", "1-8", "--baud", "9600", "--framing", "8N1", "--timeout", "0.05"]
    modbus = [profile_meter(3, "eastron-sdm630"), profile_meter(5, "chint-dtsu666")]
    with RtuBus(modbus) as bus, Dlt645Line([dlt645_meter(NEW, "2007", baudrate=9600)]) as line:
        args = ["--rtu", bus.port, "--dlt645", line.port, *fast, "--profiles", FOUR]
        assert main(["scan", *args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    written = [(m["protocol"], m["profile"], m["written"]) for m in report["meters"]]
    assert written == [
        ("modbus_rtu", "eastron-sdm630", True),
        ("modbus_rtu", "chint-dtsu666", True),
        ("dlt645", "dlt645-2007-energy", True),
    ]  # two ports (one pty each): all written
    meters = [_meter(m) for m in report["meters"]]
    for meter in meters:
        meter.link["port"] = "/dev/ttyUSB0"  # one port wired with both kinds of meter
    _one_line_per_port(meters)
    (dlt,) = [m for m in meters if m.protocol == "dlt645"]
    assert not dlt.active and [m.active for m in meters if m.protocol == "modbus_rtu"] == [True] * 2
    assert "/dev/ttyUSB0 carries modbus_rtu for 2 other meters" in dlt.note
    assert write(path, meters, force=True).startswith(f"{path}: written (2 devices, 1 commented")
    assert main(["check", "-c", str(path)]) == 0


def _meter(found: dict[str, Any]) -> Meter:
    meter = Meter(found["name"], found["protocol"], found["link"], "", found["answer"])
    meter.profile = found["profile"]
    return meter
