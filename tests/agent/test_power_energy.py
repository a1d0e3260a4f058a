"""Energy from power alone (no counter): the trapezoid rule, with honest coverage."""

from __future__ import annotations

import itertools
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.energy import Counter, CounterState, Sample, integrate
from domain.reading import Reading
from tests.fixtures.pipeline import built

T0 = 1_789_999_200.0  # a whole hour
TZ = ZoneInfo("Asia/Shanghai")
SPEC = Counter((60.0, 900.0), TZ, gap_limit=25.0)


@given(
    st.lists(
        st.tuples(st.floats(min_value=0.5, max_value=20), st.floats(min_value=-5, max_value=2000)),
        min_size=2,
        max_size=80,
    )
)
def test_the_intervals_hold_exactly_the_trapezoids_between_samples(series: list) -> None:
    """For any samples closer than the gap limit, the 1-minute and the 15-minute intervals
    each add up to the trapezoid sum (negative power counted as 0): nothing lost or made."""
    state, t, samples, closed = CounterState(), T0, [], {60.0: [], 900.0: []}
    for dt, kw in series:
        t += dt
        samples.append((t, max(0.0, kw)))
        step = integrate(state, Sample(t, kw), SPEC)
        for length, intervals in step.closed.items():
            closed[length] += intervals
    expected = sum((a[1] + b[1]) / 2 * (b[0] - a[0]) / 3600 for a, b in itertools.pairwise(samples))
    for length in (60.0, 900.0):
        total = sum(i.quantity for i in closed[length]) + state.open[length].quantity
        assert total == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_a_gap_is_not_filled_and_shows_in_coverage() -> None:
    """60 kW sampled every 10 s, then 2.5 minutes of silence: the minute the gap cuts
    closes with the coverage it had, the minutes inside it are not reported at all."""
    state, closed = CounterState(), []
    times = [T0 + 10 * k for k in range(10)] + [T0 + 240 + 10 * k for k in range(14)]
    for t in times:
        closed += integrate(state, Sample(t, 60.0), SPEC).closed[60.0]
    got = [(i.start - T0, round(i.quantity, 6), round(i.coverage, 3)) for i in closed]
    # 60 kW = 1 kWh a minute: minute 0 whole; minute 1 measured 60..90 s, then the gap;
    # minutes 2 and 3 lie inside the gap; minutes 4 and 5 whole again (6 still open)
    assert got == [(0.0, 1.0, 1.0), (60.0, 0.5, 0.5), (240.0, 1.0, 1.0), (300.0, 1.0, 1.0)]


CONFIG = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
buffer: {path: %(dir)s/buffer.db}
sync: {url: "https://central.example/api/v1/batches"}
emissions: {factor_set: cn-mee-2022, intervals: [1m]}
devices:
  - name: fan
    modbus_tcp: {host: 127.0.0.1}
    poll: 5s
    points: [{name: power_w, address: 0, type: float32, unit: W}]
    energy: {carrier: electricity, power: power_w, max_rate: 100}
"""


def test_a_power_only_device_gives_kwh_coal_and_co2(tmp_path: Path) -> None:
    """A fan read in W at 30 000 W (30 kW) for a minute: 0.5 kWh, 0.06145 kgce, 0.0702 kg
    CO2 (Sichuan 2022); 300 kW, above max_rate 100 kW, is refused with an event."""
    p = built(tmp_path, CONFIG % {"dir": tmp_path})
    rows, events = [], []
    for k in range(14):
        watts = 300_000.0 if k == 5 else 30_000.0
        work = p.ingest("fan", [Reading("fan", "power_w", T0 + 5 * k, watts, "W")])
        rows += [r.body for r in work.intervals]
        events += [e.kind for e in work.events]
    assert events == ["rate_implausible"]
    (record,) = rows
    assert (record["quantity"], record["unit"], record["coverage"]) == (0.5, "kWh", 1.0)
    assert record["tce_kg"] == pytest.approx(0.5 * 0.1229)
    assert record["co2_kg"] == pytest.approx(0.5 * 0.1404)
