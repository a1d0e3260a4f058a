"""The receiver's HTTP side on a PostgreSQL store: the same answers as on SQLite, and the
answers only PostgreSQL needs (text it cannot hold, a connection lost)."""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver import Receiver, _postgres
from receiver._backends import open_store
from receiver._postgres import MIGRATIONS
from tests.fixtures.batches import batch, interval, key, series
from tests.fixtures.json_schema import from_schema

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client(postgres_url: str) -> Iterator[httpx.Client]:
    with (
        Receiver(postgres_url, token=TOKEN) as receiver,
        httpx.Client(base_url=receiver.url, timeout=30) as http,
    ):
        yield http


def post(client: httpx.Client, document: dict[str, Any]) -> httpx.Response:
    return client.post(
        "/api/v1/batches",
        content=gzip.compress(json.dumps(document).encode()),
        headers={"Content-Encoding": "gzip", "Idempotency-Key": key(document), **AUTH},
    )


def test_store_duplicate_read_back_and_summarize(client: httpx.Client) -> None:
    """A batch is stored, then a duplicate; its intervals and the summary read back over HTTP."""
    document = batch(intervals=series("main_incomer", "2026-11-26T08:00:00+08:00", 15, 4))

    first, second = post(client, document), post(client, document)
    stored = client.get("/api/v1/intervals", headers=AUTH).json()
    groups = client.get(
        "/api/v1/summary", params={"by": "gateway", "period": "day"}, headers=AUTH
    ).json()["groups"]

    assert (first.json()["status"], first.json()["intervals"]) == ("stored", 4)
    assert second.json() == {"status": "duplicate", "key": key(document)}
    assert [r["start"] for r in stored["intervals"]] == [r["start"] for r in document["intervals"]]
    assert [(g["key"], g["period"], g["kwh"]) for g in groups] == [
        ("cd-plant07-gw1", "2026-11-26", 4.0)
    ]


def test_a_known_key_with_another_body_is_409(client: httpx.Client) -> None:
    post(client, batch())

    answer = post(client, batch(intervals=[interval(kwh=99.0)]))

    assert answer.status_code == 409


def test_text_postgresql_cannot_hold_is_422_naming_the_field(client: httpx.Client) -> None:
    """A device name with U+0000 is refused with its path, and nothing of the batch is kept."""
    records = series("main_incomer", "2026-11-26T08:00:00+08:00", 15, 3)
    records[2]["device"] = "main\x00incomer"

    answer = post(client, batch(intervals=records))

    assert answer.status_code == 422
    assert [e["path"] for e in answer.json()["errors"]] == ["intervals[2].device"]
    assert client.get("/api/v1/intervals", headers=AUTH).json()["intervals"] == []


def test_a_factor_set_postgresql_cannot_hold_is_422_too(client: httpx.Client) -> None:
    """U+0000 outside the records (the batch's factor_set, a column of the batch) is named
    the same way: a 422 the agent quarantines, never a 500 it would retry for ever."""
    document = batch()
    document["factor_set"] = "cn-mee-2022\x00"
    answer = post(client, document)
    assert answer.status_code == 422
    assert [e["path"] for e in answer.json()["errors"]] == ["factor_set"]


@pytest.fixture
def impatient(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    """`client`, its receiver's pool waiting 3 s for a connection before the 503, not 10 s:
    the 503 is what is asserted, not how long the pool waited."""
    monkeypatch.setattr(_postgres, "POOL_WAIT", 3.0)
    with (
        Receiver(postgres_url, token=TOKEN) as receiver,
        httpx.Client(base_url=receiver.url, timeout=30) as http,
    ):
        yield http


@pytest.mark.slow  # the pool waits for a connection before the 503
def test_dropped_connections_are_replaced_and_a_database_away_is_503(
    impatient: httpx.Client, postgres_url: str
) -> None:
    """The server cuts every connection (a restart): the next POST is stored all the same on a
    fresh one. The database refusing connections: 503 with Retry-After (the agent sends
    again), and stored once it is back."""
    client = impatient
    post(client, batch(sequence=1))
    later = batch(sequence=2, intervals=[interval(start="2026-11-26T09:00:00+08:00")])
    latest = batch(sequence=3, intervals=[interval(start="2026-11-26T10:00:00+08:00")])
    name = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        cut = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
        admin.execute(cut, (name,))

        after_restart = post(client, later)

        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(cut, (name,))
        away = post(client, latest)
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    back = post(client, latest)
    deadline = time.monotonic() + 20  # the pool reconnects on its own backoff; the agent
    while back.status_code == 503 and time.monotonic() < deadline:  # sends again, as told
        time.sleep(0.5)
        back = post(client, latest)

    assert after_restart.json()["status"] == "stored"
    assert (away.status_code, away.headers.get("Retry-After")) == (503, "5")
    assert back.json()["status"] == "stored"


def test_a_database_of_a_newer_receiver_is_refused_at_start(postgres_url: str) -> None:
    """A schema version beyond this receiver's migrations: it will not write into tables it
    does not know, and says which versions met."""
    open_store(postgres_url).close()
    with psycopg.connect(postgres_url) as db:
        db.execute("INSERT INTO schema_version (version) VALUES (99)")

    with pytest.raises(
        sqlite3.Error, match=f"schema version 99, newer than this receiver's {len(MIGRATIONS)}"
    ):
        open_store(postgres_url)


def held(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every batch row and every record stored with it, in the order stored."""
    with psycopg.connect(url) as db:
        rows = {
            "batches": db.execute("SELECT id, key, body_sha256 FROM batches ORDER BY id").fetchall()
        }
        for table in ("intervals", "events", "samples"):
            rows[table] = db.execute(f"SELECT batch_id, record FROM {table} ORDER BY id").fetchall()
    return rows


def test_batches_drawn_from_the_published_schema_are_stored_exactly(
    client: httpx.Client, postgres_url: str
) -> None:
    """The fuzz of test_fuzz.py, on PostgreSQL: a body the schema allows (any text, any
    number) is stored record for record or refused with a 4xx, never a 5xx; a refusal
    leaves nothing behind."""
    schema = client.get("/api/v1/schema", headers=AUTH).json()
    zones = st.sampled_from(["Asia/Shanghai", "UTC", "Pacific/Kiritimati"])
    statuses: set[int] = set()

    @settings(
        max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
    )
    @given(document=from_schema(schema, {"GatewayTags.timezone": zones}))
    def post_one(document: dict[str, Any]) -> None:
        before = held(postgres_url)
        body = json.dumps(document, ensure_ascii=False).encode()
        answer = client.post(
            "/api/v1/batches",
            content=body,
            headers={"Idempotency-Key": key(document), **AUTH},
        )
        statuses.add(answer.status_code)
        after = held(postgres_url)
        assert answer.status_code < 500, answer.text
        if answer.status_code != 200 or answer.json()["status"] == "duplicate":
            assert after == before
            return
        result = answer.json()
        (new,) = [b for b in after["batches"] if b not in before["batches"]]
        assert new[1:] == (result["key"], hashlib.sha256(body).hexdigest())
        for table in ("intervals", "events", "samples"):
            mine = [json.loads(record) for batch_id, record in after[table] if batch_id == new[0]]
            assert len(mine) == result[table]
            assert all(record in document.get(table, []) for record in mine)

    post_one()
    assert 200 in statuses  # the fuzz reached the store, not only the validation
