"""Valid batches as plain JSON data, for tests to post as they are or break one field at a time.

Numbers are chosen to be easy to check by hand: CO2 is half the kWh and
standard coal is a tenth (not the real factors, which live in the factor sets).
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta
from typing import Any

Record = dict[str, Any]

GATEWAY: Record = {
    "id": "cd-plant07-gw1",
    "enterprise_id": "91510100MA61234567",
    "region_code": "510100",
    "industry_code": "C3011",
    "timezone": "Asia/Shanghai",
}
CHONGQING: Record = {
    "id": "cq-plant02-gw1",
    "enterprise_id": "91500000MA5U123456",
    "region_code": "500000",
    "industry_code": "C2611",
    "timezone": "Asia/Shanghai",
}
FACTOR: Record = {
    "id": "test-grid",
    "value": 0.5,
    "unit": "kgCO2/kWh",
    "source": "made up for tests",
    "year": 2022,
}


def interval(
    device: str = "main_incomer",
    start: str = "2026-11-26T08:00:00+08:00",
    minutes: int = 15,
    kwh: float = 10.0,
    **changes: Any,
) -> Record:
    """One electricity interval of `minutes` from `start`."""
    begin = datetime.fromisoformat(start)
    record: Record = {
        "device": device,
        "carrier": "electricity",
        "start": begin.isoformat(),
        "end": (begin + timedelta(minutes=minutes)).isoformat(),
        "quantity": kwh,
        "unit": "kWh",
        "kwh": kwh,
        "tce_kg": kwh / 10,
        "co2_kg": kwh / 2,
        "scope": 2,
        "factor": FACTOR,
        "coverage": 1.0,
        "quality": "good",
    }
    return record | changes


def series(device: str, start: str, minutes: int, count: int, kwh: float = 1.0) -> list[Record]:
    """`count` back-to-back intervals of `minutes`, each of `kwh`."""
    begin = datetime.fromisoformat(start)
    return [
        interval(device, (begin + timedelta(minutes=minutes * n)).isoformat(), minutes, kwh)
        for n in range(count)
    ]


def event(event_id: int, ts: str = "2026-11-26T08:05:00+08:00", **changes: Any) -> Record:
    record: Record = {
        "id": event_id,
        "ts": ts,
        "device": "main_incomer",
        "kind": "alarm_raised",
        "severity": "warning",
        "message": "site-demand-high: 812 kW above 800 kW for 2m",
    }
    return record | changes


def batch(
    sequence: int = 1,
    intervals: list[Record] | None = None,
    events: list[Record] | None = None,
    gateway: Record = GATEWAY,
) -> Record:
    return {
        "schema_version": 1,
        "gateway": gateway,
        "sequence": sequence,
        "factor_set": "cn-mee-2022",
        "intervals": [interval()] if intervals is None else intervals,
        "events": events or [],
        "samples": [],
    }


def key(document: Record) -> str:
    """The Idempotency-Key a sender puts on this batch."""
    return f"{document['gateway']['id']}:{document['sequence']}"


def gzipped(document: Record) -> bytes:
    return gzip.compress(json.dumps(document).encode())
