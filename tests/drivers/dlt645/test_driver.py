"""The DL/T 645 driver against simulated meters on a pseudo-terminal, faults included."""

from __future__ import annotations

import asyncio
import errno
import re
import termios
import time
from pathlib import Path

import pytest

from domain.errors import DeviceTimeout, Disconnected
from domain.reading import Quality
from drivers.bus import port_trouble
from drivers.dlt645 import _link
from drivers.dlt645.codec import PREAMBLE, Frame, di_to_wire, encode_bcd
from drivers.dlt645.driver import Dlt645Driver
from drivers.dlt645.settings import Dlt645Device, Dlt645Point
from drivers.dlt645.simulator import SimulatedBus
from drivers.registry import make_driver
from tests.fixtures.dlt645 import ADDRESS, CURVE, PROFILE, T0, bus, device, driver, meter

pytestmark = pytest.mark.timeout(30)

OTHER = "000000000002"


def expected() -> dict[str, tuple[float, str]]:
    """What the simulated meter serves at T0: 36 kW flat, 12 345.67 kWh, 230 V, 50 Hz."""
    current = round(36_000.0 / (3 * 230.0 * 0.95), 3)
    return {
        "import_kwh": (12345.67, "kWh"),
        "import_t1_kwh": (1234.57, "kWh"),
        "import_t2_kwh": (3703.70, "kWh"),
        "import_t3_kwh": (4938.27, "kWh"),
        "import_t4_kwh": (2469.13, "kWh"),
        "export_kwh": (0.0, "kWh"),
        "power_kw": (36.0, "kW"),
        "voltage_l1_v": (230.0, "V"),
        "voltage_l2_v": (230.0, "V"),
        "voltage_l3_v": (230.0, "V"),
        "current_l1_a": (current, "A"),
        "current_l2_a": (current, "A"),
        "current_l3_a": (current, "A"),
        "power_factor": (0.95, ""),
        "frequency_hz": (50.0, "Hz"),
    }


async def test_every_profile_point_reads_good_with_its_unit() -> None:
    """A healthy meter gives every point of the profile, decoded, with the profile's units."""
    async with bus(meter()) as line, driver(device(line.port)) as d:
        readings = await d.read()
    assert expected() == {r.point: (r.value, r.unit) for r in readings}
    assert all(r.quality is Quality.GOOD and r.device == "workshop3" for r in readings)


async def test_the_energy_is_the_integral_of_the_simulated_power() -> None:
    """With a running clock, import_kwh advances by the curve's energy between two polls."""
    clock = [T0]
    sim = meter(clock=lambda: clock[0])
    points = [p for p in PROFILE if p.name == "import_kwh"]
    async with bus(sim) as line, driver(device(line.port, points=points)) as d:
        first = (await d.read())[0].value
        clock[0] += 3600.0
        second = (await d.read())[0].value
    assert (CURVE.energy_kwh(T0 + 3600.0) - CURVE.energy_kwh(T0)) == pytest.approx(
        second - first, abs=0.01
    )


async def test_an_error_reply_is_bad_with_the_decoded_reason() -> None:
    """A DI the meter lacks reads bad, the reason naming device, meter, DI and the error bits."""
    sim = meter()
    del sim.values["00010000"]
    async with bus(sim) as line, driver(device(line.port)) as d:
        readings = {r.point: r for r in await d.read()}
    bad = readings.pop("import_kwh")
    assert (bad.quality, bad.value) == (Quality.BAD, None)
    assert bad.reason == (
        "workshop3 meter 000012345678 DI 00010000: error reply: "
        "no requested data (DI not supported)"
    )
    assert all(r.good for r in readings.values())


async def test_a_garbled_checksum_is_bad() -> None:
    """A reply whose checksum does not add up is never decoded; the timeout names it."""
    sim = meter(garbled=True)
    async with bus(sim) as line, driver(device(line.port)) as d:
        readings = await d.read()
    assert all(r.quality is Quality.BAD for r in readings)
    assert readings[0].reason.startswith(
        "workshop3 meter 000012345678 DI 00010000: no reply within 0.3s; "
        "heard a garbled frame: checksum"
    )
    assert sim.asked == ["00010000"]  # no answer to the first DI: the meter is taken as dead


async def test_junk_and_wake_up_bytes_before_a_reply_are_skipped() -> None:
    """Line noise and FE FE FE FE before the frame still give a good reading."""
    sim = meter(junk=bytes.fromhex("00 68 12 FF 16 68"), preamble=b"\xfe" * 7)
    async with bus(sim) as line, driver(device(line.port)) as d:
        readings = await d.read()
    assert all(r.good for r in readings)


async def test_a_reply_from_another_address_is_bad() -> None:
    """A frame from a meter other than the one asked is not taken for its answer."""
    async with bus(meter(reply_as=OTHER)) as line, driver(device(line.port)) as d:
        readings = await d.read()
    assert all(r.quality is Quality.BAD for r in readings)
    assert readings[0].reason == (
        "workshop3 meter 000012345678 DI 00010000: no reply within 0.3s; "
        "heard a reply from meter 000000000002"
    )


async def test_a_value_that_is_not_bcd_is_bad_never_a_number() -> None:
    """A nibble above 9 in the value makes the point bad; the others still read."""
    sim = meter()
    sim.values["02030000"] = bytes.fromhex("45 2A 01")
    async with bus(sim) as line, driver(device(line.port)) as d:
        readings = {r.point: r for r in await d.read()}
    power = readings.pop("power_kw")
    assert (power.quality, power.value) == (Quality.BAD, None)
    assert "DI 02030000: not BCD: 45 2A 01 has a digit above 9" in (power.reason or "")
    assert all(r.good for r in readings.values())


async def test_a_silent_meter_costs_one_timeout_per_poll() -> None:
    """No reply to the first DI: every point is bad, the rest are not asked, and each point's
    reason names its own DI and the one that went unanswered."""
    sim = meter(ignored={p.di for p in PROFILE})  # hears every request, answers none
    async with bus(sim) as line, driver(device(line.port, timeout="200ms")) as d:
        started = time.monotonic()
        readings = await d.read()
        took = time.monotonic() - started
    first = "workshop3 meter 000012345678 DI 00010000: no reply within 0.2s"
    skipped = "workshop3 meter 000012345678 DI {}: not asked (DI 00010000: no reply within 0.2s)"
    dis = {p.name: p.di for p in PROFILE}
    assert [r.reason for r in readings] == [
        first if dis[r.point] == "00010000" else skipped.format(dis[r.point]) for r in readings
    ]
    assert sim.asked == ["00010000"]
    assert took < 0.4


async def test_a_meter_silent_on_one_di_spoils_only_that_di() -> None:
    """Some meters ignore a DI they lack: after a first answer, a timeout costs its DI only."""
    sim = meter(ignored={"02060000"})
    async with bus(sim) as line, driver(device(line.port, timeout="200ms")) as d:
        readings = {r.point: r for r in await d.read()}
    pf = readings.pop("power_factor")
    assert pf.reason == "workshop3 meter 000012345678 DI 02060000: no reply within 0.2s"
    assert all(r.good for r in readings.values())


async def test_a_dead_meter_does_not_stop_its_neighbour_on_the_bus() -> None:
    """Two meters share a pty; the dead one reads bad, the live one good, delayed by one timeout."""
    async with bus(meter()) as line:
        live_device = device(line.port, name="live")
        dead_device = device(line.port, address=OTHER, name="dead", timeout="400ms")
        async with driver(live_device) as live, driver(dead_device) as dead:
            alone_started = time.monotonic()
            await live.read()
            alone = time.monotonic() - alone_started

            async def timed(d: Dlt645Driver) -> tuple[list, float]:
                started = time.monotonic()
                return await d.read(), time.monotonic() - started

            (dead_readings, _), (live_readings, took) = await asyncio.gather(
                timed(dead), timed(live)
            )
    assert all(r.good for r in live_readings)
    assert all(r.quality is Quality.BAD for r in dead_readings)
    assert dead_readings[0].reason == "dead meter 000000000002 DI 00010000: no reply within 0.4s"
    assert took < alone + 0.4 + 0.2


async def test_devices_on_one_port_share_one_open_port() -> None:
    """The port is opened once for every device on it and closed with the last of them."""
    async with bus(meter(), meter(OTHER)) as line:
        async with driver(device(line.port)) as one, driver(device(line.port, OTHER)) as two:
            assert one._link is two._link
            await one.read()
            await two.read()
            assert one._link.users == 2
        assert _link.shared(line.port) is None


async def test_a_port_that_does_not_exist_gives_bad_readings_not_an_exception() -> None:
    """An unplugged adapter makes every point bad with a reason a technician can act on."""
    async with driver(device("/dev/ttyDLT645-absent")) as d:
        readings = await d.read()
    assert len(PROFILE) == len(readings)
    assert all(r.quality is Quality.BAD for r in readings)
    why = (
        "cannot open /dev/ttyDLT645-absent at 2400 8N1: no such device (is the USB-RS485 "
        "adapter plugged in? see ls /dev/serial/by-id)"
    )
    assert readings[0].reason == f"workshop3 meter 000012345678 DI 00010000: {why}"
    power = next(r for r in readings if r.point == "power_kw")
    assert power.reason == (
        f"workshop3 meter 000012345678 DI 02030000: not asked (DI 00010000: {why})"
    )


async def test_a_port_that_comes_back_is_reopened_at_the_next_poll(tmp_path: Path) -> None:
    """Unplugged mid-run, then plugged in again: bad while away, good again without a restart."""
    port = tmp_path / "ttyUSB1"  # a by-id style symlink that follows the adapter
    first = SimulatedBus([meter()])
    await first.start()
    port.symlink_to(first.port)
    async with driver(device(str(port))) as d:
        before = await d.read()
        await first.stop()
        port.unlink()
        away = await d.read()
        async with bus(meter()) as second:
            port.symlink_to(second.port)
            back = await d.read()
    assert all(r.good for r in before)
    assert all(r.quality is Quality.BAD for r in away)
    assert all(r.good for r in back)


async def test_a_late_reply_from_the_last_poll_is_flushed() -> None:
    """A reply that arrives after its timeout is discarded, not taken for the next answer.

    The late reply is for the same meter and DI as the next request, so only the
    flush before that request tells it from the fresh one (an hour's energy apart).
    """
    clock = [T0]
    sim = meter(delay=0.3, clock=lambda: clock[0])
    points = [p for p in PROFILE if p.name in ("import_kwh", "power_kw")]
    async with bus(sim) as line, driver(device(line.port, points=points, timeout="150ms")) as d:
        late = await d.read()
        await asyncio.sleep(0.3)  # the late reply, with T0's energy, is on the line now
        sim.delay = 0.0
        clock[0] += 3600.0
        readings = {r.point: r.value for r in await d.read()}
    assert all(r.quality is Quality.BAD for r in late)
    assert readings == {"import_kwh": round(CURVE.energy_kwh(T0 + 3600.0), 2), "power_kw": 36.0}


# --- a shared line: frames that are not the answer are skipped ---------------------------


async def test_a_late_reply_from_a_slow_meter_does_not_spoil_its_neighbour() -> None:
    """A slow meter's reply lands inside its neighbour's exchange: skipped, poll after poll.

    A answers 0.1 s after its own timeout, while B's request (sent when A's
    timed out) waits for B's reply, due 0.2 s after it: B reads good every poll.
    """
    points = [p for p in PROFILE if p.name in ("import_kwh", "power_kw")]
    slow, healthy = meter(OTHER, delay=0.4), meter(delay=0.2)
    async with bus(slow, healthy) as line:
        a_device = device(line.port, OTHER, points, timeout="300ms", name="A")
        b_device = device(line.port, points=points, timeout="300ms", name="B")
        async with driver(a_device) as a, driver(b_device) as b:
            polls = []
            for _ in range(3):
                polls.append(await asyncio.gather(a.read(), b.read()))
                await asyncio.sleep(0.25)  # the next poll, a little later
    for a_readings, b_readings in polls:
        assert {r.point: r.value for r in b_readings} == {"import_kwh": 12345.67, "power_kw": 36.0}
        assert [r.reason for r in a_readings] == [
            "A meter 000000000002 DI 00010000: no reply within 0.3s",
            "A meter 000000000002 DI 02030000: not asked (DI 00010000: no reply within 0.3s)",
        ]
    assert healthy.asked == ["00010000", "02030000"] * 3


def garbled(frame: Frame) -> bytes:
    wire = bytearray(frame.encode())
    wire[-2] = (wire[-2] + 1) & 0xFF
    return bytes(wire)


async def test_a_garbled_frame_ahead_of_the_reply_is_skipped() -> None:
    """A damaged frame heard first (a neighbour's, cut by noise) does not end the wait."""
    noise = garbled(Frame(OTHER, 0x91, di_to_wire("00010000") + bytes(4)))
    async with bus(meter(ahead=noise, delay=0.05)) as line, driver(device(line.port)) as d:
        readings = await d.read()
    assert expected() == {r.point: (r.value, r.unit) for r in readings}


async def test_a_false_start_in_noise_that_runs_into_the_reply_does_not_hide_it() -> None:
    """68, six bytes, 68 in noise, its length ending on the reply's 16: not a frame, skipped.

    The bad checksum of that false frame must not take the real reply with it.
    """
    points = [p for p in PROFILE if p.name == "import_kwh"]
    reply = PREAMBLE + Frame(ADDRESS, 0x91, bytes(8)).encode(preamble=False)  # its size
    false_start = bytes([0x68, 1, 2, 3, 4, 5, 6, 0x68, 0x11, len(reply) - 2])
    sim = meter(junk=false_start)
    async with bus(sim) as line, driver(device(line.port, points=points)) as d:
        readings = await d.read()
    assert [(r.point, r.value) for r in readings] == [("import_kwh", 12345.67)]


async def test_a_reply_for_another_di_is_skipped_and_the_right_one_taken() -> None:
    """The meter's late answer to an earlier DI, heard first, is not this DI's value."""
    stale = Frame(ADDRESS, 0x91, di_to_wire("00020000") + encode_bcd(999.99, "XXXXXX.XX"))
    points = [p for p in PROFILE if p.name in ("import_kwh", "power_kw")]
    sim = meter(ahead=stale.encode(), delay=0.05)
    async with bus(sim) as line, driver(device(line.port, points=points)) as d:
        readings = {r.point: r.value for r in await d.read()}
    assert readings == {"import_kwh": 12345.67, "power_kw": 36.0}


async def test_a_timeout_names_what_was_heard_instead() -> None:
    """No answer in time: the reason lists the frames skipped, the latest last."""
    sim = meter(ahead=garbled(Frame(OTHER, 0x91, bytes(8))), reply_as=OTHER, delay=0.05)
    async with bus(sim) as line, driver(device(line.port, timeout="200ms")) as d:
        readings = await d.read()
    assert re.fullmatch(
        r"workshop3 meter 000012345678 DI 00010000: no reply within 0\.2s; heard a garbled "
        r"frame: checksum [0-9A-F]{2}, the bytes add up to [0-9A-F]{2} \(68 02 00 [0-9A-F ]+\) "
        r"and a reply from meter 000000000002",
        readings[0].reason or "",
    )


async def test_values_split_over_follow_up_frames_are_joined() -> None:
    """A reply flagged B1 is completed with 0x12 requests and the pieces concatenated."""
    sim = meter(split=1)
    async with bus(sim) as line, driver(device(line.port)) as d:
        readings = await d.read()
    assert expected() == {r.point: (r.value, r.unit) for r in readings}
    assert sim.asked.count("00010000") == 4


async def test_identify_reads_the_address_of_the_one_meter() -> None:
    """identify() asks with the wildcard address and returns the meter's own, and the
    edition that answered."""
    async with bus(meter("123456789012")) as line, driver(device(line.port)) as d:
        assert await d.identify() == {"address": "123456789012", "edition": "2007"}


async def test_identify_on_a_dead_line_raises_a_located_timeout() -> None:
    """identify() is for probe: a silent line raises DeviceTimeout naming device and port."""
    async with bus(meter(silent=True)) as line, driver(device(line.port)) as d:
        with pytest.raises(DeviceTimeout, match=f"workshop3 on {line.port}: no reply within"):
            await d.identify()


async def test_identify_hearing_only_garbled_frames_asks_about_a_second_meter() -> None:
    """Several meters answering the wildcard at once garble each other: the timeout says so."""
    async with bus(meter(garbled=True)) as line, driver(device(line.port)) as d:
        with pytest.raises(DeviceTimeout, match=r"heard a garbled frame: .*; is more than one"):
            await d.identify()


async def test_identify_without_a_port_raises_disconnected() -> None:
    """A missing port is Disconnected, with its path."""
    async with driver(device("/dev/ttyDLT645-absent")) as d:
        with pytest.raises(Disconnected, match="cannot open /dev/ttyDLT645-absent"):
            await d.identify()


async def test_the_wildcard_address_reads_the_one_meter_on_a_link() -> None:
    """address AAAAAAAAAAAA takes the answer of whichever meter is on a point-to-point link."""
    async with (
        bus(meter("123456789012")) as line,
        driver(device(line.port, address="AAAAAAAAAAAA")) as d,
    ):
        readings = await d.read()
    assert all(r.good for r in readings)


async def test_describe_prints_the_plan() -> None:
    """describe() says how many DIs go to which port, at what speed, for which meter."""
    points = [*PROFILE, Dlt645Point(name="import_wh", di="00010000", scale=1000.0, unit="Wh")]
    async with driver(device("/dev/ttyUSB1", points=points)) as d:
        assert d.describe() == (
            "workshop3: 15 data identifiers (16 points) on /dev/ttyUSB1 @2400 8N1, "
            "meter 000012345678"
        )
        assert [str(r) for r in d.requests[:2]] == ["DI 00010000", "DI 00010100"]


async def test_the_registry_makes_a_dlt645_driver() -> None:
    """drivers.make_driver knows the dlt645 protocol."""
    made = make_driver(device("/dev/ttyUSB1"))
    try:
        assert isinstance(made, Dlt645Driver)
    finally:
        await made.close()


async def test_an_adapter_that_echoes_requests_is_understood() -> None:
    """A half-duplex adapter hears its own request first; the driver waits for the reply."""
    async with SimulatedBus([meter()], echo=True) as line, driver(device(line.port)) as d:
        readings = await d.read()
    assert all(r.good for r in readings)


async def test_noise_instead_of_a_reply_points_at_the_line_settings() -> None:
    """Bytes that never make a frame (a meter at another baud rate) say what was heard."""
    sim = meter(noise=bytes.fromhex("E0 1F 00 F8"))
    async with bus(sim) as line, driver(device(line.port, timeout="200ms")) as d:
        readings = await d.read()
    assert readings[0].reason == (
        "workshop3 meter 000012345678 DI 00010000: no complete reply within 0.2s, "
        "only 4 bytes (E0 1F 00 F8): check that the meter is set to 2400 8N1"
    )


WHY = [
    (OSError(errno.ENOENT, "x"), "no such device (is the USB-RS485 adapter plugged in?"),
    (OSError(errno.EACCES, "x"), "permission denied (the agent's user needs the dialout group)"),
    (OSError(errno.EBUSY, "x"), "in use by another program"),
    (termios.error(errno.EINVAL, "Invalid argument"), "the port refuses 2400 8E1"),
    (OSError(errno.EIO, "x"), "input/output error (adapter unplugged?)"),
]


@pytest.mark.parametrize(("error", "text"), WHY)
def test_port_errors_read_as_what_to_check(error: BaseException, text: str) -> None:
    """The OS errors of a serial port are told in a technician's words."""
    assert port_trouble(error, "2400 8E1").startswith(text)


async def test_a_second_device_at_another_speed_is_warned_the_first_wins(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The port runs at the settings of its first device; a disagreeing one is logged."""
    first = device("/dev/ttyUSB7")
    second = Dlt645Device(
        name="ws4", dlt645={"port": "/dev/ttyUSB7", "baudrate": 9600, "address": OTHER}
    )
    async with driver(first) as one, driver(second) as two:
        assert (one._link.settings, two._link.settings) == ("2400 8N1", "2400 8N1")
    assert "ws4: /dev/ttyUSB7 is already used at 2400 8N1; this device's 9600 8E1 is ignored" in (
        caplog.text
    )
