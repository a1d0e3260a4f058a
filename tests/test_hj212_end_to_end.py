"""The HJ 212 destination in the real daemon: `edge-agent run` as a process polls the demo
meters and delivers to the reference receiver (`sync:`) and to the test platform
(tests/fixtures/hj212.py, an independent reading of HJ 212-2017) at once. What arrives is
set against the agent's buffer and the receiver's database: every interval, each MN's in
order, the same energy at both ends; one destination down never holds up the other; a
platform down through a kill -9, or one that loses frames, loses nothing.

A process cannot be time-travelled: these run in real time on 1-2 s intervals (sent as
the platform's minute data, CN 2051) and are marked slow.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from agent.demo import RESOLUTION_KWH
from tests.fixtures.daemon import free_port
from tests.fixtures.hj212 import FLAG_A, Platform
from tests.fixtures.hj212_plant import (
    CO2,
    ENERGY_DECIMALS,
    MN,
    MN_A,
    MN_B,
    NAME,
    Arrival,
    Hj212Plant,
    arrivals,
    both_have,
    computed,
    data_time,
    figures,
    first_arrivals,
    hj212_plant,
    missing,
    partial,
    pending,
    receiver_rows,
    receiver_twice,
    start_of,
)
from tests.fixtures.plant import wait_for_async

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
TOKEN = "hj212-e2e-token"
INTERVAL = 2.0  # s: the shortest interval, sent as minute data
# s from an interval's end to its arrival: it closes at a poll after its end (250 ms, the
# compressor's 500 ms), its energy one poll later, and goes with the next run (every 500 ms
# to the receiver, 200 ms to the platform; there up to half an interval, 1 s, after its end
# if its MN's other meter is late). A destination held up by the other would wait out at
# least an OverTime (5 s) or a connection's back-off.
ON_TIME = 3.0


def check_platform(plant: Hj212Plant, length: float) -> dict[str, list[Arrival]]:
    """What holds of the platform's side in every test: frames valid by its own reading;
    every interval the agent computed is there at least once, or still owed in the buffer;
    each MN's first arrivals in time order; a message sent again is the same as the first
    time; the last message of each MN and time holds all of its devices. Its arrivals, by
    device."""
    platform = plant.platform
    assert platform.errors == []
    owed = {(d, s) for d, s, n in pending(plant.buffer, NAME) if n == length}
    wanted = computed(plant.buffer, length)
    assert missing(platform, wanted) <= owed, plant.tail()
    assert partial(platform, wanted - owed) == []
    for mn in (MN_A, MN_B):
        seen = first_arrivals(platform, mn)
        assert seen == sorted(seen), mn
    found = arrivals(platform)
    for device, those in found.items():
        first: dict[str, dict[str, str]] = {}
        for arrival in those:
            assert first.setdefault(arrival.data_time, arrival.fields) == arrival.fields, device
    return found


def check_receiver(plant: Hj212Plant, found: dict[str, list[Arrival]], length: float) -> None:
    """The receiver holds every interval the agent computed exactly once, and the platform
    the same energy (and CO2) for each, to the code's decimals, flagged N only when the
    receiver's record is good and whole."""
    rows = [r for r in receiver_rows(plant.central) if r.end - r.start == length]
    assert receiver_twice(plant.central) == 0  # none sent twice
    assert {(r.device, r.start) for r in rows} == computed(plant.buffer, length)
    first = {(a.device, a.data_time): a.fields for those in found.values() for a in reversed(those)}
    for row in rows:
        fields = first.get((row.device, data_time(row.start)))
        if fields is None:  # still owed to the platform (check_platform allowed it)
            continue
        assert fields["Cou"] == f"{row.quantity:.{ENERGY_DECIMALS}f}", row
        if row.device in CO2:
            assert row.co2_kg is not None and fields["co2"] == f"{row.co2_kg:.3f}", row
        whole = row.quality == "good" and row.coverage >= 0.999
        assert fields["Flag"] == ("N" if whole else "B"), row


async def test_both_destinations_get_every_interval_with_the_same_energy(
    tmp_path: Path,
) -> None:
    """The receiver and the platform side by side: after a clean stop every 2 s interval of
    every device is at the platform (first arrivals in order per MN, every frame valid),
    with the energy and CO2 the receiver stored for it and its power statistics in range;
    history asked for meanwhile comes from the buffer with the same figures."""
    async with hj212_plant(tmp_path, TOKEN, Platform(), interval=INTERVAL) as plant:
        await plant.spawn()
        await wait_for_async(both_have(plant, INTERVAL, per_device=4), 40)
        sent = sorted({a.data_time for a in arrivals(plant.platform)["compressor"]})
        span = f"BeginTime={sent[0]};EndTime={sent[-1]}"
        replies = await plant.platform.request("2051", span, mn=MN_B)  # history, on the way
        assert await plant.stop() == 0, plant.tail()
    assert pending(plant.buffer, NAME) == pending(plant.buffer, "sync") == set()
    found = check_platform(plant, INTERVAL)
    check_receiver(plant, found, INTERVAL)
    # the history asked for: ready, the buffer's data (no answer wanted), done; the same
    # figures as the uploads, for every interval of the span
    assert (replies[0].cn, replies[0].values) == ("9011", {"QnRtn": "1"})
    assert (replies[-1].cn, replies[-1].values) == ("9012", {"ExeRtn": "1"})
    history = figures(r for r in replies if r.cn == "2051" and not r.flag & FLAG_A)
    firsts = {(a.device, a.data_time): a.fields for those in found.values() for a in those[::-1]}
    asked = {
        (device, data_time(start))
        for device, start in computed(plant.buffer, INTERVAL)
        if MN[device] == MN_B and sent[0] <= data_time(start) <= sent[-1]
    }
    assert {(a.device, a.data_time) for those in history.values() for a in those} == asked
    for those in history.values():
        for arrival in those:
            assert arrival.fields == firsts[arrival.device, arrival.data_time], arrival
    for device, those in found.items():
        curve = plant.meters[device].curve
        low, high = curve.base_kw - curve.swing_kw, curve.base_kw + curve.swing_kw
        assert len(those) >= 4, device
        for arrival in those:
            avg, least, most = (float(arrival.fields[k]) for k in ("Avg", "Min", "Max"))
            assert low - 0.01 <= least <= avg <= most <= high + 0.01, arrival
            if arrival.fields["Flag"] == "N":  # a whole interval: its mean power is its energy
                energy = avg * INTERVAL / 3600  # (to the coarsest counter's step, 0.01 kWh)
                cou = float(arrival.fields["Cou"])
                assert energy == pytest.approx(cou, rel=0.05, abs=RESOLUTION_KWH), arrival


async def test_a_silent_then_absent_platform_never_delays_the_receiver(tmp_path: Path) -> None:
    """The platform listening but answering nothing (each frame waits out a 5 s OverTime),
    then not listening: every interval reaches the receiver on time all along; the platform
    back, it gets every interval, in order."""
    platform = Platform(answering=False)
    async with hj212_plant(
        tmp_path, TOKEN, platform, interval=INTERVAL, overtime="5s", recount=1
    ) as plant:
        await plant.spawn()
        await platform.wait_for(lambda: platform.received, 30)  # sent, and not answered
        began = time.time()
        await asyncio.sleep(INTERVAL)
        await platform.stop()
        await asyncio.sleep(2 * INTERVAL)
        back = time.time()
        platform.answering = True
        await platform.start()
        await wait_for_async(both_have(plant, INTERVAL, since=back), 40)
        assert await plant.stop() == 0, plant.tail()
    assert pending(plant.buffer, NAME) == set()
    found = check_platform(plant, INTERVAL)
    check_receiver(plant, found, INTERVAL)
    meanwhile = [r for r in receiver_rows(plant.central) if began <= r.end <= back]
    assert len(meanwhile) >= 3 * 2
    assert max(r.received - r.end for r in meanwhile) <= ON_TIME, meanwhile


async def test_a_receiver_down_never_delays_the_platform(tmp_path: Path) -> None:
    """The receiver stopped for three intervals: the platform gets each of them on time;
    the receiver back, it gets each interval once."""
    async with hj212_plant(tmp_path, TOKEN, Platform(), interval=INTERVAL) as plant:
        await plant.spawn()
        await wait_for_async(both_have(plant, INTERVAL), 30)
        plant.receiver.stop()
        down = time.time()
        await asyncio.sleep(3 * INTERVAL)
        back = time.time()
        plant.receiver.start()
        await wait_for_async(both_have(plant, INTERVAL, since=back), 40)
        assert await plant.stop() == 0, plant.tail()
    assert pending(plant.buffer, NAME) == pending(plant.buffer, "sync") == set()
    found = check_platform(plant, INTERVAL)
    check_receiver(plant, found, INTERVAL)
    meanwhile = {}
    for those in found.values():
        for arrival in those:  # the first arrival of each
            meanwhile.setdefault((arrival.device, arrival.data_time), arrival)
    late = [
        (a, a.at - end)
        for a in meanwhile.values()
        if down <= (end := start_of(a.data_time) + INTERVAL) <= back
    ]
    assert len(late) >= 3 * 2
    assert max(lag for _, lag in late) <= ON_TIME, late


async def test_a_meter_offline_holds_up_its_neighbour_little_and_arrives_whole_later(
    tmp_path: Path,
) -> None:
    """The compressor offline for three intervals: the press line, under the same MN, still
    reaches the platform on time (its message waits half an interval for its neighbour,
    then goes without it); the compressor back, its intervals of the outage arrive, each
    in a message holding the whole MN again."""
    async with hj212_plant(tmp_path, TOKEN, Platform(), interval=INTERVAL) as plant:
        await plant.spawn()
        await wait_for_async(both_have(plant, INTERVAL, per_device=2), 30)
        plant.meters["compressor"].offline = True
        off = time.time()
        await asyncio.sleep(3 * INTERVAL)
        plant.meters["compressor"].offline = False
        back = time.time()
        await wait_for_async(both_have(plant, INTERVAL, since=back), 40)
        assert await plant.stop() == 0, plant.tail()
    assert pending(plant.buffer, NAME) == set()
    found = check_platform(plant, INTERVAL)
    check_receiver(plant, found, INTERVAL)
    press = {}
    for arrival in found["press_line_2"]:
        press.setdefault(arrival.data_time, arrival)  # the first arrival of each
    lags = [
        a.at - end
        for a in press.values()
        if off <= (end := start_of(a.data_time) + INTERVAL) <= back
    ]
    assert len(lags) >= 2 and max(lags) <= ON_TIME, lags
    outage = [a for a in found["compressor"] if off + INTERVAL <= start_of(a.data_time) < back]
    assert outage and {a.fields["Flag"] for a in outage} == {"B"}  # there, and not "normal"


async def test_a_long_outage_through_a_kill_9_loses_nothing(tmp_path: Path) -> None:
    """The platform down for ten 1 s intervals, the agent killed (kill -9) half-way and
    started again: the platform back, it gets every interval at least once, each MN's in
    order; the receiver, up all along, gets each exactly once."""
    length = 1.0
    platform = Platform(free_port())
    async with hj212_plant(tmp_path, TOKEN, platform, interval=length) as plant:
        await plant.spawn()
        await wait_for_async(both_have(plant, length, per_device=2), 30)
        await platform.stop()
        await asyncio.sleep(5 * length)
        await plant.kill()
        await plant.spawn()
        await asyncio.sleep(5 * length)
        assert len(pending(plant.buffer, NAME)) >= 3 * 8  # it piled up
        back = time.time()
        await platform.start()
        await wait_for_async(both_have(plant, length, since=back, per_device=2), 40)
        assert await plant.stop() == 0, plant.tail()
    assert pending(plant.buffer, NAME) == pending(plant.buffer, "sync") == set()
    found = check_platform(plant, length)
    check_receiver(plant, found, length)
    for device in MN:  # no hole: the intervals the kill spanned are there (estimated)
        starts = sorted(s for d, s in computed(plant.buffer, length) if d == device)
        assert starts == [starts[0] + length * k for k in range(len(starts))], device


async def test_a_lossy_platform_loses_nothing(tmp_path: Path) -> None:
    """The platform silent on 30 % of frames and hanging up after 10 %: every interval
    reaches it (or is still owed in the buffer at the stop), each MN's in order, frames
    were sent again and connections made again."""
    platform = Platform(silent=0.3, hang_up=0.1, seed=212)
    async with hj212_plant(
        tmp_path, TOKEN, platform, interval=INTERVAL, overtime="300ms", recount=2
    ) as plant:
        await plant.spawn()
        await asyncio.sleep(3 * INTERVAL)
        await wait_for_async(both_have(plant, INTERVAL, since=time.time()), 40)
        assert await plant.stop() == 0, plant.tail()
    found = check_platform(plant, INTERVAL)
    check_receiver(plant, found, INTERVAL)
    assert all(len(those) >= 3 for those in found.values())
    qns = Counter(frame.qn for frame in platform.received)
    assert max(qns.values()) > 1  # a frame unanswered was sent again under its QN
    assert platform.accepted > 1  # hung up on, it connected again
