"""Where PostgreSQL's time goes in the receiver's interval insert: JSON, or the insert.

The receiver hands PostgreSQL each batch's body and one INSERT ... SELECT
(receiver/_postgres_schema.py INSERT_INTERVALS_JSON). Timed here on one
connection, batch by batch into a fresh database, each in its own transaction:

- the SELECT alone (reading the records out of the JSON, counted, not stored);
- the whole INSERT (the same, plus the heap, four indexes and the conflict check);
- COPY of the same rows made in Python (no JSON, no conflict check): the floor.

So "insert minus select" is what storing costs, "select" what the JSON costs.
"""

from __future__ import annotations

import time

import psycopg

from receiver._postgres import PostgresStore
from receiver._postgres_schema import INSERT_INTERVALS_JSON, INTERVAL_COLUMNS, json_parameters
from receiver._request import parse_batch, validate_batch
from receiver._rows import interval_rows

_SELECT = (
    "SELECT count(*) FROM (SELECT"
    + INSERT_INTERVALS_JSON.split("\nSELECT", 1)[1].split("ON CONFLICT")[0]
    + ") AS records"
)
_NAMES = ", ".join(["batch_id", *(name for name, _ in INTERVAL_COLUMNS)])


def split(url: str, bodies: list[bytes]) -> dict[str, float]:
    """Microseconds per interval for each way, over `bodies` (batch documents, JSON)."""
    PostgresStore(url).close()  # the receiver's schema, by its own migrations
    batches = [validate_batch(body) for body in bodies]
    total = sum(len(b.intervals) for b in batches)
    took: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as db:
        ids = [
            db.execute(
                "INSERT INTO batches (key, gateway, sequence, schema_version, factor_set,"
                " received_at, body_sha256) VALUES (%s, 'bench', 1, 1, 'x', 'x', 'x')"
                " RETURNING id",
                (f"split:{n}",),
            ).fetchone()[0]  # type: ignore[index]
            for n in range(len(bodies))
        ]
        parameters = [{"batch_id": batch_id, **json_parameters(b.gateway, body.decode())}
                      for b, batch_id, body in zip(batches, ids, bodies, strict=True)]  # fmt: skip
        began = time.perf_counter()
        for p in parameters:
            db.execute(_SELECT, p)
        took["the SELECT alone (records out of the JSON)"] = time.perf_counter() - began
        began = time.perf_counter()
        for p in parameters:
            db.execute(INSERT_INTERVALS_JSON, p)
        took["the whole INSERT ... SELECT ON CONFLICT"] = time.perf_counter() - began
        db.execute("TRUNCATE intervals")
        rows = [interval_rows(*parse_batch(body)) for body in bodies]
        began = time.perf_counter()
        for batch_id, batch_rows in zip(ids, rows, strict=True):
            with (
                db.transaction(),
                db.cursor().copy(f"COPY intervals ({_NAMES}) FROM STDIN") as copy,
            ):
                for row in batch_rows:
                    copy.write_row((batch_id, *row))
        took["COPY of the rows made in Python (the floor)"] = time.perf_counter() - began
    return {name: 1e6 * seconds / total for name, seconds in took.items()}
