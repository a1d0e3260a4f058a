"""The receiver's stores, SQLite and PostgreSQL, held to one suite.

Every test here runs against both backends through the `store` fixture: what
`put` answers, what is kept once, what the read side returns, and the summary's
totals. The HTTP layer is left out; tests/receiver/test_receiver.py speaks to it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver._backends import AnyStore, open_store
from receiver._postgres import PostgresStore
from receiver._request import Refused, parse_batch
from receiver._store import KeyConflict, Stored
from receiver._summary import summarize
from tests.fixtures.batches import CHONGQING, GATEWAY, batch, event, interval, key, series

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What `--db` would be given: an SQLite file, or a fresh PostgreSQL database's URL."""
    if request.param == "sqlite":
        return str(tmp_path / "central.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(database: str) -> Iterator[AnyStore]:
    opened = open_store(database)
    yield opened
    opened.close()


def put(store: AnyStore, document: dict[str, Any]) -> Stored | None:
    """Store a batch as the receiver does after parsing the body it was sent."""
    data = json.dumps(document).encode()
    parsed, raw = parse_batch(data)
    return store.put(key(document), parsed, raw, hashlib.sha256(data).hexdigest())


def records(store: AnyStore, **filters: Any) -> list[dict[str, Any]]:
    query: dict[str, Any] = {
        "gateway": None,
        "device": None,
        "start_from": None,
        "start_to": None,
        "limit": 10_000,
    }
    found, truncated = store.intervals(**(query | filters))
    assert truncated is False
    return [json.loads(text) for text in found]


def sample(point: str, ts: str, value: float) -> dict[str, Any]:
    return {
        "device": "main_incomer",
        "point": point,
        "ts": ts,
        "value": value,
        "unit": "kW",
        "quality": "good",
    }


def test_a_batch_is_stored_once_then_its_key_is_known(store: AnyStore) -> None:
    """put answers what was new; the same key again answers None and adds nothing."""
    document = batch(intervals=series("main_incomer", "2026-11-26T08:00:00+08:00", 15, 4))
    document["samples"] = [sample("p_kw", "2026-11-26T08:00:00+08:00", 812.5)]

    first, again = put(store, document), put(store, document)

    assert first == Stored(intervals=4, events=0, samples=1, duplicate_records=0)
    assert again is None
    assert len(records(store)) == 4


def test_a_known_key_with_another_body_is_a_conflict(store: AnyStore) -> None:
    """Two different batches under one key: the second raises KeyConflict and adds nothing."""
    put(store, batch())

    with pytest.raises(KeyConflict):
        put(store, batch(intervals=[interval(kwh=99.0)]))

    assert [r["kwh"] for r in records(store)] == [10.0]


def test_records_are_kept_once_across_batch_keys(store: AnyStore) -> None:
    """An interval, event or sample that comes again under another key counts as a duplicate."""
    a, b, c = series("main_incomer", "2026-11-26T08:00:00+08:00", 15, 3)
    one = batch(sequence=1, intervals=[a, b], events=[event(7)])
    one["samples"] = [sample("p_kw", "2026-11-26T08:00:00+08:00", 1.0)]
    two = batch(sequence=2, intervals=[b, c], events=[event(7), event(8)])
    two["samples"] = [
        sample("p_kw", "2026-11-26T08:00:00+08:00", 1.0),
        sample("p_kw", "2026-11-26T08:01:00+08:00", 2.0),
    ]
    put(store, one)

    assert put(store, two) == Stored(intervals=1, events=1, samples=1, duplicate_records=3)
    assert [r["start"] for r in records(store)] == [a["start"], b["start"], c["start"]]


def test_the_same_instant_with_another_offset_is_the_same_interval(store: AnyStore) -> None:
    """08:00+08:00 and 00:00Z are one interval: keys compare instants, not text."""
    put(store, batch(sequence=1, intervals=[interval(start="2026-11-26T08:00:00+08:00")]))

    stored = put(store, batch(sequence=2, intervals=[interval(start="2026-11-26T00:00:00+00:00")]))

    assert stored == Stored(intervals=0, events=0, samples=0, duplicate_records=1)


def test_a_record_twice_in_one_batch_is_stored_once(store: AnyStore) -> None:
    """A batch that carries the same interval twice stores it once and counts one duplicate."""
    record = interval()

    assert put(store, batch(intervals=[record, record])) == Stored(1, 0, 0, 1)


def test_the_same_batch_from_eight_threads_is_stored_once(store: AnyStore) -> None:
    """Eight copies of one batch put at the same moment: one stored, seven None."""
    document = batch(intervals=series("main_incomer", "2026-11-26T00:00:00+08:00", 1, 300))
    start = threading.Barrier(8)
    answers: list[Stored | None] = []

    def send() -> None:
        start.wait()
        answers.append(put(store, document))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers, key=lambda a: a is None) == [Stored(300, 0, 0, 0)] + [None] * 7
    assert len(records(store)) == 300


def test_intervals_filter_by_gateway_device_and_start(store: AnyStore) -> None:
    """from is inclusive and to exclusive, both on start; records come with their gateway."""
    put(
        store,
        batch(
            intervals=series("press_line_2", "2026-11-26T08:00:00+08:00", 15, 8)
            + series("main_incomer", "2026-11-26T08:00:00+08:00", 15, 8)
        ),
    )
    put(
        store,
        batch(
            gateway=CHONGQING, intervals=series("press_line_2", "2026-11-26T08:00:00+08:00", 15, 8)
        ),
    )

    found = records(
        store,
        gateway=GATEWAY["id"],
        device="press_line_2",
        start_from=datetime.fromisoformat("2026-11-26T08:30:00+08:00"),
        start_to=datetime.fromisoformat("2026-11-26T01:30:00+00:00"),
    )

    assert [(r["gateway"], r["device"], r["start"]) for r in found] == [
        (GATEWAY["id"], "press_line_2", f"2026-11-26T{clock}:00+08:00")
        for clock in ("08:30", "08:45", "09:00", "09:15")
    ]


def test_intervals_come_back_as_received_in_order_and_limited(store: AnyStore) -> None:
    """Gateway, device, start order (code-point order, whatever the database's locale);
    an optional field kept where it was; `limit` cuts and says so."""
    records_sent = series("Zeta", "2026-11-26T08:00:00+08:00", 15, 2) + series(
        "alpha", "2026-11-26T08:00:00+08:00", 15, 2
    )
    records_sent[0]["demand_kw"] = 812.5
    put(store, batch(intervals=records_sent))

    found, truncated = store.intervals(
        gateway=None, device=None, start_from=None, start_to=None, limit=3
    )

    assert [json.loads(text) for text in found] == [
        {"gateway": GATEWAY["id"], **r} for r in records_sent[:3]
    ]
    assert truncated is True


def test_events_filter_and_come_back_as_received(store: AnyStore) -> None:
    """Events by gateway, device, kind, severity and time (from inclusive, to exclusive)."""
    put(
        store,
        batch(
            sequence=1,
            events=[
                event(1, "2026-11-26T08:00:00+08:00"),
                event(2, "2026-11-26T08:10:00+08:00", kind="alarm_cleared", severity="info"),
                event(3, "2026-11-26T08:20:00+08:00", device="press_line_2"),
                event(4, "2026-11-26T08:30:00+08:00", device=None, kind="buffer_full"),
            ],
        ),
    )
    put(store, batch(gateway=CHONGQING, events=[event(1, "2026-11-26T08:05:00+08:00")]))

    def ids(**filters: Any) -> list[tuple[str, int]]:
        query: dict[str, Any] = dict.fromkeys(
            ("gateway", "device", "kind", "severity", "start_from", "start_to")
        )
        found, truncated = store.events(**(query | {"limit": 100} | filters))
        assert truncated is False
        return [(e["gateway"], e["id"]) for e in map(json.loads, found)]

    here = GATEWAY["id"]
    assert ids(gateway=here) == [(here, 1), (here, 2), (here, 3), (here, 4)]
    assert ids(gateway=CHONGQING["id"]) == [(CHONGQING["id"], 1)]
    assert ids(gateway=here, device="press_line_2") == [(here, 3)]
    assert ids(kind="alarm_cleared") == [(here, 2)]
    assert ids(severity="info") == [(here, 2)]
    assert ids(
        gateway=here,
        start_from=datetime.fromisoformat("2026-11-26T08:10:00+08:00"),
        start_to=datetime.fromisoformat("2026-11-26T00:30:00+00:00"),
    ) == [(here, 2), (here, 3)]
    [raw] = store.events(
        gateway=here, device=None, kind="buffer_full", severity=None,
        start_from=None, start_to=None, limit=1,
    )[0]  # fmt: skip
    assert json.loads(raw) == {
        "gateway": here,
        **event(4, "2026-11-26T08:30:00+08:00", device=None, kind="buffer_full"),
    }
    assert store.events(
        gateway=None, device=None, kind=None, severity=None, start_from=None, start_to=None,
        limit=2,
    )[1] is True  # fmt: skip


def at(clock: str, day: str = "2026-11-26") -> str:
    return f"{day}T{clock}:00+08:00"


def test_totals_count_each_device_once_across_interval_lengths(store: AnyStore) -> None:
    """An hour over two quarters over minutes: each adds only what the ones inside it do not."""
    hour = interval(start=at("08:00"), minutes=60, kwh=60.0)
    quarters = series("main_incomer", at("08:00"), 15, 2, 15.0)
    minutes = series("main_incomer", at("08:00"), 1, 5) + series("main_incomer", at("08:30"), 1, 5)
    put(store, batch(sequence=1, intervals=[hour, *quarters]))
    put(store, batch(sequence=2, intervals=minutes))

    [group] = summarize(store, "gateway", "day", None)["groups"]

    assert (group["key"], group["period"]) == (GATEWAY["id"], "2026-11-26")
    assert pytest.approx((group["kwh"], group["tce_kg"], group["co2_kg"])) == (60.0, 6.0, 30.0)


def test_summary_compares_with_the_day_before_and_a_year_ago(store: AnyStore) -> None:
    """Groups by region on the gateway's local days; comparisons null where nothing is stored."""
    put(
        store,
        batch(
            intervals=[
                interval(start="2026-11-26T10:00:00+08:00", kwh=20.0),
                interval(start="2026-11-25T10:00:00+08:00", kwh=7.0),
                interval(start="2025-11-26T10:00:00+08:00", kwh=3.0),
                # 23:30 UTC on the 25th is the 26th in Chengdu
                interval(start="2026-11-25T23:30:00+00:00", kwh=1.0),
            ]
        ),
    )
    put(store, batch(gateway=CHONGQING, intervals=[interval(kwh=4.0)]))

    answer = summarize(store, "region", "day", date(2026, 11, 26))
    by_month = summarize(store, "industry", "month", None)

    assert [(g["key"], g["kwh"], g["previous"], g["year_ago"]) for g in answer["groups"]] == [
        ("500000", 4.0, None, None),
        (
            "510100",
            21.0,
            {"period": "2026-11-25", "kwh": 7.0, "tce_kg": 0.7, "co2_kg": 3.5},
            {"period": "2025-11-26", "kwh": 3.0, "tce_kg": 0.3, "co2_kg": 1.5},
        ),
    ]
    assert [(g["key"], g["period"], g["kwh"]) for g in by_month["groups"]] == [
        ("C2611", "2026-11", 4.0),
        ("C3011", "2025-11", 3.0),
        ("C3011", "2026-11", 28.0),
    ]


def test_a_closed_store_refuses_with_an_error_the_http_side_answers_503(
    database: str,
) -> None:
    """After close(), put and reads raise a sqlite3.Error, which the HTTP side turns into 503."""
    store = open_store(database)
    store.close()
    store.close()

    with pytest.raises(sqlite3.Error):
        put(store, batch())
    with pytest.raises(sqlite3.Error):
        store.intervals(gateway=None, device=None, start_from=None, start_to=None, limit=1)


_gateways = itertools.count()


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kwh=st.lists(
        st.floats(min_value=0, max_value=1e6, allow_nan=False) | st.integers(0, 10**6),
        min_size=1,
        max_size=40,
    ),
    cuts=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=1, max_size=6),
)
def test_any_overlapping_resend_stores_each_interval_once(
    store: AnyStore, kwh: list[float], cuts: list[tuple[int, int]]
) -> None:
    """Batches that carry any overlapping slices of one series: each interval is stored once,
    the new counts add up to the series, and the sum of energy is the series' sum."""
    gateway = dict(GATEWAY, id=f"gw-{next(_gateways)}")
    sent = [
        interval(start=f"2026-11-26T{n // 60:02d}:{n % 60:02d}:00+08:00", minutes=1, kwh=value)
        for n, value in enumerate(kwh)
    ]
    slices = [sorted(cut) for cut in cuts] + [[0, len(sent)]]
    stored = [
        put(store, batch(sequence=n, gateway=gateway, intervals=sent[lo:hi]))
        for n, (lo, hi) in enumerate(slices, start=1)
    ]

    kept = records(store, gateway=gateway["id"])
    assert sum(s.intervals for s in stored if s is not None) == len(sent) == len(kept)
    carried = sum(len(sent[lo:hi]) for lo, hi in slices)
    assert sum(s.duplicate_records for s in stored if s is not None) == carried - len(sent)
    assert sum(r["kwh"] for r in kept) == pytest.approx(sum(kwh))


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(device=st.text(min_size=1, max_size=30), message=st.text(max_size=60))
def test_any_text_is_kept_as_sent_or_refused_whole(
    store: AnyStore, device: str, message: str
) -> None:
    """Any device name and event message (control characters, any script) comes back exactly
    as sent; only where the database cannot hold it (U+0000 in PostgreSQL) is the batch
    refused with 422 naming the field, and then nothing of it is stored."""
    gateway = dict(GATEWAY, id=f"gw-{next(_gateways)}")
    document = batch(
        gateway=gateway,
        intervals=[interval(device=device)],
        events=[event(1, device=device, message=message)],
    )
    try:
        answer = put(store, document)
    except Refused as refused:
        assert "\x00" in device + message
        assert isinstance(store, PostgresStore)
        assert refused.status == 422
        assert refused.errors
        assert {e["path"] for e in refused.errors} <= {
            "intervals[0].device",
            "events[0].device",
            "events[0].message",
        }
        assert records(store, gateway=gateway["id"]) == []
        return

    assert answer == Stored(intervals=1, events=1, samples=0, duplicate_records=0)
    [kept] = records(store, gateway=gateway["id"], device=device)
    assert kept["device"] == device
