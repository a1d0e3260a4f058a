"""Pipeline.latest's compact store answers exactly as a dict of each point's last reading."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.latest import Latest, Layouts, remember
from domain.reading import Quality, Reading

POINTS = ["import_kwh", "power_kw", "voltage", "pf"]
UNITS = {"import_kwh": "kWh", "power_kw": "kW", "voltage": "V", "pf": ""}


def reading(point: str, ts: float, value: float | int | None, **kw: object) -> Reading:
    unit = str(kw.pop("unit", UNITS.get(point, "")))
    return Reading(str(kw.pop("device", "m1")), point, ts, value, unit, **kw)  # type: ignore[arg-type]


readings = st.builds(
    reading,
    point=st.sampled_from([*POINTS, "extra"]),
    ts=st.floats(min_value=1.7e9, max_value=1.8e9),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-5, 5),
        st.none(),
    ),
    quality=st.sampled_from(list(Quality)),
    reason=st.one_of(st.none(), st.just("m1: no reply within 1s")),
    unit=st.sampled_from(["kWh", "kW", "V", "", "Wh"]),
    device=st.sampled_from(["m1", "m1", "m1", "m2"]),
)


@given(st.lists(st.lists(readings, max_size=8), max_size=6))
def test_the_store_is_a_dict_of_last_readings(polls: list[list[Reading]]) -> None:
    """Any sequence of polls, good, bad, odd units, ints, NaN, unknown points: the same
    answers as `dict.update` gave, point by point, Reading for Reading."""
    first = [reading(p, 1.7e9, 1.0) for p in POINTS]
    latest: dict[str, Latest] = {}
    remember(latest, Layouts(), "m1", first)
    expected = {r.point: r for r in first}
    for poll in polls:
        remember(latest, Layouts(), "m1", poll)
        expected.update((r.point, r) for r in poll)
        entry = latest["m1"]
        assert set(entry) == set(expected)
        assert len(entry) == len(expected)
        for point, want in expected.items():
            got = entry[point]
            assert got == want or (got[:3] == want[:3] and want.value != want.value)  # NaN
            assert type(got.value) is type(want.value)
            assert got.quality is want.quality
        assert entry.get("never") is None


def test_a_point_never_read_is_missing_and_a_device_never_polled_has_no_entry() -> None:
    latest: dict[str, Latest] = {}
    layouts = Layouts()
    remember(latest, layouts, "m1", [])
    assert latest == {}
    remember(latest, layouts, "m1", [reading("power_kw", 1.7e9, 2.5)])
    assert latest["m1"].get("import_kwh") is None
    assert "power_kw" in latest["m1"] and "import_kwh" not in latest["m1"]
    assert dict(latest["m1"]) == {"power_kw": reading("power_kw", 1.7e9, 2.5)}


def test_meters_of_one_model_share_one_layout() -> None:
    """What makes it small: 1,000 meters of one model hold one names-to-slots table."""
    latest: dict[str, Latest] = {}
    layouts = Layouts()
    for n in range(3):
        poll = [Reading(f"m{n}", p, 1.7e9, float(n), UNITS[p]) for p in POINTS]
        remember(latest, layouts, f"m{n}", poll)
    assert latest["m0"].layout is latest["m2"].layout
    assert latest["m2"]["pf"] == Reading("m2", "pf", 1.7e9, 2.0, "")


def test_a_bad_reading_shows_until_a_good_one_replaces_it() -> None:
    latest: dict[str, Latest] = {}
    layouts = Layouts()
    remember(latest, layouts, "m1", [reading("power_kw", 1.7e9, 2.5)])
    bad = reading("power_kw", 1.7e9 + 1, None, quality=Quality.BAD, reason="m1: timeout")
    remember(latest, layouts, "m1", [bad])
    assert latest["m1"]["power_kw"] == bad and not latest["m1"]["power_kw"].good
    remember(latest, layouts, "m1", [reading("power_kw", 1.7e9 + 2, 3.0)])
    assert latest["m1"]["power_kw"] == reading("power_kw", 1.7e9 + 2, 3.0)
    assert list(latest["m1"]) == ["power_kw"]
