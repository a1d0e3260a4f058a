"""Energy per interval from counter samples: conservation, splitting, gaps, bad values, resets."""

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
MAX32 = 2**32 * 0.01  # where a uint32 x 0.01 kWh register wraps


def feed(
    samples: list[Sample],
    state: CounterState | None = None,
    gap: float = 25.0,
    modulus: float | None = None,
    max_rate: float | None = None,
):
    state = state or CounterState()
    counter = Counter(LENGTHS, TZ, gap, modulus, max_rate)
    closed: dict[float, list] = {length: [] for length in LENGTHS}
    events = []
    for sample in samples:
        step = advance(state, sample, counter)
        for length in LENGTHS:
            closed[length].extend(step.closed[length])
        events.extend(f"{e.kind}: {e.detail}" for e in step.events)
    return state, closed, events


def run(values: list[float], step: float = 5.0, settle: bool = True, **kw):
    """Samples every `step` seconds; `settle` adds two more at the last value to judge it."""
    values = values + [values[-1]] * 2 if settle else values
    return feed([Sample(T0 + step * i, v) for i, v in enumerate(values)], **kw)


def total(state: CounterState, closed: dict, length: float = 60.0) -> float:
    """Energy in closed and open intervals, plus what is held back or not yet judged."""
    anchor = state.reset.low if state.reset else state.last
    waiting = state.pending.value - anchor.value if state.pending and anchor else 0.0
    held = state.reset.held if state.reset else 0.0
    return sum(c.quantity for c in closed[length]) + state.open[length].quantity + held + waiting


def placed(closed: dict, state: CounterState, length: float = 60.0) -> float:
    """Only what is already in intervals."""
    return sum(c.quantity for c in closed[length]) + state.open[length].quantity


steps = st.lists(st.tuples(st.floats(0.5, 4000.0), st.floats(0.0, 50.0)), min_size=1, max_size=120)


def series(start: float, increments: list) -> list[Sample]:
    t, v = T0, start
    samples = [Sample(t, v)]
    for dt, dv in increments:
        t, v = t + dt, v + dv
        samples.append(Sample(t, v))
    last = samples[-1]
    return [*samples, Sample(last.ts + 5, last.value), Sample(last.ts + 10, last.value)]


@given(st.floats(0, 1e6), steps)
def test_intervals_conserve_the_counter_advance(start: float, increments: list) -> None:
    """For any rising samples, interval energies sum to last minus first, at every length."""
    samples = series(start, increments)
    state, closed, events = feed(samples)
    assert events == []
    for length in LENGTHS:
        assert total(state, closed, length) == pytest.approx(
            samples[-1].value - start, rel=1e-9, abs=1e-6
        )
        for interval in closed[length]:
            assert interval.end - interval.start == length
            assert interval.quantity >= -1e-9
            assert 0.0 <= interval.coverage <= 1.0


@given(steps, st.integers(0, 130), st.data())
def test_a_restart_from_persisted_state_changes_nothing(
    increments: list, cut: int, data: st.DataObject
) -> None:
    """Stopping after any sample and resuming from the JSON state gives the same intervals,
    bad values and all."""
    clean = [s.value + 0.5 * i for i, s in enumerate(series(100.0, increments))]
    values = garbage_runs(clean, data, ["zero", "max32"])
    samples = [Sample(T0 + 5 * i, v) for i, v in enumerate(values)]
    cut = min(cut, len(samples))
    _, whole, _ = feed(samples, modulus=MAX32)
    state, first, _ = feed(samples[:cut], modulus=MAX32)
    resumed = CounterState.from_json(state.to_json())
    state, second, _ = feed(samples[cut:], resumed, modulus=MAX32)
    for length in LENGTHS:
        assert first[length] + second[length] == whole[length]


def garbage_runs(values: list[float], data: st.DataObject, kinds: list[str]) -> list[float]:
    """`values` with runs of 1-3 bad readings, each after at least three good ones."""
    bad = list(values)
    i = 3
    while i < len(values) - 4:
        if data.draw(st.booleans()):
            length = min(data.draw(st.integers(1, 3)), len(values) - 4 - i)
            kind = data.draw(st.sampled_from(kinds))
            for j in range(i, i + length):
                bad[j] = {"zero": 0.0, "max32": 0xFFFFFFFF * 0.01, "spike": values[j] + 5e6}[kind]
            i += length + 3
        else:
            i += 1
    return bad


@given(steps, st.data())
def test_runs_of_zeros_and_register_maxima_add_and_lose_nothing(
    increments: list, data: st.DataObject
) -> None:
    """Runs of up to three 0s or 0xFFFFFFFF readings: the total is the true advance."""
    values = [s.value for s in series(1000.0, increments)] + [0.0] * 0
    values = [v + 0.5 * i for i, v in enumerate(values)]  # always counting
    values += [values[-1] + 0.5 * k for k in range(1, 5)]
    bad = garbage_runs(values, data, ["zero", "max32"])
    state, closed, _ = run(bad, modulus=MAX32)
    assert total(state, closed) == pytest.approx(values[-1] - 1000.0, abs=1e-6)


@given(steps, st.data())
def test_with_max_rate_no_short_garbage_run_adds_energy(
    increments: list, data: st.DataObject
) -> None:
    """With max_rate set, runs of up to three spikes, 0s or maxima on a float counter are caught."""
    values = [1000.0 + 0.5 * i for i in range(len(increments) + 8)]
    bad = garbage_runs(values, data, ["zero", "max32", "spike"])
    state, closed, _ = run(bad, max_rate=1000.0)  # 1000 kWh/h: 1.4 kWh per 5 s at most
    assert total(state, closed) == pytest.approx(values[-1] - 1000.0, abs=1e-6)


def test_energy_straddling_a_boundary_is_split_in_proportion_to_time() -> None:
    """A pair of samples 10 s apart across a minute boundary splits 4:6."""
    samples = [Sample(T0 + 46, 0.0), Sample(T0 + 56, 10.0), Sample(T0 + 66, 20.0)]
    state, closed, _ = feed([*samples, Sample(T0 + 71, 25.0)])
    assert [c.quantity for c in closed[60.0]] == pytest.approx([14.0])
    assert state.open[60.0].quantity == pytest.approx(6.0)


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
    samples += [Sample(T0 + 360, 72.0), Sample(T0 + 365, 73.0)]  # back after 5 minutes
    state, closed, _ = feed(samples)
    minutes = closed[60.0]
    assert [m.quality for m in minutes] == ["good"] + ["estimated"] * 5
    assert [round(m.quantity, 6) for m in minutes] == [12.0] * 6
    assert [m.coverage for m in minutes[1:]] == [0.0] * 5
    assert total(state, closed) == pytest.approx(73.0)


def test_a_single_dip_is_a_glitch_not_a_reset() -> None:
    """One sample of 0 between two normal ones adds nothing and loses nothing."""
    state, closed, events = run([100.0, 101.0, 102.0, 0.0, 103.0, 104.0])
    assert events == ["counter_glitch: 102 0 103: dip dropped"]
    assert total(state, closed) == pytest.approx(4.0)


def test_a_single_spike_is_a_glitch_and_adds_no_energy() -> None:
    """A garbage high value that falls back is dropped: no phantom energy."""
    state, closed, events = run([100.0, 101.0, 102.0, 9e6, 103.0, 104.0])
    assert events == ["counter_glitch: 102 9e+06 103: spike dropped"]
    assert total(state, closed) == pytest.approx(4.0)


@pytest.mark.parametrize(
    "values",
    [
        [100.0, 101.0, 102.0, 1e9, 0.0, 103.0, 104.0],  # a spike, then a dip
        [1e6, 1e6 + 1, 1e6 + 2, 0.0, 999_990.0, 1e6 + 3, 1e6 + 4],  # a 0, then a torn read
    ],
)
def test_two_different_bad_values_in_a_row_add_nothing(values: list[float]) -> None:
    """Mixed garbage (spike then dip, zero then torn read) never becomes energy."""
    state, closed, _ = run(values)
    assert total(state, closed) == pytest.approx(values[-1] - values[0])


@pytest.mark.parametrize("zeros", [2, 3, 6])
def test_a_run_of_zeros_is_bad_readings_when_the_counter_comes_back(zeros: int) -> None:
    """Meters that read 0 for a few polls after power-up: no phantom energy, none lost."""
    values = [123456.0, 123457.0, 123458.0] + [0.0] * zeros + [123460.0, 123461.0]
    state, closed, events = run(values)
    assert total(state, closed) == pytest.approx(123461.0 - 123456.0)
    assert events[0] == "counter_reset: 123458 -> 0"
    assert events[-1].startswith("counter_glitch: back at 123460")


def test_a_new_meter_counting_up_from_zero_is_a_real_reset() -> None:
    """A replaced meter: energy before and after is counted, the step between is not."""
    state, closed, events = run([5000.0, 5001.0, 5002.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert events == ["counter_reset: 5002 -> 0"]
    assert placed(closed, state) == pytest.approx(2.0 + 2.5)


def test_a_reset_in_doubt_holds_its_energy_until_proven() -> None:
    """Before three rises the new values' energy is held back, not yet in any interval."""
    state, closed, _ = run([5000.0, 5001.0, 5002.0, 0.0, 0.5, 1.0], settle=False)
    assert state.reset is not None
    assert placed(closed, state) == pytest.approx(2.0)


def test_an_unproven_reset_is_taken_as_real_after_ten_minutes() -> None:
    """A meter that reads 0 for good: after ten minutes of doubt the reset stands."""
    values = [5000.0, 5001.0, 5002.0] + [0.0] * 130  # 130 x 5 s: over ten minutes
    state, _, events = run(values)
    assert events == ["counter_reset: 5002 -> 0"]
    assert state.reset is None and state.last is not None and state.last.value == 0.0


def test_a_uint32_counter_that_wraps_keeps_its_energy() -> None:
    """From near 2**32 x 0.01 kWh to near 0: a rollover, energy continuous."""
    values = [MAX32 - 0.3, MAX32 - 0.2, MAX32 - 0.1, 0.0, 0.1, 0.2]
    state, closed, events = run(values, modulus=MAX32)
    assert events == [f"counter_rollover: {MAX32 - 0.1:g} -> 0 past {MAX32:g}"]
    assert total(state, closed) == pytest.approx(0.5)


def test_a_drop_in_the_middle_of_the_range_is_not_a_rollover() -> None:
    """A uint16 at 40001 falling to 0 is a reset in doubt, never 25535 of rollover energy."""
    values = [40000.0, 40001.0, 40002.0, 0.0, 0.0, 40003.0, 40004.0]
    state, closed, events = run(values, modulus=65536.0)
    assert not any(e.startswith("counter_rollover") for e in events)
    assert total(state, closed) == pytest.approx(4.0)


def test_a_value_past_the_modulus_never_wraps_into_negative_energy() -> None:
    """A meter read in a smaller unit than it counts in (MWh into kWh) can pass the
    register's modulus; its drop to near 0 is a reset in doubt, never -999,930 kWh."""
    values = [2_000_000.0, 2_000_010.0, 2_000_020.0, 50.0, 51.0, 52.0]
    state, closed, events = run(values, modulus=1e6)
    assert not any(e.startswith("counter_rollover") for e in events)
    assert placed(closed, state) >= 0.0


def test_a_long_outage_with_a_big_advance_is_counted_not_refused() -> None:
    """A day away on a uint16 counter that advanced more than half its range: still energy."""
    samples = [Sample(T0 + 5 * i, 1000.0 + i) for i in range(4)]
    samples += [Sample(T0 + 86400 + 5 * i, 40_000.0 + i) for i in range(4)]
    state, closed, events = feed(samples, modulus=65536.0)
    assert events == []
    assert total(state, closed) == pytest.approx(40_003.0 - 1000.0)


def test_two_garbage_maxima_in_a_row_add_nothing() -> None:
    """0xFFFFFFFF twice (a classic bad read) is an impossible jump, not energy."""
    values = [
        123456.0,
        123457.0,
        123458.0,
        0xFFFFFFFF * 0.01,
        0xFFFFFFFF * 0.01,
        123459.0,
        123460.0,
    ]
    state, closed, _ = run(values, modulus=MAX32)
    assert total(state, closed) == pytest.approx(4.0)


def test_a_jump_that_stays_becomes_the_new_baseline_without_energy() -> None:
    """A meter swapped for one reading far higher: three samples confirm, nothing counted."""
    values = [100.0, 101.0, 102.0, 9e6, 9e6 + 1, 9e6 + 2, 9e6 + 3, 9e6 + 4]
    state, closed, events = run(values, max_rate=1000.0)
    assert events[0] == "counter_jump: 102 -> 9e+06: too fast, not counted"
    assert "counter_reset: new level 9e+06 confirmed; counting from it" in events
    assert total(state, closed) < 10


def test_a_bad_first_value_never_becomes_the_baseline_with_max_rate() -> None:
    """A gateway's 0 before its first real read is not taken as the starting point."""
    state, closed, _ = run([0.0, 1e6, 1e6 + 1, 1e6 + 2], max_rate=1000.0)
    assert total(state, closed) == pytest.approx(2.0)


def test_rounding_below_the_last_value_is_neither_energy_nor_an_event() -> None:
    """A float32 counter reading a hair lower is noise: no reset, no glitch."""
    values = [1_000_000.0625, 1_000_000.0625, 1_000_000.0, 1_000_000.0625, 1_000_000.125]
    state, closed, events = run(values)
    assert events == []
    assert total(state, closed) == pytest.approx(0.0625)


def test_a_tenth_of_a_percent_drop_is_not_rounding() -> None:
    """Only float rounding is ignored: a 0.1 % drop that stays is a reset in doubt."""
    values = [1000.0, 1000.5, 1001.0, 1000.0, 1000.0, 1000.1]
    _, _, events = run(values)
    assert events == ["counter_reset: 1001 -> 1000"]


def test_one_sample_from_a_clock_ahead_is_dropped_and_counting_goes_on() -> None:
    """A reading stamped ten years ahead does not stop metering until 2036."""
    samples = [Sample(T0 + 5 * i, 10.0 + i) for i in range(4)]
    samples.append(Sample(T0 + 315_360_000, 14.0))
    samples += [Sample(T0 + 20 + 5 * i, 15.0 + i) for i in range(1, 8)]
    state, closed, events = feed(samples)
    assert events == ["clock_backwards: clock went back 315359975s; one sample dropped"]
    assert total(state, closed) == pytest.approx(22.0 - 10.0)


def test_a_clock_that_was_hours_ahead_waits_and_loses_nothing() -> None:
    """Eight hours ahead for a while, then corrected: one event, every kWh kept."""
    ahead = [Sample(T0 + 8 * 3600 + 5 * i, 10.0 + i) for i in range(6)]
    back = [Sample(T0 + 1800 + 5 * i, 20.0 + i) for i in range(10)]
    later = [Sample(T0 + 8 * 3600 + 60 + 5 * i, 40.0 + i) for i in range(4)]
    state, closed, events = feed(ahead + back + later)
    assert len(events) == 1 and events[0].startswith("clock_backwards: clock went back")
    assert total(state, closed) == pytest.approx(43.0 - 10.0)


def test_a_clock_days_ahead_restarts_counting_once() -> None:
    """Two days ahead, then corrected: one event, and counting restarts from the real time."""
    ahead = [Sample(T0 + 2 * 86400 + 5 * i, 10.0 + i) for i in range(5)]
    back = [Sample(T0 + 5 * i, 20.0 + i) for i in range(10)]
    state, _, events = feed(ahead + back)
    assert len(events) == 1 and events[0].startswith("clock_backwards: clock went back 48h")
    assert state.last is not None and state.last.ts < T0 + 3600


def test_a_silence_of_months_is_not_spread_over_a_hundred_thousand_intervals() -> None:
    """Three months without a sample: one event says how much, memory stays small."""
    samples = [Sample(T0 + 5 * i, float(i)) for i in range(4)]
    samples += [Sample(T0 + 90 * 86400 + 5 * i, 500.0 + i) for i in range(4)]
    _, closed, events = feed(samples)
    assert events == [
        "counter_gap: silent for 90 days: the counter advanced 497 in that time, "
        "not placed in intervals"
    ]
    assert len(closed[60.0]) < 5


def test_intervals_align_to_local_wall_clock() -> None:
    """Daily intervals start at local midnight, not at UTC midnight."""
    noon_utc = 1_790_000_000 - 1_790_000_000 % 86400 + 12 * 3600
    start = interval_start(noon_utc, 86400, TZ)
    assert start == noon_utc - 20 * 3600  # 20:00 in Shanghai, back to its midnight


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


def test_three_rises_prove_a_reset_and_place_what_was_held() -> None:
    """Two rises keep the doubt; the third places the held energy as estimated."""
    state, closed, _ = run([5000.0, 5001.0, 5002.0, 0.0, 0.5, 1.0, 1.5], settle=False)
    assert state.reset is not None  # two rises seen (0 -> 0.5 -> 1.0), 1.5 not yet judged
    state, closed, _ = run([5000.0, 5001.0, 5002.0, 0.0, 0.5, 1.0, 1.5, 2.0], settle=False)
    assert state.reset is None
    assert placed(closed, state) == pytest.approx(2.0 + 1.5)


def test_a_repeated_poll_is_ignored_and_a_real_step_back_is_said() -> None:
    """Within a second: the same poll again, silently; two seconds back: an event."""
    base = [Sample(T0 + 5 * i, 10.0 + i) for i in range(4)]
    _, _, quiet = feed([*base, Sample(T0 + 14.5, 13.0)])
    _, _, said = feed([*base, Sample(T0 + 13.0, 13.0)])
    assert quiet == []
    assert said == ["clock_backwards: clock went back 2s; one sample dropped"]
