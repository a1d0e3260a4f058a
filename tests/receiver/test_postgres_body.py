"""PostgreSQL takes a batch's intervals from the body itself: the same rows as Python made.

receiver._postgres inserts intervals with one INSERT ... SELECT over
json_to_record of the body (receiver._postgres_schema.INSERT_INTERVALS_JSON)
instead of rows computed in Python. These tests hold the two together: the
time columns (epoch seconds, duration, local date) for any instant, offset and
zone; records kept as they were sent, whatever the JSON's spacing and escapes;
text PostgreSQL cannot hold refused whole; a record twice in a body stored once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver._postgres import PostgresStore
from receiver._request import Refused, parse_batch, validate_batch
from receiver._rows import interval_rows
from receiver._store import Stored
from tests.fixtures.batches import GATEWAY, batch, interval

pytestmark = pytest.mark.timeout(120)

_gateways = itertools.count()
ZONES = ["Asia/Shanghai", "Europe/London", "America/Sao_Paulo", "Pacific/Chatham", "UTC"]


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_url)
    yield opened
    opened.close()


def put_body(store: PostgresStore, data: bytes) -> Stored | None:
    """As MQTT ingest does: validate once, hand PostgreSQL the body."""
    parsed = validate_batch(data)
    key = f"{parsed.gateway.id}:{parsed.sequence}"
    return store.put(key, parsed, None, hashlib.sha256(data).hexdigest(), body=data)


def stored_rows(url: str, gateway: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return db.execute(
            "SELECT gateway, enterprise_id, region_code, industry_code, timezone, device,"
            " carrier, start_text, end_text, start_s, end_s, duration_s, local_date, quantity,"
            " unit, kwh, tce_kg, co2_kg, scope, factor_id, coverage, quality"
            " FROM intervals WHERE gateway = %s ORDER BY device, start_s",
            (gateway,),
        ).fetchall()


instants = st.datetimes(min_value=datetime(1971, 1, 2), max_value=datetime(2100, 1, 1)).map(
    lambda t: t.replace(tzinfo=UTC)
)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    start=instants,
    offset=offsets,
    micros=st.integers(1, 10**6 * 86_400 * 40),
    zone=st.sampled_from(ZONES),
    kwh=st.floats(min_value=-1e12, max_value=1e12, allow_nan=False) | st.none(),
)
def test_the_columns_are_the_ones_python_computes(
    store: PostgresStore,
    postgres_url: str,
    start: datetime,
    offset: timezone,
    micros: int,
    zone: str,
    kwh: float | None,
) -> None:
    """For any instant (to the microsecond), offset, length and zone, PostgreSQL's start_s,
    end_s, duration_s and local date are exactly Python's, and every other column too."""
    gateway = dict(GATEWAY, id=f"gw-body-{next(_gateways)}", timezone=zone)
    begin = start.astimezone(offset)
    record = interval(start=begin.isoformat(), kwh=1.0) | {
        "end": (begin + timedelta(microseconds=micros)).isoformat(),
        "kwh": kwh,
        "factor": None if kwh is None else interval()["factor"],
    }
    data = json.dumps(batch(gateway=gateway, intervals=[record])).encode()

    assert put_body(store, data) == Stored(intervals=1, events=0, samples=0, duplicate_records=0)

    assert stored_rows(postgres_url, gateway["id"]) == [
        row[:-1] for row in interval_rows(*parse_batch(data))
    ]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(device=st.text(min_size=1, max_size=30), indent=st.sampled_from([None, 1]))
def test_any_text_is_kept_as_sent_or_refused_whole(
    store: PostgresStore, device: str, indent: int | None
) -> None:
    """Any device name, in JSON with \\u escapes and any spacing, comes back as sent; with
    U+0000 (which PostgreSQL's text cannot hold) the batch is refused 422 naming the field,
    and nothing of it is stored."""
    gateway = dict(GATEWAY, id=f"gw-body-{next(_gateways)}")
    sent = [interval(device=device), interval(device=device, start="2026-11-26T09:00:00+08:00")]
    data = json.dumps(batch(gateway=gateway, intervals=sent), indent=indent).encode()
    query = dict(gateway=gateway["id"], device=None, start_from=None, start_to=None, limit=9)
    try:
        answer = put_body(store, data)
    except Refused as refused:
        assert "\x00" in device
        assert refused.status == 422
        assert refused.errors == [
            {"path": f"intervals[{n}].device", "message": refused.errors[0]["message"]}
            for n in range(2)
        ]
        assert store.intervals(**query) == ([], False)  # type: ignore[arg-type]
        return

    assert answer == Stored(intervals=2, events=0, samples=0, duplicate_records=0)
    found, _ = store.intervals(**query)  # type: ignore[arg-type]
    assert [json.loads(text) for text in found] == [{"gateway": gateway["id"], **r} for r in sent]


def test_a_record_twice_in_one_body_is_stored_once(store: PostgresStore, postgres_url: str) -> None:
    """Two copies of a record in one batch (and one already held from another batch):
    one row each, the rest counted as duplicates."""
    gateway = dict(GATEWAY, id=f"gw-body-{next(_gateways)}")
    first = interval(start="2026-11-26T08:00:00+08:00")
    second = interval(start="2026-11-26T08:15:00+08:00")
    put_body(store, json.dumps(batch(sequence=1, gateway=gateway, intervals=[first])).encode())

    again = batch(sequence=2, gateway=gateway, intervals=[second, first, second])
    answer = put_body(store, json.dumps(again).encode())

    assert answer == Stored(intervals=1, events=0, samples=0, duplicate_records=2)
    assert [row[7] for row in stored_rows(postgres_url, gateway["id"])] == [
        first["start"],
        second["start"],
    ]


def test_a_body_with_events_keeps_both(store: PostgresStore) -> None:
    """Events still come from the parsed document: a body with both stores both."""
    gateway = dict(GATEWAY, id=f"gw-body-{next(_gateways)}")
    document = batch(gateway=gateway, intervals=[interval()])
    document["events"] = [
        {"id": 1, "ts": "2026-11-26T08:05:00+08:00", "device": "main_incomer",
         "kind": "alarm_raised", "severity": "warning", "message": "over 800 kW"}
    ]  # fmt: skip

    answer = put_body(store, json.dumps(document).encode())

    assert answer == Stored(intervals=1, events=1, samples=0, duplicate_records=0)
    found, truncated = store.events(gateway=gateway["id"], device=None, kind=None, severity=None,
                                    start_from=None, start_to=None, limit=9)  # fmt: skip
    assert ([json.loads(text) for text in found], truncated) == (
        [{"gateway": gateway["id"], **document["events"][0]}],
        False,
    )
