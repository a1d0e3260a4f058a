"""Carbon intensity: the site's CO2 and tce per unit from a production counter."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.pipeline import Pipeline
from domain.batch import Interval
from domain.reading import Reading
from tests.fixtures.pipeline import HEAD, built

T0 = 1_789_999_200.0  # 2026-09-21 22:00 +08:00

CONFIG = (
    HEAD
    + """\
devices:
  - name: m1
    modbus_tcp: {host: 127.0.0.1}
    poll: 30s
    points: [{name: e, address: 0, type: uint32, unit: kWh, kind: counter}]
    energy: {carrier: electricity, counter: e}
  - name: line
    modbus_tcp: {host: 127.0.0.2}
    poll: 30s
    points: [{name: units, address: 100, type: uint32, unit: piece, kind: counter}]
    production: {counter: units}
"""
)


def make(tmp_path: Path, states: dict | None = None) -> Pipeline:
    return built(tmp_path, CONFIG % {"dir": tmp_path}, states)


def run(p: Pipeline, polls: range, committed: dict) -> dict[str, list[dict]]:
    """m1 at 120 kW (1 kWh per 30 s poll), the line making 10 units per poll; the line is
    polled first, so its intervals close before the meter's."""
    out: dict[str, list[dict]] = {"line": [], "m1": [], "production_in": []}
    for i in polls:
        t = T0 + 30 * i
        work = p.ingest("line", [Reading("line", "units", t, 5000.0 + 10 * i, "piece")])
        committed |= work.counters
        out["production_in"] += [r.device for r in work.intervals]
        work = p.ingest("m1", [Reading("m1", "e", t, 100.0 + i, "kWh")])
        committed |= work.counters
        for row in work.intervals:
            body = row.body | {"length": row.length}
            out["line" if body["carrier"] == "production" else "m1"].append(body)
    return out


def test_a_production_interval_carries_the_sites_co2_and_tce_per_unit(tmp_path: Path) -> None:
    """A full minute: 2 kWh x 0.1404 = 0.2808 kg CO2 and 2 kWh x 0.1229 = 0.2458 kgce
    for 20 units: 0.01404 kg CO2 and 0.01229 kgce per unit. The record waits for the
    meter to close the same minute, and adds nothing to the energy measures."""
    p = make(tmp_path)
    out = run(p, range(12), {})
    assert out["production_in"] == []  # released with the meter's work, never before it
    minute = next(r for r in out["line"] if r["length"] == 60 and r["quality"] == "good")
    assert (minute["quantity"], minute["unit"], minute["carrier"]) == (20.0, "piece", "production")
    assert (minute["kwh"], minute["tce_kg"], minute["co2_kg"]) == (None, None, None)
    assert minute["site_co2_kg"] == pytest.approx(0.2808)
    assert minute["co2_kg_per_unit"] == pytest.approx(0.01404)
    assert minute["tce_kg_per_unit"] == pytest.approx(0.01229)
    same = next(r for r in out["m1"] if r["start"] == minute["start"] and r["length"] == 60)
    assert minute["site_co2_kg"] == pytest.approx(same["co2_kg"])
    sent = {k: v for k, v in minute.items() if k != "length"}  # length: added by run()
    Interval.model_validate(sent)  # the batch schema takes it as it is


def test_the_day_intensity_is_the_days_co2_over_the_days_units(tmp_path: Path) -> None:
    """co2_kg_per_unit_day: the site's CO2 of the local day so far over its units so far;
    a 15-minute record sees the day up to its own end."""
    p = make(tmp_path)
    out = run(p, range(70), {})
    minutes = [r for r in out["line"] if r["length"] == 60]
    quarter = next(r for r in out["line"] if r["length"] == 900)
    upto = [r for r in minutes if r["end"] <= quarter["end"]]
    day_co2 = sum(r["site_co2_kg"] for r in upto)
    day_units = sum(r["quantity"] for r in upto)
    assert quarter["co2_kg_per_unit_day"] == pytest.approx(day_co2 / day_units)
    assert minutes[-1]["co2_kg_per_unit_day"] == pytest.approx(
        sum(r["site_co2_kg"] for r in minutes) / sum(r["quantity"] for r in minutes)
    )


def test_waiting_production_records_survive_a_restart(tmp_path: Path) -> None:
    """A record waiting for the meter is in the committed state: after a restart it is
    delivered once, with its intensity."""
    p = make(tmp_path)
    committed: dict = {}
    first = run(p, range(5), committed)
    t = T0 + 30 * 5  # the line closes a minute; the agent stops before the meter's poll
    work = p.ingest("line", [Reading("line", "units", t, 5050.0, "piece")])
    committed |= work.counters
    assert committed["#intensity"]["pending"]
    again = make(tmp_path, committed)
    later = run(again, range(6, 10), committed)
    starts = [r["start"] for r in first["line"] + later["line"] if r["length"] == 60]
    assert len(starts) == len(set(starts)) and len(starts) >= 3
    assert all(r["co2_kg_per_unit"] is not None for r in later["line"])
