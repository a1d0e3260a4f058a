"""The receiver fuzzed over real HTTP on 127.0.0.1, from the batch schema it publishes.

Bodies are drawn from GET /api/v1/schema (tests/fixtures/json_schema.py), then
mutated, truncated or replaced by raw bytes. Whatever arrives: never a 5xx, a
2xx stores exactly what the body said (read back from the receiver's SQLite),
anything else stores nothing; no endpoint gives plant data or takes a batch
without the token; a body over the limit is refused before it is read whole,
and a gzip bomb without being inflated in memory. Only HTTP is spoken, so the
tests hold for any server that takes the receiver's place.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import socket
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver import Receiver
from tests.fixtures.batches import batch, event, gzipped, key
from tests.fixtures.json_schema import from_schema

pytestmark = pytest.mark.timeout(60)

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FUZZ = settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ZONES = st.sampled_from(["Asia/Shanghai", "Asia/Chongqing", "UTC", "Pacific/Kiritimati"])
TABLES = ("intervals", "events", "samples")
COLUMNS = {  # the columns the summary and filters read, each a field of the record
    "intervals": ("device", "carrier", "quantity", "unit", "kwh", "co2_kg", "quality"),
    "events": ("device", "kind", "severity", "message"),
    "samples": ("device", "point", "value", "unit", "quality"),
}

printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
"""What a header value may hold."""
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    with Receiver(tmp_path / "fuzz.db", token=TOKEN, max_body=2 * 2**20) as running:
        yield running


@pytest.fixture
def client(receiver: Receiver) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=receiver.url, timeout=10) as http:
        yield http


def batches(client: httpx.Client) -> st.SearchStrategy[dict[str, Any]]:
    """Batches from the schema the receiver publishes; the time zone from a few real ones,
    which the schema cannot list, so that many examples get through to the store."""
    schema = client.get("/api/v1/schema", headers=AUTH).json()
    return from_schema(schema, {"GatewayTags.timezone": ZONES})


def stored_rows(receiver: Receiver) -> dict[str, Any]:
    """Everything the receiver holds: each batch row and the records stored with it."""
    with contextlib.closing(sqlite3.connect(receiver.db_path)) as db:
        columns = "id, key, gateway, sequence, factor_set, body_sha256"
        rows: dict[str, Any] = {
            "batches": db.execute(f"SELECT {columns} FROM batches ORDER BY id").fetchall()
        }
        for table in TABLES:
            query = f"SELECT batch_id, record, {', '.join(COLUMNS[table])} FROM {table} ORDER BY id"
            rows[table] = db.execute(query).fetchall()
    return rows


def send(
    client: httpx.Client, body: bytes, *, framing: str, idempotency_key: str
) -> httpx.Response:
    """POST raw bytes with the token: plain, gzip, or chunked (gzip in pieces)."""
    headers = AUTH | {"Idempotency-Key": idempotency_key}
    if framing == "plain":
        return client.post("/api/v1/batches", content=body, headers=headers)
    headers["Content-Encoding"] = "gzip"
    packed = gzip.compress(body)
    if framing == "gzip":
        return client.post("/api/v1/batches", content=packed, headers=headers)
    pieces = iter([packed[:7], packed[7:100], packed[100:]])
    return client.post("/api/v1/batches", content=pieces, headers=headers)


def check_answer(
    receiver: Receiver, before: dict[str, Any], body: bytes, answer: httpx.Response
) -> None:
    """No 5xx; a refusal stores nothing; a 2xx stored exactly the body's records."""
    assert answer.status_code < 500, answer.text
    after = stored_rows(receiver)
    if answer.status_code != 200:
        assert after == before
        return
    result = answer.json()
    if result["status"] == "duplicate":
        assert after == before
        (known,) = [b for b in before["batches"] if b[1] == result["key"]]
        assert known[5] == hashlib.sha256(body).hexdigest()
        return
    document = json.loads(body)
    (new,) = [b for b in after["batches"] if b not in before["batches"]]
    assert new[1:] == (
        result["key"],
        document["gateway"]["id"],
        document["sequence"],
        document["factor_set"],
        hashlib.sha256(body).hexdigest(),
    )
    held = 0
    for table in TABLES:
        sent = document.get(table, [])
        rows = [row for row in after[table] if row[0] == new[0]]
        mine = [json.loads(row[1]) for row in rows]
        assert all(record in sent for record in mine), table
        for row, record in zip(rows, mine, strict=True):
            said = [record.get(column) for column in COLUMNS[table]]
            assert row[2:] == tuple(float(v) if type(v) is int else v for v in said)  # REAL
        assert len(mine) == result[table]
        assert after[table][: len(before[table])] == before[table]
        held += len(sent) - len(mine)
    assert held == result["duplicate_records"]


def test_batches_drawn_from_the_published_schema_are_stored_exactly(
    receiver: Receiver, client: httpx.Client
) -> None:
    """A body the schema allows is stored record for record, or refused with a 4xx that
    says why (a validator holds more than the schema: end after start), never a 5xx."""
    statuses: set[int] = set()

    @FUZZ
    @given(document=batches(client), framing=st.sampled_from(["plain", "gzip", "chunked"]))
    def post_one(document: dict[str, Any], framing: str) -> None:
        before = stored_rows(receiver)
        body = json.dumps(document, ensure_ascii=False).encode()
        answer = send(client, body, framing=framing, idempotency_key=key(document))
        check_answer(receiver, before, body, answer)
        statuses.add(answer.status_code)

    post_one()
    assert 200 in statuses  # the fuzz reached the store, not only the validation


def mutate(document: Any, data: st.DataObject) -> Any:
    """The document with one value somewhere replaced, one key dropped or one added."""
    if isinstance(document, dict) and document:
        name = data.draw(st.sampled_from(sorted(document)))
        how = data.draw(st.sampled_from(["descend", "replace", "drop", "add"]))
        if how == "descend":
            return document | {name: mutate(document[name], data)}
        if how == "replace":
            return document | {name: data.draw(json_values)}
        if how == "drop":
            return {k: v for k, v in document.items() if k != name}
        return document | {data.draw(st.text(max_size=8)): data.draw(json_values)}
    if isinstance(document, list) and document:
        i = data.draw(st.integers(0, len(document) - 1))
        return [*document[:i], mutate(document[i], data), *document[i + 1 :]]
    return data.draw(json_values)


def test_mutated_truncated_and_garbage_bodies_are_refused_without_storing(
    receiver: Receiver, client: httpx.Client
) -> None:
    """A batch with one field broken, cut short, or bytes that were never JSON: a 4xx
    and nothing stored, unless what is left is a valid batch (then stored exactly)."""

    @FUZZ
    @given(
        document=batches(client),
        data=st.data(),
        framing=st.sampled_from(["plain", "gzip", "chunked"]),
    )
    def post_one(document: dict[str, Any], data: st.DataObject, framing: str) -> None:
        body = json.dumps(document).encode()
        how = data.draw(st.sampled_from(["mutate", "truncate", "garbage"]))
        if how == "mutate":
            body = json.dumps(mutate(document, data)).encode()
        elif how == "truncate":
            body = body[: data.draw(st.integers(0, len(body) - 1))]
        else:
            body = data.draw(st.binary(max_size=200))
        before = stored_rows(receiver)
        idempotency_key = data.draw(
            st.just(key(document)) | st.text(printable, max_size=20).map(str.strip)
        )
        answer = send(client, body, framing=framing, idempotency_key=idempotency_key)
        check_answer(receiver, before, body, answer)

    post_one()


PROTECTED = {
    "/api/v1/batches": {"POST"},
    "/api/v1/intervals": {"GET", "HEAD"},
    "/api/v1/summary": {"GET", "HEAD"},
    "/api/v1/events": {"GET", "HEAD"},
    "/api/v1/schema": {"GET", "HEAD"},
    "/api/v1/openapi.json": {"GET", "HEAD"},
    "/healthz": {"GET", "HEAD"},
}
PUBLIC: dict[str, set[str]] = {}  # none: with a token, every GET needs it (README)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
wrong_credentials = st.one_of(
    st.none(),
    st.just(TOKEN),
    st.just(f"Basic {TOKEN}"),
    st.just("Bearer"),
    st.sampled_from([TOKEN[:-1], TOKEN + "x", TOKEN.upper(), " " + TOKEN[1:]]).map(
        "Bearer {}".format
    ),
    st.text(printable, max_size=30)
    .filter(lambda text: text.strip() != TOKEN)
    .map("Bearer {}".format),
).map(lambda header: header if header is None else header.strip())  # as a header holds it


@pytest.mark.parametrize("path", [*PROTECTED, *PUBLIC, "/api/v1/batches/x", "/"])
def test_no_endpoint_or_method_gives_data_or_takes_a_batch_without_the_token(
    receiver: Receiver, client: httpx.Client, path: str
) -> None:
    """Plant data and the batch endpoint answer 401 to every method they serve unless the
    token is right; other methods 405, other paths 404, and nothing is ever stored. The
    schema, the OpenAPI document and /healthz need the token too (README, "The platform
    side")."""
    document = batch(sequence=7)
    body = gzipped(document)

    @settings(max_examples=15)
    @given(method=st.sampled_from(METHODS), authorization=wrong_credentials)
    def ask(method: str, authorization: str | None) -> None:
        headers = {"Content-Encoding": "gzip", "Idempotency-Key": key(document)}
        if authorization is not None:
            headers["Authorization"] = authorization
        answer = client.request(method, path, content=body, headers=headers)
        served = PROTECTED.get(path, set()) | PUBLIC.get(path, set())
        if method in PROTECTED.get(path, set()):
            assert answer.status_code == 401
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        elif method in served:
            assert answer.status_code == 200
        else:
            assert answer.status_code == (405 if served else 404)

    ask()
    assert stored_rows(receiver)["batches"] == []
    assert client.get("/api/v1/intervals", headers=AUTH).json()["intervals"] == []


def over_the_limit(receiver: Receiver, head: str, first: bytes) -> tuple[bytes, bytes]:
    """Send a POST's head and the first bytes of a body over the limit, nothing more, and
    read the answer: it comes while the rest of the body is still unsent."""
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as conn:
        conn.sendall(head.encode() + first)
        answer = b""
        while b"\r\n\r\n" not in answer:
            piece = conn.recv(4096)
            if not piece:
                break
            answer += piece
    status, _, rest = answer.partition(b"\r\n")
    return status, rest


@pytest.mark.parametrize(
    "framing, first",
    [
        ("Content-Length: {over}", b""),
        ("Content-Length: {over}", b"\x1f\x8b" + bytes(1000)),
        ("Transfer-Encoding: chunked", b"%x\r\n"),  # and the chunk's first limit + 1 bytes
        ("Transfer-Encoding: chunked", b"10000\r\n" + bytes(0x10000) + b"\r\n"),
    ],
    ids=["length-nothing-sent", "length-some-sent", "one-big-chunk", "many-chunks"],
)
def test_a_body_over_the_limit_is_413_before_it_is_read_whole(
    receiver: Receiver, framing: str, first: bytes
) -> None:
    """The declared length, or the chunks announced so far, pass the limit: 413 at once,
    while the sender has sent little or nothing of the body."""
    over = receiver.max_body * 4
    if first == b"%x\r\n":
        # The server reads a chunk's size line itself (uvicorn's h11), not the application:
        # the refusal comes once the chunk's bytes pass the limit, long before its end.
        first = b"%x\r\n" % over + bytes(receiver.max_body + 1)
    elif first.startswith(b"10000"):
        first *= receiver.max_body // 0x10000 + 1
    head = (
        "POST /api/v1/batches HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {TOKEN}\r\nIdempotency-Key: {key(batch())}\r\n"
        f"Content-Encoding: gzip\r\n{framing.format(over=over)}\r\n\r\n"
    )
    status, rest = over_the_limit(receiver, head, first)
    assert status.split(b" ")[:2] == [b"HTTP/1.1", b"413"]
    assert b"connection: close" in rest.lower()
    assert stored_rows(receiver)["batches"] == []


@pytest.mark.parametrize("members", [1, 64], ids=["one-member", "64-members"])
def test_a_gzip_bomb_is_refused_without_being_inflated_in_memory(
    receiver: Receiver, client: httpx.Client, members: int
) -> None:
    """A body well under the limit that inflates to 256 MiB or 1 GiB: 413, and the
    receiver's memory never holds more than a few times the limit meanwhile."""
    inflated = 2**30 if members > 1 else 2**28
    bomb = gzip.compress(bytes(inflated // members), compresslevel=9) * members
    assert len(bomb) < receiver.max_body
    headers = AUTH | {"Content-Encoding": "gzip", "Idempotency-Key": key(batch())}
    tracemalloc.start()
    try:
        answer = client.post("/api/v1/batches", content=bomb, headers=headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 413
    assert "once decompressed" in answer.json()["reason"]
    assert peak < 8 * receiver.max_body  # inflating it would take `inflated` bytes
    assert stored_rows(receiver)["batches"] == []


@pytest.mark.parametrize("event_id", [-(2**63) - 1, 2**63])
def test_an_event_id_sqlite_cannot_hold_is_422_not_500(client: httpx.Client, event_id: int) -> None:
    """Found by the fuzz: an id below -2**63 passed the schema and failed in the store."""
    document = batch(sequence=3, events=[event(1, id=event_id)])
    headers = AUTH | {"Content-Encoding": "gzip", "Idempotency-Key": key(document)}
    answer = client.post("/api/v1/batches", content=gzipped(document), headers=headers)
    assert (answer.status_code, answer.json()["errors"][0]["path"]) == (422, "events[0].id")
