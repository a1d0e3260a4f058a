"""Every kind of interval record the agent produces is one the batch schema accepts.

The schema forbids unknown fields, so a producer that adds a field the schema
does not declare (or misspells one) fails here rather than at the platform.
"""

from __future__ import annotations

import json
from pathlib import Path

from agent.pipeline import Pipeline
from domain.batch import Interval
from domain.reading import Reading
from tests.fixtures.pipeline import HEAD, built

T0 = 1_789_999_200.0  # 2026-09-21 22:00 +08:00

CONFIG = (
    HEAD
    + """\
devices:
  - name: incomer
    modbus_tcp: {host: 127.0.0.1}
    poll: 30s
    points: [{name: e, address: 0, type: uint32, unit: kWh, kind: counter}]
    energy: {carrier: electricity, counter: e}
  - name: boiler
    modbus_tcp: {host: 127.0.0.2}
    poll: 30s
    points: [{name: v, address: 0, type: uint32, unit: m3, kind: counter}]
    energy: {carrier: natural_gas, counter: v}
  - name: genset
    modbus_tcp: {host: 127.0.0.3}
    poll: 30s
    points: [{name: l, address: 0, type: uint32, unit: L, kind: counter}]
    energy: {carrier: diesel, counter: l, density: {value: 0.84, source: delivery note 7}}
  - name: tap
    modbus_tcp: {host: 127.0.0.4}
    poll: 30s
    points: [{name: w, address: 0, type: uint32, unit: m3, kind: counter}]
    energy: {carrier: water, counter: w}
  - name: press
    modbus_tcp: {host: 127.0.0.5}
    poll: 30s
    points: [{name: p, address: 0, type: float32, unit: kW}]
    energy: {carrier: electricity, power: p}
  - name: line
    modbus_tcp: {host: 127.0.0.6}
    poll: 30s
    points: [{name: units, address: 100, type: uint32, unit: piece, kind: counter}]
    production: {counter: units}
"""
)
POINTS = {  # device: (point, unit, value at poll i)
    "line": ("units", "piece", lambda i: 5000.0 + 10 * (i // 3)),  # some minutes make none
    "incomer": ("e", "kWh", lambda i: 100.0 + 2 * i),
    "boiler": ("v", "m3", lambda i: 50.0 + i),
    "genset": ("l", "L", lambda i: 10.0 + 3 * i),
    "tap": ("w", "m3", lambda i: 7.0 + i),
    "press": ("p", "kW", lambda i: 120.0),
}


def produced(p: Pipeline, devices: list[str], polls: range, start: float, every: float) -> list:
    """The committed record bodies of `polls` from `start`, `every` seconds apart."""
    out = []
    for n, i in enumerate(polls):
        for device in devices:
            point, unit, value = POINTS[device]
            work = p.ingest(device, [Reading(device, point, start + every * n, value(i), unit)])
            out += [row.body for row in work.intervals]
    return out


def test_every_producer_makes_records_the_batch_schema_accepts(tmp_path: Path) -> None:
    """Electricity with block demand, gas, diesel with its density, water, energy from
    power, production released complete and (a meter offline a day) incomplete: each
    record, as committed, passes the schema as strictly as the receiver checks it."""
    p = built(tmp_path, CONFIG % {"dir": tmp_path})
    records = produced(p, list(POINTS), range(40), T0, 30.0)  # 20 minutes, everyone polled
    # the boiler goes offline: production records wait for it, then go after a day
    online = [d for d in POINTS if d != "boiler"]
    records += produced(p, online, range(40, 68), T0 + 1200.0, 3600.0)

    for body in records:
        Interval.model_validate_json(json.dumps(body), strict=True)

    def seen(device: str, **fields: object) -> bool:
        return any(
            r["device"] == device and all(r.get(k, "absent") == v for k, v in fields.items())
            for r in records
        )

    assert seen("incomer", demand_kw=240.0)  # 2 kWh per 30 s poll
    assert seen("boiler", carrier="natural_gas")
    assert seen("genset", carrier="diesel", unit="kg")
    assert any(r["device"] == "genset" and "density" in r for r in records)
    assert seen("tap", carrier="water", kwh=None)
    assert seen("press", carrier="electricity")
    assert seen("line", carrier="production", intensity_complete="absent")
    assert seen("line", carrier="production", intensity_complete=False)
    assert seen("line", carrier="production", co2_kg_per_unit=None)  # a minute with no units
