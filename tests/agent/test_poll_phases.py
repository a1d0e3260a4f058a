"""A period's polls in slices spread over the period (agent/phases.py, issue 16).

The slicing itself is arithmetic (hypothesis); the agent test runs under time travel
(tests/fixtures/clock.py) against the demo's simulated meters, which note the instant
each request reaches them: each meter is read once a period, at its own offset.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import phases as phasing
from agent.daemon import Agent
from agent.demo import demo_config, demo_meters
from agent.phases import MIN_SLICE_GAP, SLICE, phases
from config.loader import load_config
from drivers.modbus.simulator import MeterServer
from tests.fixtures.clock import Clock, ManualScheduler

pytestmark = pytest.mark.timeout(90)
PERIOD = 0.25


@given(
    count=st.integers(min_value=1, max_value=6000),
    period=st.sampled_from([0.1, 0.25, 1.0, 5.0, 60.0]),
)
def test_every_device_is_in_one_slice_and_slices_are_spread_over_the_period(
    count: int, period: float
) -> None:
    names = [f"m{i}" for i in range(count)]
    sliced = phases(period, names)
    # each once, in name order: a slice's counter rows sit side by side in the buffer
    assert [name for _, chunk in sliced for name in chunk] == sorted(names)
    offsets = [offset for offset, _ in sliced]
    assert offsets[0] == 0.0
    assert all(0.0 <= offset < period for offset in offsets)
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert all(gap >= MIN_SLICE_GAP - 1e-6 for gap in gaps)  # at most 20 wake-ups a second
    assert all(gap == pytest.approx(period / len(sliced), abs=1e-6) for gap in gaps)
    sizes = [len(chunk) for _, chunk in sliced]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    if len(sliced) < int(period / MIN_SLICE_GAP):  # not at the limit: slices are small
        assert max(sizes) <= SLICE
    if count <= SLICE:  # a small plant polls as before: all at the period's start
        assert sliced == [(0.0, sorted(names))]


def _noting(served: list[float]) -> Callable[[], float]:
    """A simulated meter's clock that notes when it answered (the test's wall clock)."""

    def now() -> float:
        served.append(time.time())
        return served[-1]

    return now


async def test_each_device_is_polled_once_a_period_at_its_own_offset(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three meters, one a slice: read at 0, 1/3 and 2/3 of each 250 ms period in the order
    of their names, once a period, through the seconds where 2 s intervals close."""
    monkeypatch.setattr(phasing, "SLICE", 1)  # a slice a meter, up to 5 a period:
    monkeypatch.setattr(phasing, "MIN_SLICE_GAP", 0.05)
    meters = demo_meters()
    served: dict[str, list[float]] = {name: [] for name in meters}
    for name, meter in meters.items():
        meter.clock = _noting(served[name])
    server = MeterServer(list(meters.values()))
    await server.start()
    try:
        (tmp_path / "sync-token").write_text("t")
        config = tmp_path / "agent.yaml"
        config.write_text(
            demo_config(server.port, "http://127.0.0.1:9", tmp_path, interval=2, poll="250ms")
        )
        agent = Agent(load_config(config, require_env=True), scheduler=ManualScheduler())
        await agent.start()
        try:
            await clock.run(agent, 3.0)
        finally:
            await agent.stop()
    finally:
        await server.stop()
    names = sorted(device.name for device in agent.loaded.config.devices)
    polls = {name: sorted(set(served[name])) for name in names}  # a poll's requests: one instant
    for name in names:
        gaps = [b - a for a, b in itertools.pairwise(polls[name])]
        assert len(polls[name]) >= 11, name
        assert gaps == pytest.approx([PERIOD] * len(gaps), abs=1e-3), name  # once a period
    offsets = [round((polls[name][-1] - polls[names[0]][-1]) % PERIOD, 4) for name in names]
    assert offsets == pytest.approx([0.0, PERIOD / 3, 2 * PERIOD / 3], abs=1e-3)
    # the watchdog watches each slice's job (agent/lifecycle.py Progress)
    assert sorted(agent.progress.allowance) == sorted(
        ["poll every 0.25s", "poll every 0.25s at +0.083333s", "poll every 0.25s at +0.166667s"]
        + [job for job in agent.progress.allowance if not job.startswith("poll")]
    )
