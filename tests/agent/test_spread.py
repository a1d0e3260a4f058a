"""`intervals.spread`: a span's energy lands in the intervals it covers, none lost.

The usual sample (a second inside the open interval) takes a short path that skips
`roll` (issue 16); these check it gives what the general path gives: the whole
delta and the whole span, in the right interval, nothing closed early.
"""

from __future__ import annotations

import math
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from agent.intervals import ClosedInterval, OpenInterval, roll, spread

TZ = ZoneInfo("Asia/Shanghai")
START = 1_767_225_600.0  # 2026-01-01 08:00 in Shanghai: a quarter-hour boundary

steps = st.lists(
    st.tuples(
        st.floats(0.001, 2000.0),  # seconds to the next sample
        st.one_of(st.none(), st.floats(0.0, 1e6)),  # its energy, or unknown (a reset)
        st.booleans(),  # interpolated
    ),
    min_size=1,
    max_size=60,
)


@given(steps)
def test_every_span_and_every_delta_is_placed_once(samples: list) -> None:
    opened: dict[float, OpenInterval] = {}
    closed: list[ClosedInterval] = []
    t = START + 1.0
    roll(opened, 900.0, t, TZ, closed)
    first = t
    known = 0.0
    for seconds, delta, gap in samples:
        spread(opened, 900.0, t, t + seconds, delta, gap, TZ, closed)
        t += seconds
        known += delta or 0.0
    current = opened[900.0]
    assert current.start <= t < current.end  # the open interval holds the last sample
    assert [c.end for c in closed] == [START + 900.0 * (i + 1) for i in range(len(closed))]
    total = sum(c.quantity for c in closed) + current.quantity
    assert math.isclose(total, known, rel_tol=1e-9, abs_tol=1e-6)
    assert current.measured + current.interpolated <= t - max(first, current.start) + 1e-6


def test_a_second_inside_the_open_interval_adds_to_it_and_closes_nothing() -> None:
    opened: dict[float, OpenInterval] = {}
    closed: list[ClosedInterval] = []
    roll(opened, 900.0, START + 10.0, TZ, closed)
    spread(opened, 900.0, START + 10.0, START + 11.0, 0.25, False, TZ, closed)
    spread(opened, 900.0, START + 11.0, START + 12.5, 0.5, True, TZ, closed)
    assert closed == []
    assert opened[900.0] == OpenInterval(START, START + 900.0, 0.75, 1.0, 1.5)


def test_a_span_ending_on_the_boundary_closes_the_interval() -> None:
    opened: dict[float, OpenInterval] = {}
    closed: list[ClosedInterval] = []
    roll(opened, 900.0, START + 899.0, TZ, closed)
    spread(opened, 900.0, START + 899.0, START + 900.0, 1.0, False, TZ, closed)
    assert [c.quantity for c in closed] == [1.0]
    assert opened[900.0].start == START + 900.0
