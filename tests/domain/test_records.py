"""The interval record and the batch schema describe the same thing, field for field."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields, replace

import pytest

from domain.batch import Density, Factor, Interval
from domain.records import AppliedDensity, AppliedFactor, IntervalRecord

BASE = IntervalRecord(
    device="boiler",
    carrier="diesel",
    start="2026-09-21T22:00:00+08:00",
    end="2026-09-21T22:01:00+08:00",
    quantity=8.4,
    unit="kg",
    kwh=99.82,
    tce_kg=12.23964,
    co2_kg=26.00556,
    scope=1,
    factor=AppliedFactor("ndrc_diesel", 3.0959, "kgCO2/kg", "NDRC 2013", None, "checked"),
    coverage=1.0,
    quality="good",
)


@pytest.mark.parametrize(
    ("typed", "model"),
    [(IntervalRecord, Interval), (AppliedFactor, Factor), (AppliedDensity, Density)],
)
def test_the_typed_record_and_the_schema_have_the_same_fields(typed: type, model: type) -> None:
    """Neither can drift: a field added to one and not the other fails here, and what the
    record always writes is what the schema requires. The interval statistics stay in the
    buffer for the destinations that send them: a batch does not carry them."""
    assert {f.name for f in fields(typed)} - {"stats"} == set(model.model_fields)
    if typed is IntervalRecord:
        required = {f.name for f in fields(typed) if f.default is MISSING}
        assert required == {n for n, f in model.model_fields.items() if f.is_required()}


def test_optional_fields_are_written_only_when_the_record_has_them() -> None:
    """A plain record carries the required fields alone (nulls included); each optional
    group appears whole once set, in the schema's order."""
    plain = BASE.to_json()
    assert list(plain) == [f.name for f in fields(IntervalRecord) if f.default is MISSING]
    assert plain["factor"]["verification"] == "checked"
    demand = replace(BASE, demand_kw=400.0).to_json()
    assert list(demand)[-3:] == ["demand_kw", "demand_max_day_kw", "demand_max_month_kw"]
    assert demand["demand_max_day_kw"] is None
    density = replace(BASE, density=AppliedDensity(0.84, "note"))
    assert density.to_json()["density"] == {"value": 0.84, "unit": "kg/L", "source": "note"}


def test_a_record_comes_back_from_its_json() -> None:
    """from_json(to_json()) is the same record, through a JSON round trip; a key this
    version does not know is left out rather than stopping a restart."""
    full = replace(
        BASE,
        density=AppliedDensity(0.84, "note"),
        demand_kw=1.0,
        demand_max_day_kw=2.0,
        demand_max_month_kw=3.0,
        site_co2_kg=4.0,
        site_tce_kg=5.0,
        co2_kg_per_unit=None,
        tce_kg_per_unit=None,
        co2_kg_per_unit_day=6.0,
        tce_kg_per_unit_day=7.0,
        intensity_complete=False,
    )
    for record in (BASE, full):
        data = json.loads(json.dumps(record.to_json()))
        assert IntervalRecord.from_json(data) == record
        assert IntervalRecord.from_json({**data, "from_the_future": 1}) == record
        Interval.model_validate_json(json.dumps(data), strict=True)
