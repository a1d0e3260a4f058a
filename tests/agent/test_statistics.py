"""Per-interval average, minimum and maximum of a point (agent/statistics.py): equal to the
figures worked out by hand from the readings, carried by the interval records, kept over a
restart."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from agent.statistics import Statistics
from domain.reading import Quality, Reading
from tests.fixtures.pipeline import HEAD, built

TZ = ZoneInfo("Asia/Shanghai")
T0 = 1_780_000_000.0 - 1_780_000_000.0 % 3600


def reading(ts: float, value: float, point: str = "power_kw", good: bool = True) -> Reading:
    quality = Quality.GOOD if good else Quality.BAD
    return Reading("m", point, ts, value if good else None, "kW", quality)


@given(
    st.lists(
        st.tuples(
            st.floats(0, 3 * 3600, allow_nan=False),
            st.floats(-1e6, 1e6, allow_nan=False),
            st.booleans(),
        ),
        min_size=1,
        max_size=200,
    )
)
def test_each_window_holds_the_figures_of_its_readings(
    raw: list[tuple[float, float, bool]],
) -> None:
    """Readings in time order (bad ones and other points among them): every closed
    window's average, minimum, maximum and count are those of its good readings."""
    stats = Statistics({"m": frozenset({"power_kw"})}, (60.0, 3600.0), TZ, {})
    if not any(good for _, _, good in raw):
        raw.append((0.0, 1.0, True))
    raw.sort()
    for offset, value, good in raw:
        stats.add("m", [reading(T0 + offset, value, good=good),
                        reading(T0 + offset, value + 1e7, point="other")])  # fmt: skip
    for length in (60.0, 3600.0):
        windows: dict[float, list[float]] = {}
        for offset, value, good in raw:
            ts = T0 + offset  # +08:00 is whole hours: local windows are aligned as UTC ones
            if good:
                windows.setdefault(ts - ts % length, []).append(value)
        # the newest window is still open, the four before it closed and kept (older ones
        # are let go: their records were made long ago)
        for start in sorted(windows)[-5:]:
            got = stats.take("m", length, start)
            values = windows[start]
            assert got is not None, (length, start)
            avg, low, high, n = got["power_kw"]
            assert (low, high, n) == (min(values), max(values), len(values))
            assert abs(avg - sum(values) / len(values)) <= 1e-6 * max(1.0, abs(avg))
            assert stats.take("m", length, start) is None  # taken once
        assert stats.take("m", length, T0 - length) is None


def test_records_carry_the_statistics_a_destination_sends(tmp_path: Path) -> None:
    """With an HJ 212 destination sending power as Avg/Min/Max, each closed interval
    record carries that minute's power figures; a device it does not send carries none;
    the figures of the minute in progress survive a clean restart."""
    text = (
        (HEAD % {"dir": tmp_path})
        + """\
devices:
  - name: m
    modbus_tcp: {host: 127.0.0.1}
    points:
      - {name: energy_kwh, address: 0, type: float32, unit: kWh, kind: counter}
      - {name: power_kw, address: 2, type: float32, unit: kW}
    energy: {carrier: electricity, counter: energy_kwh}
  - name: other
    modbus_tcp: {host: 127.0.0.1, unit: 2}
    points:
      - {name: energy_kwh, address: 0, type: float32, unit: kWh, kind: counter}
      - {name: power_kw, address: 2, type: float32, unit: kW}
    energy: {carrier: electricity, counter: energy_kwh}
destinations:
  - name: epb
    hj212:
      host: 127.0.0.1
      port: 9212
      pw: "123456"
      st: "32"
      data: [minute]
      monitoring_points: [{mn: "010000A8900016F000169DC0", devices: [m]}]
      codes:
        energy_kwh: {code: e1, as: Cou}
        power_kw: {code: e2, as: [Avg, Min, Max]}
"""
    )
    pipeline = built(tmp_path, text)
    records = []
    for second in range(0, 200, 10):
        ts = T0 + second
        for device in ("m", "other"):
            polled = [
                Reading(device, "energy_kwh", ts, 100 + second / 10, "kWh", Quality.GOOD),
                Reading(device, "power_kw", ts, 10.0 + second % 60, "kW", Quality.GOOD),
            ]
            records += [r.body for r in pipeline.ingest(device, polled).intervals]
    mine = [r for r in records if r["device"] == "m" and r["start"].endswith("01:00+08:00")]
    assert mine and mine[0]["stats"] == {"power_kw": [35.0, 10.0, 60.0, 6]}
    assert all("stats" not in r for r in records if r["device"] == "other")
    saved = pipeline.flush().counters
    again = built(tmp_path, text, saved)
    assert again.statistics.windows["m"].open == pipeline.statistics.windows["m"].open


def test_a_window_restored_after_a_crash_is_partial_and_says_so() -> None:
    """Saved at an interval's close and restored without a clean stop, the open window
    lacks its last readings: its figures carry the partial mark (a fifth figure, 0); a
    clean stop's window is whole."""
    watched = {"m": frozenset({"power_kw"})}
    stats = Statistics(watched, (60.0,), TZ, {})
    stats.add("m", [reading(T0 + 5, 10.0), reading(T0 + 65, 20.0)])  # 1st window closed
    at_close = stats.saved("m")
    stats.add("m", [reading(T0 + 70, 30.0)])  # then the crash
    crashed = Statistics(watched, (60.0,), TZ, at_close)
    assert crashed.take("m", 60.0, T0) == {"power_kw": [10.0, 10.0, 10.0, 1]}
    assert crashed.take("m", 60.0, T0 + 60) == {"power_kw": [20.0, 20.0, 20.0, 1, 0]}
    clean = Statistics(watched, (60.0,), TZ, stats.to_json())
    assert clean.take("m", 60.0, T0 + 60) == {"power_kw": [25.0, 20.0, 30.0, 2]}


def test_a_partial_window_stays_partial_through_later_saves_and_a_clean_stop() -> None:
    """Restored partial after a crash, the window keeps its mark when it is saved again:
    at the next interval's close (then a second crash), and at a clean stop."""
    watched = {"m": frozenset({"power_kw"})}
    stats = Statistics(watched, (60.0,), TZ, {})
    stats.add("m", [reading(T0 + 5, 10.0), reading(T0 + 65, 20.0)])
    crashed = Statistics(watched, (60.0,), TZ, stats.saved("m"))  # window T0 + 60: partial
    crashed.add("m", [reading(T0 + 70, 30.0)])
    stopped = Statistics(watched, (60.0,), TZ, crashed.to_json())  # a clean stop
    assert stopped.take("m", 60.0, T0 + 60) == {"power_kw": [25.0, 20.0, 30.0, 2, 0]}
    crashed.add("m", [reading(T0 + 125, 40.0)])  # T0 + 60 closes, waits for its record
    again = Statistics(watched, (60.0,), TZ, crashed.saved("m"))  # a second crash
    assert again.take("m", 60.0, T0 + 60) == {"power_kw": [25.0, 20.0, 30.0, 2, 0]}


def test_windows_saved_before_the_partial_mark_was_saved_are_read_whole() -> None:
    """Rows of three (an older release's save) restore as whole windows after a clean stop."""
    watched = {"m": frozenset({"power_kw"})}
    old = {"#stats/m": {"open": {"60.0": [T0, T0 + 60, {"power_kw": [30.0, 2, 10.0, 20.0]}]},
                        "closed": {}, "clean": True}}  # fmt: skip
    assert Statistics(watched, (60.0,), TZ, old).take("m", 60.0, T0) == {
        "power_kw": [15.0, 10.0, 20.0, 2]
    }
