"""The pipeline from readings to what is committed: energy, carbon, raw samples, state."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.pipeline import Pipeline
from config.loader import load_config
from domain.reading import Quality, Reading
from tests.fixtures.pipeline import built

T0 = 1_789_999_200.0  # a whole hour

CONFIG = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
buffer: {path: %(dir)s/buffer.db, raw_retention: %(raw)s}
sync: {url: "https://central.example/api/v1/batches"}
emissions: {factor_set: cn-mee-2022, intervals: [1m]}
devices:
  - name: m1
    modbus_tcp: {host: 127.0.0.1}
    poll: 5s
    points:
      - {name: e, address: 0, type: uint32, unit: Wh, kind: counter}
      - {name: p, address: 2, type: float32, unit: kW}
    energy: {carrier: electricity, counter: e}
"""


def pipeline(tmp_path: Path, raw: str = "0s", states: dict | None = None) -> Pipeline:
    return built(tmp_path, CONFIG % {"dir": tmp_path, "raw": raw}, states)


def poll(t: float, wh: float | None, quality: Quality = Quality.GOOD) -> list[Reading]:
    return [
        Reading("m1", "e", t, wh, "Wh", quality),
        Reading("m1", "p", t, 1.0, "kW"),
    ]


def test_an_interval_carries_kwh_coal_and_sichuan_co2_with_its_factor(tmp_path: Path) -> None:
    """10 kWh counted in Wh: 10 kWh, 1.229 kgce, 1.404 kg CO2 at Sichuan's 2022 factor, scope 2."""
    p = pipeline(tmp_path)
    p.ingest("m1", poll(T0, 1_000_000))
    p.ingest("m1", poll(T0 + 60, 1_010_000))
    work = p.ingest("m1", poll(T0 + 65, 1_010_500))  # confirms the sample at the boundary
    (row,) = work.intervals
    record = row.body
    assert (record["quantity"], record["unit"], record["kwh"]) == (10.0, "kWh", 10.0)
    assert record["tce_kg"] == pytest.approx(1.229)
    assert record["co2_kg"] == pytest.approx(1.404)
    assert (record["scope"], record["factor"]["id"], record["factor"]["year"]) == (
        2,
        "cn_sichuan_2022",
        2022,
    )
    assert (record["start"], record["end"]) == (
        "2026-09-21T22:00:00+08:00",
        "2026-09-21T22:01:00+08:00",
    )
    assert work.counters["m1/e"]["last"] == [T0 + 60, 1_010_000]
    assert work.counters["m1/e"]["pending"] == [T0 + 65, 1_010_500]


def test_state_is_committed_on_the_first_sample_and_when_intervals_close_only(
    tmp_path: Path,
) -> None:
    """Between interval closes nothing needs writing: flash is spared."""
    p = pipeline(tmp_path)
    assert p.ingest("m1", poll(T0 + 1, 0)).counters
    assert not p.ingest("m1", poll(T0 + 6, 1))
    assert not p.ingest("m1", poll(T0 + 61, 2))
    assert p.ingest("m1", poll(T0 + 66, 3)).intervals


def test_bad_readings_leave_the_counter_alone(tmp_path: Path) -> None:
    """A failed poll adds nothing and changes no state; the next good one carries the energy."""
    p = pipeline(tmp_path)
    p.ingest("m1", poll(T0, 0))
    assert not p.ingest("m1", poll(T0 + 30, None, Quality.BAD))
    p.ingest("m1", poll(T0 + 60, 600))
    work = p.ingest("m1", poll(T0 + 65, 650))
    assert [r.body["quantity"] for r in work.intervals] == [0.6]


def test_raw_samples_are_kept_only_when_asked_for(tmp_path: Path) -> None:
    """raw_retention 0 writes no samples; a retention writes every reading."""
    assert pipeline(tmp_path).ingest("m1", poll(T0, 0)).samples == []
    kept = pipeline(tmp_path, "1h").ingest("m1", poll(T0, 0)).samples
    assert kept == [("m1", "e", T0, 0, "Wh", "good"), ("m1", "p", T0, 1.0, "kW", "good")]


def test_a_restart_with_other_interval_lengths_keeps_the_counter(tmp_path: Path) -> None:
    """Lengths no longer configured are dropped from the state; the counter goes on."""
    p = pipeline(tmp_path)
    for i in range(3):
        p.ingest("m1", poll(T0 + 5 * i, 1000.0 * i))
    state = p.flush().counters["m1/e"]
    state["open"].append([900.0, T0, T0 + 900, 5.0, 10.0, 0.0])  # as if 15 min was configured
    resumed = pipeline(tmp_path, states={"m1/e": state})
    assert list(resumed.states["m1/e"].open) == [60.0]
    assert resumed.states["m1/e"].last is not None


def test_counter_events_are_committed_with_the_state_that_explains_them(tmp_path: Path) -> None:
    """A glitch event is written together with the counter state, even with no interval."""
    p = pipeline(tmp_path)
    for i, wh in enumerate([1000.0, 1001.0, 1002.0, 0.0, 1003.0]):
        work = p.ingest("m1", poll(T0 + 5 * i, wh))
    assert [e.kind for e in work.events] == ["counter_glitch"]
    assert "m1/e" in work.counters


def test_every_counter_reading_of_a_poll_is_counted_in_order(tmp_path: Path) -> None:
    """A subscription's changes arrive together: each is a sample, oldest first."""
    p = pipeline(tmp_path)
    changes = [Reading("m1", "e", T0 + t, 1000.0 * t, "Wh") for t in (3, 1, 2, 4, 5)]
    p.ingest("m1", changes)
    state = p.states["m1/e"]
    assert state.pending is not None and state.pending.ts == T0 + 5
    assert state.last is not None and state.last.ts == T0 + 4


def test_a_counter_behind_transformers_wraps_at_the_primary_value(tmp_path: Path) -> None:
    """With CT 100 a uint16 kWh register wraps at 65536 x 100 kWh on the primary side."""
    text = CONFIG.replace("type: uint32, unit: Wh", "type: uint16, unit: kWh").replace(
        "    poll: 5s\n", "    poll: 5s\n    ct_ratio: 100\n"
    )
    p = built(tmp_path, text % {"dir": tmp_path, "raw": "0s"})
    assert p.meters["m1"].spec.modulus == 65536 * 100


def test_a_float_counter_rolls_over_at_its_configured_modulus(tmp_path: Path) -> None:
    """energy.modulus 100000 on a float32 kWh counter: 99999 -> 1 is 2 kWh and a
    counter_rollover event, not a meter reset that loses the energy."""
    text = CONFIG.replace("type: uint32, unit: Wh", "type: float32, unit: kWh").replace(
        "counter: e}", "counter: e, modulus: 100000}"
    )
    p = built(tmp_path, text % {"dir": tmp_path, "raw": "0s"})
    series = [(0, 99996.0), (5, 99997.0), (10, 99998.0), (15, 99999.0), (20, 1.0), (25, 2.0)]
    series += [(30, 3.0), (65, 4.0), (125, 5.0)]
    work = [p.ingest("m1", [Reading("m1", "e", T0 + t, v, "kWh")]) for t, v in series]
    kinds = [e.kind for w in work for e in w.events]
    closed = [r.body["quantity"] for w in work for r in w.intervals]
    assert kinds == ["counter_rollover"]
    # 99996 -> 100000 -> 3 by 30 s, then 1 kWh over 35 s of which 30 s fall in [0, 60 s)
    assert closed == [pytest.approx(4.0 + 3.0 + 30 / 35, abs=1e-6)]


def test_a_modulus_with_power_only_energy_is_refused(tmp_path: Path) -> None:
    """A rate has no rollover: modulus: with power: is a config problem at its line."""
    from domain.errors import ConfigInvalid

    path = tmp_path / "agent.yaml"
    path.write_text(
        CONFIG.replace("counter: e}", "power: p, modulus: 1000}") % {"dir": tmp_path, "raw": "0s"}
    )
    with pytest.raises(ConfigInvalid) as refused:
        load_config(path)
    assert any("energy.modulus" in str(problem) for problem in refused.value.problems)
