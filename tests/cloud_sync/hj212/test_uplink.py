"""The HJ 212 destination against the test platform (an independent reading of the
standard, tests/fixtures/hj212.py): what arrives, in which order, through a lossy or absent
platform, and how the platform's requests are answered."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.hj212.cp import stamp
from domain.reading import Quality, Reading
from tests.fixtures.hj212 import Platform, frame, segment
from tests.fixtures.hj212_uplink import MN_A, MN_B, TZ, commit, record, uplink_on

T0 = 1_780_000_020.0 - 1_780_000_020.0 % 3600  # a whole hour (local and UTC alike: +08:00)


def minutes(device: str, n: int, base_kwh: float = 1.0) -> list:
    return [record(device, T0 + 60 * i, 60, base_kwh + i / 100) for i in range(n)]


def values(platform: Platform, mn: str, cn: str = "2051") -> dict[str, dict[str, str]]:
    """DataTime -> the values of the last upload of that time."""
    return {f.values["DataTime"]: f.values for f in platform.data(cn, mn)}


async def drain(uplink, rounds: int = 50) -> None:
    """Delivery runs until nothing is pending (as the agent's job would run them)."""
    for _ in range(rounds):
        await uplink.deliver(deadline=time.monotonic() + 5)
        if (await uplink.outbox.backlog())["intervals"] == 0:
            return
    raise AssertionError(f"still pending after {rounds} runs: {uplink.status}")


async def test_every_interval_arrives_under_its_mn_with_its_figures(
    hj212_platform: Platform, tmp_path: Path
) -> None:
    async with uplink_on(tmp_path / "b.db", hj212_platform.port) as (uplink, store):
        rows = minutes("incomer", 3) + minutes("fan", 3, 2.0) + minutes("pump", 3, 3.0)
        rows.append(record("incomer", T0, 3600, 80.0))
        rows.append(record("fan", T0 + 60 * 3, 60, 2.5, quality="partial"))
        await commit(store, rows)
        assert await uplink.deliver(deadline=time.monotonic() + 10) == len(rows)
    assert hj212_platform.errors == []
    a = values(hj212_platform, MN_A)
    first = stamp(T0, TZ)
    assert list(a) == [stamp(T0 + 60 * i, TZ) for i in range(3)]
    assert a[first] == {
        "DataTime": first,
        "e10101-Cou": "1.00",
        "e10201-Min": "50.00",
        "e10201-Avg": "60.00",
        "e10201-Max": "70.00",
        "a05001-Cou": "0.537",
        **{f"{code}-Flag": "N" for code in ("e10101", "e10201", "a05001")},
    }
    b = values(hj212_platform, MN_B)
    # both devices of MN_B side by side in one message, each under its own codes
    assert b[first]["e10101-Cou"] == "2.00" and b[first]["e10102-Cou"] == "3.00"
    assert b[first]["e10202-Avg"] == "180.00" and "e10202-Max" not in b[first]
    gap = b[stamp(T0 + 180, TZ)]
    assert gap["e10101-Cou"] == "2.50" and gap["e10101-Flag"] == "B"  # a gap is not N
    assert values(hj212_platform, MN_A, "2061")[first]["e10101-Cou"] == "80.00"


async def test_a_lossy_platform_loses_nothing_and_keeps_each_mn_in_order(
    tmp_path: Path,
) -> None:
    """Silent on 30 % of frames, hanging up after 10 %: every minute arrives, the first
    arrival of each in time order per MN, and the buffer is drained."""
    async with Platform(silent=0.3, hang_up=0.1, seed=7) as platform:
        async with uplink_on(tmp_path / "b.db", platform.port, overtime="100ms") as (uplink, store):
            await commit(store, minutes("incomer", 40) + minutes("fan", 40))
            await drain(uplink)
            assert uplink.status.resends > 0
        assert platform.errors == []
        for mn in (MN_A, MN_B):
            arrived = [f.values["DataTime"] for f in platform.data("2051", mn)]
            first_seen = list(dict.fromkeys(arrived))
            assert first_seen == sorted(first_seen)
            assert first_seen == [stamp(T0 + 60 * i, TZ) for i in range(40)]


async def test_a_platform_down_holds_the_data_until_it_is_back(tmp_path: Path) -> None:
    # a port bound but not listening refuses connections, and no other test's server can
    # take it meanwhile (a port merely freed was, once, by a server started beside)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    async with uplink_on(tmp_path / "b.db", port) as (uplink, store):
        await commit(store, minutes("incomer", 5))
        assert await uplink.deliver(deadline=time.monotonic() + 1) == 0
        assert uplink.status.connected is False
        assert "cannot connect" in uplink.status.last_result
        assert (await uplink.outbox.backlog())["intervals"] == 5
        holder.close()
        async with Platform(port) as back:
            await drain(uplink)
            assert uplink.status.connected is True
            assert len(back.data("2051", MN_A)) == 5 and back.errors == []


async def test_history_is_answered_from_the_buffer(
    hj212_platform: Platform, tmp_path: Path
) -> None:
    async with uplink_on(tmp_path / "b.db", hj212_platform.port) as (uplink, store):
        await commit(store, minutes("incomer", 10) + minutes("fan", 10))
        await drain(uplink)
        asked = f"BeginTime={stamp(T0 + 120, TZ)};EndTime={stamp(T0 + 240, TZ)}"
        replies = await hj212_platform.request("2051", asked, mn=MN_A)
        assert [r.cn for r in replies] == ["9011", "2051", "2051", "2051", "9012"]
        assert replies[0].values == {"QnRtn": "1"} and replies[-1].values == {"ExeRtn": "1"}
        assert [r.values["DataTime"] for r in replies[1:-1]] == [
            stamp(T0 + 60 * i, TZ) for i in (2, 3, 4)
        ]
        assert all(r.values["e10101-Flag"] == "N" for r in replies[1:-1])
        never = f"BeginTime={stamp(T0 - 7200, TZ)};EndTime={stamp(T0 - 3600, TZ)}"
        empty = await hj212_platform.request("2051", never, mn=MN_A)
        assert [(r.cn, r.values) for r in empty] == [
            ("9011", {"QnRtn": "1"}), ("9012", {"ExeRtn": "100"}),
        ]  # fmt: skip
    assert hj212_platform.errors == []


async def test_time_and_real_time_interval_requests(
    hj212_platform: Platform, tmp_path: Path
) -> None:
    async with uplink_on(tmp_path / "b.db", hj212_platform.port) as (uplink, store):
        changed: list[float | None] = []
        uplink.on_live_every(lambda: changed.append(uplink.live_every))
        await commit(store, minutes("incomer", 1))
        await drain(uplink)
        got = await hj212_platform.request("1011", mn=MN_A)
        assert [r.cn for r in got] == ["9011", "1011", "9012"]
        assert got[1].values["SystemTime"] >= stamp(time.time() - 5, TZ)
        refused = await hj212_platform.request("1012", "SystemTime=20200101000000", mn=MN_A)
        assert [(r.cn, r.values) for r in refused] == [("9011", {"QnRtn": "2"})]
        assert (await hj212_platform.request("1061", mn=MN_A))[1].values == {"RtdInterval": "30"}
        done = await hj212_platform.request("1062", "RtdInterval=120", mn=MN_A)
        assert [r.cn for r in done] == ["9011", "9012"] and done[1].values["ExeRtn"] == "1"
        bad = await hj212_platform.request("1062", "RtdInterval=5", mn=MN_A)
        assert bad[-1].values["ExeRtn"] == "3"
        assert changed == [120.0] and uplink.live_every == 120.0
        unknown = await hj212_platform.request("3020", mn=MN_A)
        assert [(r.cn, r.values) for r in unknown] == [("9011", {"QnRtn": "2"})]
        assert uplink.status.refused == 3  # 1012, the bad interval, 3020
    # kept across a restart: a new destination on the same buffer reads it
    async with uplink_on(tmp_path / "b.db", hj212_platform.port) as (again, _):
        await again.deliver(deadline=time.monotonic() + 1)
        assert again.live_every == 120.0
    assert hj212_platform.errors == []


async def test_garbage_and_strangers_are_refused_and_the_link_goes_on(
    hj212_platform: Platform, tmp_path: Path
) -> None:
    async with uplink_on(tmp_path / "b.db", hj212_platform.port) as (uplink, store):
        await commit(store, minutes("incomer", 2))
        await drain(uplink)
        await hj212_platform.send_raw(b"##0010garbage\r\n\x00\xff##9999", mn=MN_A)
        stranger = segment("1011", "", qn="20260101000000001", st="32", pw="654321", mn=MN_A)
        await hj212_platform.send_raw(frame(stranger), mn=MN_A)  # another password
        await hj212_platform.wait_for(lambda: uplink.status.refused == 1)
        answer = [f for f in hj212_platform.received if f.qn == "20260101000000001"]
        assert [(f.cn, f.values) for f in answer] == [("9011", {"QnRtn": "3"})]
        await commit(store, minutes("fan", 2))
        await drain(uplink)
        assert len(hj212_platform.data("2051", MN_B)) == 2
        assert uplink.link.malformed >= 1 and uplink.status.refused == 1


async def test_a_long_message_is_split_into_packets(
    hj212_platform: Platform, tmp_path: Path
) -> None:
    """Three devices under one MN with long codes: over 950 characters of CP, so packets
    (PNUM/PNO), each with the DataTime, which the platform puts together again."""
    devices = ["incomer", "fan", "pump"]
    figures = ["energy_kwh", "energy", "kwh", "co2_kg", "tce_kg"]
    codes = {
        f"{d}.{f}": {"code": f"{d}{f}".replace("_", "")[:16], "as": "Cou", "decimals": 6}
        for d in devices
        for f in figures
    }
    codes |= {
        f"{d}.power_kw": {"code": f"{d}power", "as": ["Avg", "Min", "Max"], "decimals": 6}
        for d in devices
    }
    points = [{"mn": MN_A, "devices": devices}]
    async with uplink_on(
        tmp_path / "b.db", hj212_platform.port, codes=codes, monitoring_points=points
    ) as (uplink, store):
        await commit(store, [record(d, T0, 60, 1.0) for d in devices])
        await drain(uplink)
    assert hj212_platform.errors == []
    packets = [f for f in hj212_platform.received if f.cn == "2051"]
    assert len(packets) > 1 and all(f.flag == 7 for f in packets)  # 2017, split, answer
    (message,) = hj212_platform.data("2051", MN_A)
    assert message.values["pumpenergykwh-Cou"] == "1.000000"
    assert message.values["incomerpower-Max"] == "70.000000"
    assert len([k for k in message.values if k.endswith("-Flag")]) == 18


_CNS = st.sampled_from(["1011", "1012", "1061", "1062", "2011", "2012", "2051", "2061",
                        "2031", "9014", "9013", "3020", "0000", "9999"])  # fmt: skip
_CP = st.one_of(
    st.text(alphabet="=;,&BeginTimEndRtdIvalPolI0123456789-x ", max_size=80),
    st.builds(
        "BeginTime={};EndTime={}".format,
        st.from_regex(r"\A[0-9]{14}\Z"),
        st.from_regex(r"\A[0-9]{14}\Z"),
    ),
    st.builds("RtdInterval={}".format, st.integers(-10, 10_000)),
)
_SENT = st.lists(
    st.one_of(
        st.builds(lambda cn, cp: frame(segment(cn, cp, mn=MN_A)), _CNS, _CP),
        st.binary(max_size=60),
        st.builds(lambda cn, cp: frame(segment(cn, cp, mn=MN_A))[:-5] + b"0000\r\n", _CNS, _CP),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=25)
@given(sent=_SENT)
def test_nothing_a_platform_sends_crashes_the_uplink_or_touches_the_buffer(
    sent: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Requests of any CN with any CP, broken frames and plain garbage: the uplink answers
    or refuses, keeps its connection, still delivers; the buffer's records are as they
    were, and only a valid 1062 changes the one state the platform may set."""

    async def run() -> None:
        path = tmp_path_factory.mktemp("fuzz") / "b.db"
        async with Platform() as platform, uplink_on(path, platform.port) as (uplink, store):
            await commit(store, minutes("incomer", 2))
            await drain(uplink)
            stored = await store.intervals_between(["incomer"], 60, T0, T0 + 600, 100)
            for data in sent:
                await platform.send_raw(data, mn=MN_A)
            await commit(store, [record("incomer", T0 + 120, 60, 9.0)])
            await drain(uplink)  # reconnects if the garbage made the platform hang up
            assert values(platform, MN_A)[stamp(T0 + 120, TZ)]["e10101-Cou"] == "9.00"
            now = await store.intervals_between(["incomer"], 60, T0, T0 + 600, 100)
            assert now[:-1] == stored and len(now) == 3
            saved = await store.counter("#hj212/epb")
            assert saved is None or 30 <= saved["realtime"] <= 3600

    asyncio.run(run())


async def test_real_time_data_are_the_latest_readings(
    hj212_platform: Platform, tmp_path: Path
) -> None:
    """2011 carries each sent point's latest reading as Rtd; one older than two intervals
    (the meter stopped answering) or a bad one is flagged B; record figures have no Rtd."""
    now = time.time()
    latest = {
        "incomer": {"power_kw": Reading("incomer", "power_kw", now - 1, 42.5, "kW")},
        "fan": {"power_kw": Reading("fan", "power_kw", now - 3600, 7.0, "kW")},
        "pump": {
            "power_kw": Reading("pump", "power_kw", now, None, "kW", Quality.BAD),
            "energy_kwh": Reading("pump", "energy_kwh", now, 123.0, "kWh"),
        },
    }
    async with uplink_on(tmp_path / "b.db", hj212_platform.port, realtime="60s") as (uplink, _):
        assert uplink.live_every == 60.0
        await uplink.send_live(latest)  # not connected yet: nothing, no error
        await uplink.deliver(deadline=time.monotonic() + 2)
        await uplink.send_live(latest)
        await hj212_platform.wait_for(lambda: len(hj212_platform.data("2011")) == 2)
    a, b = (values(hj212_platform, mn, "2011") for mn in (MN_A, MN_B))
    (sent_a,) = a.values()
    assert sent_a["e10201-Rtd"] == "42.50" and sent_a["e10201-Flag"] == "N"
    assert set(sent_a) == {"DataTime", "e10201-Rtd", "e10201-Flag"}
    (sent_b,) = b.values()
    assert sent_b["e10201-Rtd"] == "7.00" and sent_b["e10201-Flag"] == "B"  # stale
    assert "e10202-Rtd" not in sent_b  # no value: the bad reading is not sent
    assert hj212_platform.errors == []


async def test_a_message_carries_every_device_of_its_mn(
    hj212_platform: Platform, tmp_path: Path
) -> None:
    """fan and pump share MN_B. A fresh interval of fan alone waits for pump's (it closes
    a poll later) and goes as one message; an old one goes without the missing device and
    again, whole, once its record is in, so the platform's last upload of each time has
    both."""
    async with uplink_on(tmp_path / "b.db", hj212_platform.port) as (uplink, store):
        now = time.time()
        fresh = float(int(now) - 60)  # an interval that ended just now
        await commit(store, [record("fan", fresh, 60, 2.0)])
        await uplink.deliver(deadline=time.monotonic() + 2)
        assert hj212_platform.data("2051", MN_B) == []  # waiting for pump
        await commit(store, [record("pump", fresh, 60, 3.0)])
        await drain(uplink)
        (both,) = hj212_platform.data("2051", MN_B)
        assert both.values["e10101-Cou"] == "2.00" and both.values["e10102-Cou"] == "3.00"

        await commit(store, [record("fan", T0, 60, 4.0)])  # long past: no waiting
        await drain(uplink)
        assert "e10102-Cou" not in values(hj212_platform, MN_B)[stamp(T0, TZ)]
        await commit(store, [record("pump", T0, 60, 5.0)])
        await drain(uplink)
        last = values(hj212_platform, MN_B)[stamp(T0, TZ)]
        assert (last["e10101-Cou"], last["e10102-Cou"]) == ("4.00", "5.00")
    assert hj212_platform.errors == []


async def test_a_platform_that_stops_reading_is_dropped_and_close_is_prompt(
    tmp_path: Path,
) -> None:
    """A platform that accepts and never reads: a run ends near its deadline (the write
    gives up after `overtime`, the connection is dropped), and close() returns at once
    even with the platform's requests queued."""
    held: list[asyncio.StreamWriter] = []

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # never reads: the socket buffers fill

    server = await asyncio.start_server(deaf, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with uplink_on(tmp_path / "b.db", port, overtime="300ms", codes=_LONG) as (
            uplink,
            store,
        ):
            await commit(store, [record("incomer", T0 + 60 * i, 60, 1.0) for i in range(3000)])
            loop = asyncio.get_running_loop()
            started = loop.time()
            await uplink.deliver(deadline=time.monotonic() + 1)
            assert loop.time() - started < 5
            assert uplink.status.connected is False
            started = loop.time()
        assert loop.time() - started < 2  # the close at the end of `async with`
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


_LONG = {  # a long item per record, so the frames fill the socket buffers quickly
    "energy_kwh": {"code": "e10101", "as": "Cou", "decimals": 6},
    "power_kw": {"code": "e10201", "as": ["Avg", "Min", "Max"], "decimals": 6},
}


async def test_the_successor_of_a_reload_keeps_the_status_true(
    hj212_platform: Platform, tmp_path: Path
) -> None:
    """A reload makes the destination afresh and hands it the old status; closing the old
    one must not mark the new connection down."""
    port = hj212_platform.port
    async with (
        uplink_on(tmp_path / "a.db", port) as (old, _),
        uplink_on(tmp_path / "b.db", port) as (new, _),
    ):
        new.status = old.status
        await old.deliver(deadline=time.monotonic() + 1)
        await new.deliver(deadline=time.monotonic() + 1)
        await old.close()
        assert new.status.connected is True and new.link.up


async def test_2012_stops_real_time_data_and_2011_starts_it(
    hj212_platform: Platform, tmp_path: Path
) -> None:
    async with uplink_on(tmp_path / "b.db", hj212_platform.port, realtime="60s") as (uplink, _):
        changed: list[float | None] = []
        uplink.on_live_every(lambda: changed.append(uplink.live_every))
        await uplink.deliver(deadline=time.monotonic() + 1)
        stop = await hj212_platform.request("2012", mn=MN_A)
        assert [r.cn for r in stop] == ["9013"] and uplink.live_every is None
        start = await hj212_platform.request("2011", mn=MN_A, timeout=1)
        assert start[0].cn == "9011" and start[0].values == {"QnRtn": "1"}
        assert uplink.live_every == 60.0 and changed == [None, 60.0]
