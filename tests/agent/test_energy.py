"""Energy per interval from counter samples: conservation, splitting, gaps, resets."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.energy import Counter, CounterState, Sample, advance
from agent.intervals import interval_start

TZ = ZoneInfo("Asia/Shanghai")
T0 = 1_789_999_200.0  # a whole hour, in UTC and in Shanghai
LENGTHS = (60.0, 900.0)


def feed(
    samples: list[Sample],
    state: CounterState | None = None,
    gap: float = 25.0,
    modulus: float | None = None,
):
    state = state or CounterState()
    counter = Counter(LENGTHS, TZ, gap, modulus)
    closed = {length: [] for length in LENGTHS}
    events = []
    for sample in samples:
        step = advance(state, sample, counter)
        for length in LENGTHS:
            closed[length].extend(step.closed[length])
        events.extend(f"{e.kind}: {e.detail}" for e in step.events)
    return state, closed, events


def total(state: CounterState, closed: dict, length: float) -> float:
    """Closed and open intervals, plus the newest sample still waiting for confirmation."""
    waiting = state.pending.value - state.last.value if state.pending and state.last else 0.0
    return sum(c.quantity for c in closed[length]) + state.open[length].quantity + waiting


steps = st.lists(st.tuples(st.floats(0.5, 4000.0), st.floats(0.0, 50.0)), min_size=1, max_size=120)


@given(st.floats(0, 1e6), steps)
def test_intervals_conserve_the_counter_advance(start: float, increments: list) -> None:
    """For any increasing samples, interval energies sum to last minus first, at every length."""
    t, v = T0, start
    samples = [Sample(t, v)]
    for dt, dv in increments:
        t, v = t + dt, v + dv
        samples.append(Sample(t, v))
    state, closed, _ = feed(samples)
    for length in LENGTHS:
        assert total(state, closed, length) == pytest.approx(v - start, rel=1e-9, abs=1e-6)
        for interval in closed[length]:
            assert interval.end - interval.start == length
            assert interval.quantity >= -1e-9
            assert 0.0 <= interval.coverage <= 1.0


@given(steps, st.integers(0, 119))
def test_a_restart_from_persisted_state_changes_nothing(increments: list, cut: int) -> None:
    """Stopping after any sample and resuming from the JSON state gives the same intervals."""
    t, v = T0, 100.0
    samples = [Sample(t, v)]
    for dt, dv in increments:
        t, v = t + dt, v + dv
        samples.append(Sample(t, v))
    cut = min(cut, len(samples))
    _, whole, _ = feed(samples)
    state, first, _ = feed(samples[:cut])
    resumed = CounterState.from_json(state.to_json())
    state, second, _ = feed(samples[cut:], resumed)
    for length in LENGTHS:
        assert first[length] + second[length] == whole[length]


def test_energy_straddling_a_boundary_is_split_in_proportion_to_time() -> None:
    """A pair of samples 10 s apart across a minute boundary splits 4:6."""
    state, closed, _ = feed([Sample(T0 + 56, 10.0), Sample(T0 + 66, 20.0), Sample(T0 + 71, 25.0)])
    assert [c.quantity for c in closed[60.0]] == pytest.approx([4.0])
    assert state.open[60.0].quantity == pytest.approx(6.0)


@given(steps, st.data())
def test_isolated_glitches_change_no_total(increments: list, data: st.DataObject) -> None:
    """Single bad values (0 or absurdly high) after the first are dropped: the total holds."""
    v = 1000.0
    values = [v]
    for _, dv in increments:
        v += dv
        values.append(v)
    values += [v, v]  # the last real values, to confirm what came before
    spots = data.draw(st.sets(st.integers(1, len(values) - 3)))
    spots = {i for i in spots if i - 1 not in spots}  # isolated: never two in a row
    garbage = [0.0 if i % 2 else values[i] + 1e9 for i in range(len(values))]
    samples = [
        Sample(T0 + 5 * i, garbage[i] if i in spots else value) for i, value in enumerate(values)
    ]
    state, closed, events = feed(samples)
    assert total(state, closed, 60.0) == pytest.approx(v - 1000.0, abs=1e-6)
    assert not any(e.startswith("counter_reset") for e in events)


def test_first_interval_is_partial_and_full_ones_are_good() -> None:
    """Metering that starts mid-interval is partial; a fully polled interval is good."""
    samples = [Sample(T0 + 30 + 5 * i, float(i)) for i in range(20)]
    _, closed, _ = feed(samples)
    first, second = closed[60.0]
    assert (first.quality, first.coverage) == ("partial", pytest.approx(0.5))
    assert (second.quality, second.coverage) == ("good", 1.0)


def test_a_gap_is_interpolated_once_and_flagged_estimated() -> None:
    """Across a 5-minute outage the energy lands once, spread over the gap, as estimated."""
    samples = [Sample(T0 + 5 * i, i * 1.0) for i in range(13)]  # T0 .. T0+60, 1 kWh per 5 s
    samples.append(Sample(T0 + 360, 72.0))  # back after 5 minutes, 60 kWh more
    samples.append(Sample(T0 + 365, 73.0))
    state, closed, _ = feed(samples)
    minutes = closed[60.0]
    assert [m.quality for m in minutes] == ["good"] + ["estimated"] * 5
    assert [round(m.quantity, 6) for m in minutes] == [12.0, 12.0, 12.0, 12.0, 12.0, 12.0]
    assert [m.coverage for m in minutes[1:]] == [0.0] * 5
    assert total(state, closed, 60.0) == pytest.approx(73.0)


def test_a_counter_that_drops_is_a_new_baseline_with_an_event() -> None:
    """A reset is never negative energy: the drop starts a new baseline and says so."""
    samples = [Sample(T0 + 5 * i, 500.0 + i) for i in range(6)]
    samples += [Sample(T0 + 30 + 5 * i, 0.5 + i) for i in range(8)]
    state, closed, events = feed(samples)
    assert events == ["counter_reset: 505 -> 0.5"]
    assert total(state, closed, 60.0) == pytest.approx(5.0 + 7.0)
    assert all(c.quantity >= 0 for c in closed[60.0])


def test_a_single_dip_is_a_glitch_not_a_reset() -> None:
    """One sample of 0 between two normal ones adds nothing and loses nothing."""
    values = [100.0, 101.0, 0.0, 103.0, 104.0, 105.0]
    state, closed, events = feed([Sample(T0 + 5 * i, v) for i, v in enumerate(values)])
    assert events == ["counter_glitch: 101 0 103: dip dropped"]
    assert total(state, closed, 60.0) == pytest.approx(5.0)


def test_a_single_spike_is_a_glitch_and_adds_no_energy() -> None:
    """A garbage high value that falls back is dropped: no phantom energy."""
    values = [100.0, 101.0, 9e6, 103.0, 104.0]
    state, closed, events = feed([Sample(T0 + 5 * i, v) for i, v in enumerate(values)])
    assert events == ["counter_glitch: 101 9e+06 103: spike dropped"]
    assert total(state, closed, 60.0) == pytest.approx(4.0)
    assert all(c.quantity < 10 for c in closed[60.0])


def test_a_bad_first_sample_never_becomes_the_baseline() -> None:
    """A spike as the very first value is not taken as the starting point."""
    values = [9e6, 100.0, 101.0, 102.0]
    state, closed, events = feed([Sample(T0 + 5 * i, v) for i, v in enumerate(values)])
    assert events == []  # not even a "reset" from 9e6 down to 100
    assert total(state, closed, 60.0) == pytest.approx(2.0)


def test_rounding_below_the_last_value_is_neither_energy_nor_an_event() -> None:
    """A float32 counter reading a hair lower is noise: no reset, no glitch."""
    values = [1_000_000.0625, 1_000_000.0, 1_000_000.0625, 1_000_000.125, 1_000_000.125]
    state, closed, events = feed([Sample(T0 + 5 * i, v) for i, v in enumerate(values)])
    assert events == []
    assert total(state, closed, 60.0) == pytest.approx(0.0625)


def test_intervals_align_to_local_wall_clock() -> None:
    """Daily intervals start at local midnight, not at UTC midnight."""
    noon_utc = 1_790_000_000 - 1_790_000_000 % 86400 + 12 * 3600
    start = interval_start(noon_utc, 86400, TZ)
    assert start == noon_utc - 20 * 3600  # 20:00 in Shanghai, back to its midnight


def run(values: list[float], step: float = 5.0, **kw) -> tuple[CounterState, dict, list[str]]:
    return feed([Sample(T0 + step * i, v) for i, v in enumerate(values)], **kw)


@pytest.mark.parametrize("zeros", [2, 3, 6])
def test_a_run_of_zeros_is_bad_readings_when_the_counter_comes_back(zeros: int) -> None:
    """Meters that read 0 for a few polls after power-up: no phantom energy, none lost."""
    values = [123456.0, 123457.0] + [0.0] * zeros + [123460.0, 123461.0, 123462.0]
    state, closed, events = run(values)
    assert total(state, closed, 60.0) == pytest.approx(6.0)
    assert events[0] == "counter_reset: 123457 -> 0"
    assert events[-1].startswith("counter_glitch: back at 123460")


def test_a_new_meter_counting_up_from_zero_is_a_real_reset() -> None:
    """A replaced meter: energy before and after is counted, the gap between is not."""
    values = [5000.0, 5001.0, 5002.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    state, closed, events = run(values)
    assert events == ["counter_reset: 5002 -> 0"]
    assert total(state, closed, 60.0) == pytest.approx(2.0 + 2.5)


def test_a_uint32_counter_that_wraps_keeps_its_energy() -> None:
    """At 2**32 x 0.01 kWh the register wraps to 0: a rollover, energy continuous."""
    modulus = 2**32 * 0.01
    values = [modulus - 0.2, modulus - 0.1, 0.0, 0.1, 0.2, 0.3]
    state, closed, events = run(values, modulus=modulus)
    assert events == [f"counter_rollover: {modulus - 0.1:g} -> 0 past {modulus:g}"]
    assert total(state, closed, 60.0) == pytest.approx(0.5)


def test_two_garbage_maxima_in_a_row_add_nothing() -> None:
    """0xFFFFFFFF twice (a classic bad read) is an impossible jump, not energy."""
    modulus = 2**32 * 0.01
    values = [123456.0, 123457.0, 0xFFFFFFFF * 0.01, 0xFFFFFFFF * 0.01, 123459.0, 123460.0]
    state, closed, _ = run(values, modulus=modulus)
    assert total(state, closed, 60.0) == pytest.approx(4.0)


def test_one_sample_from_a_clock_ahead_is_dropped_and_counting_goes_on() -> None:
    """A reading stamped ten years ahead does not stop metering until 2036."""
    samples = [Sample(T0 + 5 * i, 10.0 + i) for i in range(4)]
    samples.append(Sample(T0 + 315_360_000, 14.0))
    samples += [Sample(T0 + 20 + 5 * i, 15.0 + i) for i in range(1, 8)]
    state, closed, events = feed(samples)
    assert events == ["clock_backwards: clock went back 315359975s; one sample dropped"]
    assert total(state, closed, 60.0) == pytest.approx(22.0 - 10.0)
    assert state.last is not None and state.last.ts < T0 + 3600


def test_a_clock_that_was_ahead_for_a_while_restarts_counting_once() -> None:
    """After running a day ahead, the corrected clock gives one event, not one per poll."""
    ahead = [Sample(T0 + 86400 + 5 * i, 10.0 + i) for i in range(5)]
    back = [Sample(T0 + 5 * i, 20.0 + i) for i in range(10)]
    state, _, events = feed(ahead + back)
    assert len(events) == 1 and events[0].startswith("clock_backwards: clock went back 24.0h")
    assert state.last is not None and state.last.ts < T0 + 3600


def test_a_silence_of_months_is_not_spread_over_a_hundred_thousand_intervals() -> None:
    """Three months without a sample: one event says how much, memory stays small."""
    samples = [Sample(T0 + 5 * i, float(i)) for i in range(3)]
    samples += [Sample(T0 + 90 * 86400 + 5 * i, 500.0 + i) for i in range(3)]
    _, closed, events = feed(samples)
    assert events == [
        "counter_gap: silent for 90 days: the counter advanced 498 in that time, "
        "not placed in intervals"
    ]
    assert len(closed[60.0]) < 5


def test_daily_intervals_follow_local_midnight_across_daylight_saving() -> None:
    """In Berlin the spring day has 23 hours and the autumn day 25; 15 min stays 15 min."""
    berlin = ZoneInfo("Europe/Berlin")
    counter = Counter((900.0, 86400.0), berlin, 1000.0)
    for first_day, hours in (("2026-03-28", 23), ("2026-10-24", 25)):
        state = CounterState()
        start = datetime.fromisoformat(f"{first_day}T12:00:00+00:00").timestamp()
        days: list = []
        quarters: list = []
        for i in range(0, 3 * 86400 // 300):
            step = advance(state, Sample(start + 300 * i, float(i)), counter)
            days += step.closed[86400.0]
            quarters += step.closed[900.0]
        assert [round((d.end - d.start) / 3600) for d in days[1:2]] == [hours]
        local = datetime.fromtimestamp(days[1].start, berlin)
        assert (local.hour, local.minute) == (0, 0)
        assert {q.end - q.start for q in quarters} == {900.0}


@given(steps, st.data())
def test_runs_of_zeros_change_no_total(increments: list, data: st.DataObject) -> None:
    """Runs of 1 to 4 zero readings anywhere after the start add and lose nothing."""
    v = 1000.0
    values = [v, v + 0.5]
    for _, dv in increments:
        v = values[-1] + dv
        values.append(v)
    values += [values[-1] + 1, values[-1] + 2]
    where = data.draw(st.integers(2, len(values) - 3))
    length = data.draw(st.integers(1, 4))
    bad = [0.0 if where <= i < where + length else x for i, x in enumerate(values)]
    bad += [values[-1] + 3, values[-1] + 4]
    state, closed, _ = run(bad)
    assert total(state, closed, 60.0) == pytest.approx(values[-1] + 4 - 1000.0, abs=1e-6)
