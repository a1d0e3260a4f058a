"""Overshoot rules: the state machine, the figures they watch, their persistence."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.demand import Tally
from agent.pipeline import Pipeline
from agent.rules import FIGURES, SITE, Limit, RuleState, figure, judge
from config.models import Rule
from config.quantities import RULE_QUANTITIES
from domain.reading import Quality, Reading
from tests.fixtures.pipeline import HEAD, built

T0 = 1_789_999_200.0  # 2026-09-21 22:00 +08:00, a whole hour


def limit(**fields: object) -> Limit:
    return Limit.of(Rule.model_validate({"name": "r", "quantity": "x", **fields}))


def run(lim: Limit, samples: list[tuple[float, float]], cut: int | None = None) -> list:
    """Transitions as (index, kind); at `cut` the state goes through JSON (a restart)."""
    state, out = RuleState(), []
    for i, (ts, value) in enumerate(samples):
        if i == cut:
            state = RuleState.from_json(json.loads(json.dumps(state.to_json())))
        kind, _ = judge(lim, state, ts, value)
        if kind:
            out.append((i, kind))
    return out


values = st.floats(min_value=-50, max_value=150, allow_nan=False)
steps = st.floats(min_value=0.5, max_value=120, allow_nan=False)


@given(
    st.lists(st.tuples(steps, values), max_size=60),
    st.floats(min_value=0, max_value=300),
    st.floats(min_value=0, max_value=40),
    st.booleans(),
    st.data(),
)
def test_a_rule_raises_and_clears_once_per_excursion(
    series: list, hold: float, band: float, above: bool, data: st.DataObject
) -> None:
    """For any values: raises and clears alternate; a raise comes exactly when the value
    has been past the limit for `for` on end, a clear at the first value past the clear
    level; a restart at any point (state through JSON) changes nothing."""
    level = 50.0
    if above:
        lim = limit(above=level, clear_below=level - band, **{"for": f"{hold:.0f}s"})
    else:
        lim = limit(below=level, clear_above=level + band, **{"for": f"{hold:.0f}s"})
    hold = lim.hold
    ts, samples = T0, []
    for dt, v in series:
        ts += dt
        samples.append((ts, v))
    got = run(lim, samples)
    assert [k for _, k in got] == ["raised", "cleared"] * (len(got) // 2) + (
        ["raised"] if len(got) % 2 else []
    )
    # an independent account of when each transition must happen
    expected, raised, since = [], False, None
    for i, (t, v) in enumerate(samples):
        past = v > level if above else v < level
        back = v < lim.clear if above else v > lim.clear
        if raised:
            if back:
                expected.append((i, "cleared"))
                raised = False
            continue
        since = (since if since is not None else t) if past else None
        if since is not None and t - since >= hold:
            expected.append((i, "raised"))
            raised, since = True, None
    assert got == expected
    cut = data.draw(st.integers(min_value=0, max_value=len(samples)))
    assert run(lim, samples, cut) == got


def test_hysteresis_keeps_a_value_hovering_at_the_limit_raised() -> None:
    """Above 800, clear below 760: 805, 790, 770, 801 raise once; 759 clears."""
    lim = limit(above=800, clear_below=760)
    samples = [(T0 + 5 * i, v) for i, v in enumerate([805, 790, 770, 801, 759, 790])]
    assert run(lim, samples) == [(0, "raised"), (4, "cleared")]


def test_without_clear_level_a_rule_clears_two_percent_inside_its_limit() -> None:
    """above: 100 and no clear_below: clears under 98 (below: 100 clears over 102)."""
    assert (limit(above=100).clear, limit(below=100).clear) == (98.0, 102.0)


def test_for_needs_the_value_past_the_limit_all_along() -> None:
    """for: 2m: a dip back under the limit restarts the wait."""
    lim = limit(above=10, **{"for": "2m"})
    samples = [(T0, 11), (T0 + 60, 12), (T0 + 90, 9), (T0 + 100, 11), (T0 + 219, 11)]
    assert run(lim, samples) == []
    assert run(lim, [*samples, (T0 + 220, 11)]) == [(5, "raised")]


# --- the figures --------------------------------------------------------------------

TZ = ZoneInfo("Asia/Shanghai")
# a device's tally at T0 + 100 s: the quarter hour before T0 was a complete block
TALLY = {
    "day": "2026-09-21",
    "month": "2026-09",
    "co2_day": 10.0,
    "tce_day": 4.0,
    "co2_month": 100.0,
    "tce_month": 40.0,
    "last_block": T0 - 900,
    "last_kw": 300.0,
    "max_day_kw": 350.0,
    "max_month_kw": 400.0,
    "quantity": 5.0,
    "co2_rate": 2.5,
}
# each quantity's value for device a, and for the site (a and b alike)
EXPECTED = {
    "power_kw": (100.0, 150.0),
    "demand_15m_kw": (300.0, 600.0),
    "demand_max_today_kw": (350.0, 700.0),  # the site's own largest block, not a sum
    "demand_max_month_kw": (400.0, 800.0),
    "energy_interval": (5.0, None),  # carriers do not add up
    "co2_kg_h": (2.5, 5.0),
    "co2_kg_today": (10.0, 20.0),
    "co2_kg_month": (100.0, 200.0),
    "tce_kg_today": (4.0, 8.0),
    "tce_kg_month": (40.0, 80.0),
}


def figures_of(quantity: str, device: str | None, tallies: dict | None = None) -> float | None:
    rule = Rule.model_validate({"name": "r", "device": device, "quantity": quantity, "above": 1})
    latest = {
        "a": {"power_kw": Reading("a", "power_kw", T0, 100.0, "kW")},
        "b": {
            "power_kw": Reading("b", "power_kw", T0, 50.0, "kW"),
            "temp_c": Reading("b", "temp_c", T0, 61.0, "°C"),
        },
    }
    if tallies is None:
        site = Tally(max_day_kw=700.0, max_month_kw=800.0, day="2026-09-21", month="2026-09")
        tallies = {"a": Tally(**TALLY), "b": Tally(**TALLY), SITE: site}
    return figure(rule, T0 + 100, latest, tallies, TZ)


def test_every_quantity_of_the_config_has_its_figure() -> None:
    """The evaluation and config/quantities.py have the same names: a quantity the config
    accepts is always computed, and nothing is computed that the config does not name."""
    assert set(FIGURES) == set(RULE_QUANTITIES) == set(EXPECTED)


@pytest.mark.parametrize("quantity", list(EXPECTED))
def test_each_figure_of_a_device_and_of_the_site(quantity: str) -> None:
    mine, site = EXPECTED[quantity]
    assert figures_of(quantity, "a") == pytest.approx(mine)
    assert figures_of(quantity, None) == (site if site is None else pytest.approx(site))


def test_any_other_name_is_a_point_of_the_device_and_never_a_site_sum() -> None:
    """A device's own point is read as it is; a site rule with a name the table lacks
    (refused by check) is never known, never a sum of CO2 or coal."""
    assert figures_of("temp_c", "b") == 61.0
    assert figures_of("temp_c", "a") is None
    assert figures_of("co2_kg_tday", None) is None
    assert figures_of("co2_kg_yesterday", None) is None


def test_a_device_without_a_tally_yet_has_no_largest_block() -> None:
    """Before the device's first interval its largest block is not known: it is not the
    site's."""
    site = Tally(max_day_kw=700.0, max_month_kw=800.0, day="2026-09-21", month="2026-09")
    assert figures_of("demand_max_today_kw", "a", {SITE: site}) is None
    assert figures_of("demand_max_today_kw", None, {SITE: site}) == 700.0


# --- in the pipeline ----------------------------------------------------------------

CONFIG = (
    HEAD
    + """\
devices:
  - name: m1
    modbus_tcp: {host: 127.0.0.1}
    poll: 30s
    points:
      - {name: e, address: 0, type: uint32, unit: kWh, kind: counter}
      - {name: power_kw, address: 2, type: float32, unit: kW}
    energy: {carrier: electricity, counter: e}
  - name: m2
    modbus_tcp: {host: 127.0.0.2}
    poll: 30s
    points:
      - {name: e, address: 0, type: uint32, unit: kWh, kind: counter}
      - {name: power_kw, address: 2, type: float32, unit: kW}
    energy: {carrier: electricity, counter: e}
rules:
  - {name: power-high, device: m1, quantity: power_kw, above: 100, clear_below: 90, for: 1m,
     severity: critical,
     action: {modbus_write: {device: m2, coil: 5, value: true}}}
  - {name: site-demand, quantity: demand_15m_kw, above: 500, clear_below: 400}
  - {name: site-co2, quantity: co2_kg_today, above: 100}
"""
)


def make(tmp_path: Path, states: dict | None = None) -> Pipeline:
    return built(tmp_path, CONFIG % {"dir": tmp_path}, states)


def poll(device: str, t: float, kwh: float, kw: float | None) -> list[Reading]:
    power = Reading(device, "power_kw", t, kw, "kW")
    if kw is None:
        power = Reading(device, "power_kw", t, None, "kW", Quality.BAD, "timeout")
    return [Reading(device, "e", t, kwh, "kWh"), power]


def test_a_power_rule_raises_once_after_for_and_asks_for_its_action(tmp_path: Path) -> None:
    """power_kw of m1 over 100 for 1m: one critical event, one coil write; then a clear."""
    p = make(tmp_path)
    kinds = []
    for i, kw in enumerate([120, 130, 125, 140, None, 95, 85, 80]):
        work = p.ingest("m1", poll("m1", T0 + 30 * i, 1000 + i, kw))
        kinds += [(i, e.kind, e.severity) for e in work.events]
    assert kinds == [(2, "alarm_raised", "critical"), (6, "alarm_cleared", "info")]
    actions = p.take_actions()
    assert [(a.device, a.write.coil, a.value) for a in actions] == [
        ("m2", 5, True),
        ("m2", 5, False),
    ]
    assert p.take_actions() == []


def test_rule_state_is_committed_with_its_event_and_a_restart_does_not_raise_again(
    tmp_path: Path,
) -> None:
    """The raise and the state saying so are in one commit; restored, the rule stays raised
    (no second event) and its output is written again."""
    p = make(tmp_path)
    committed: dict = {}
    events = []
    for i in range(4):
        work = p.ingest("m1", poll("m1", T0 + 30 * i, 1000 + i, 150))
        committed |= work.counters
        events += work.events
    assert [e.kind for e in events] == ["alarm_raised"]
    assert committed["#rule/power-high"]["raised"] is True
    again = make(tmp_path, committed)
    # the output is asked for again, in case the stop came before the write
    assert [(a.rule, a.value) for a in again.take_actions()] == [("power-high", True)]
    later = [again.ingest("m1", poll("m1", T0 + 200 + 30 * i, 1010 + i, 150)) for i in range(4)]
    assert [e for w in later for e in w.events] == []


def test_site_demand_and_co2_today_add_up_the_devices(tmp_path: Path) -> None:
    """Two meters at 300 kW each: 600 kW site demand raises the site rule; a 15-minute
    record carries its block demand; the day's CO2 (Sichuan 0.1404) passes 100 kg."""
    p = make(tmp_path)
    events, records, counters = [], [], {}
    for i in range(2 * 30 + 2):  # 31 min of 30 s polls: 300 kW = 2.5 kWh per poll
        t = T0 + 30 * i
        for device in ("m1", "m2"):
            work = p.ingest(device, poll(device, t, 10_000 + 2.5 * i, 50))
            events += [e.message for e in work.events]
            records += [r.body for r in work.intervals if r.length == 900]
            counters |= work.counters
    demand_events = [m for m in events if "site-demand" in m]
    assert len(demand_events) == 1 and "demand_15m_kw of the site" in demand_events[0]
    first = next(r for r in records if r["device"] == "m1")
    assert first["quantity"] == pytest.approx(75.0)  # 300 kW x 0.25 h
    assert first["demand_kw"] == pytest.approx(300.0)
    assert first["demand_max_day_kw"] == pytest.approx(300.0)
    assert counters["#tally/#site"]["max_day_kw"] == pytest.approx(600.0)
    # 2 x 300 kW x 0.5 h = 300 kWh x 0.1404 = 42.12 kg so far: under the quota
    assert not [m for m in events if "site-co2" in m]
    assert counters["#tally/m1"]["co2_day"] == pytest.approx(150 * 0.1404, rel=1e-3)


def test_day_totals_restart_at_local_midnight(tmp_path: Path) -> None:
    """co2 of the day belongs to the local day (Asia/Shanghai) the interval starts in."""
    p = make(tmp_path)
    midnight = 1_790_006_400.0  # 2026-09-22 00:00 +08:00
    tally_days = []
    for i in range(8):
        t = midnight - 120 + 30 * i
        work = p.ingest("m1", poll("m1", t, 100 + i, 10))
        if "#tally/m1" in work.counters:
            tally_days.append(work.counters["#tally/m1"]["day"])
    assert tally_days[0] == "2026-09-21" and tally_days[-1] == "2026-09-22"
    assert p.tallies["m1"].total("co2", "day", "2026-09-22") < p.tallies["m1"].co2_month
