"""The receiver's HTTP side on a PostgreSQL store: the same answers as on SQLite, and the
answers only PostgreSQL needs (text it cannot hold, a connection lost)."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from receiver import Receiver
from receiver._backends import open_store
from receiver._postgres import MIGRATIONS
from tests.fixtures.batches import batch, interval, key, series

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


@pytest.mark.slow  # the pool waits its 10 s for a connection before the 503
def test_dropped_connections_are_replaced_and_a_database_away_is_503(
    client: httpx.Client, postgres_url: str
) -> None:
    """The server cuts every connection (a restart): the next POST is stored all the same on a
    fresh one. The database refusing connections: 503 with Retry-After (the agent sends
    again), and stored once it is back."""
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
