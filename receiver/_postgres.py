"""The receiver's PostgreSQL store: the SQLite store's tables and answers, for several processes.

Several receivers behind a load balancer may write one database at once, so
every guarantee the SQLite store gets from its one writer lock is made here by
the database itself:

- a batch key is UNIQUE, and `INSERT ... ON CONFLICT DO NOTHING` on it makes
  the second of two concurrent copies wait for the first to commit and then
  see it (PostgreSQL 15 documentation, "INSERT", "ON CONFLICT Clause");
- each record's natural key is UNIQUE too, and its rows are inserted in one
  transaction per batch with ON CONFLICT DO NOTHING, so a record that two
  batches carry is stored once whichever commits first;
- rows are inserted in the order of their natural key, so two transactions
  that carry the same records take their locks in the same order and do not
  deadlock; a deadlock or serialization failure still found is retried.

The schema is created and migrated by the first receiver to start, under an
advisory lock (PostgreSQL 15 documentation, 13.3 "Explicit Locking", 13.3.5
"Advisory Locks"), so two starting at once do not both migrate.

Intervals, nearly all of a batch, go in by one INSERT ... SELECT in which
PostgreSQL reads them from the body as sent (receiver._postgres_schema,
INSERT_INTERVALS_JSON): Python validates the body once and does no per-record
work. Building 24 parameters a row in Python, then executemany, cost the
receiver nearly four times the CPU (bench/RESULTS.md, "A region's day"). Events and
samples, a few a batch, still go by executemany, which psycopg 3 pipelines.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from domain.batch import Batch
from receiver._postgres_schema import (
    INSERT_EVENTS,
    INSERT_INTERVALS_JSON,
    INSERT_SAMPLES,
    MIGRATIONS,
    json_parameters,
    nul_characters,
)
from receiver._queries import StoreReads
from receiver._request import Refused
from receiver._rows import event_rows, sample_rows
from receiver._store import KeyConflict, Stored

logger = logging.getLogger("edge_agent.receiver")

# Any 64-bit number unlikely to be another application's advisory lock: "edge" in ASCII.
_MIGRATION_LOCK = 0x65646765
POOL_WAIT = 10.0  # s a request waits for a connection, then is answered 503 (a test shortens it)


class StoreUnavailable(sqlite3.OperationalError):
    """The database cannot be reached or is closed: the batch is fine, send it again later.

    A subclass of sqlite3.OperationalError so that the HTTP side, which answers
    that error 503 with Retry-After, treats both stores alike.
    """


class PostgresStore(StoreReads):
    """One receiver database on a PostgreSQL server, shared with other receiver processes.

    `conninfo` is a libpq URL (open_store routes only those here); a password comes from
    PGPASSWORD or PGPASSFILE (libpq reads both), never from the command line.
    """

    _MARK = "%s"  # psycopg's

    def __init__(self, conninfo: str, *, max_connections: int = 8) -> None:
        try:
            # One plain connection first: a wrong password or host fails at once with
            # libpq's own words, where the pool would retry until its timeout.
            psycopg.connect(conninfo, connect_timeout=10).close()
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot reach the database: {exc}".strip()) from exc
        self._pool: ConnectionPool | None = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=max_connections,
            open=False,
            name="receiver",
            # a connection the server dropped (a restart, a failover) is found and replaced
            # before a batch is given to it, instead of failing that batch
            check=ConnectionPool.check_connection,
            timeout=POOL_WAIT,
        )
        try:
            self._pool.open(wait=True, timeout=30)
            self._migrate()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self._pool.close()
            raise StoreUnavailable(f"cannot reach the database: {exc}") from exc
        except psycopg.Error as exc:  # no right to create tables, say
            self._pool.close()
            raise StoreUnavailable(f"cannot prepare the database: {exc}") from exc
        except BaseException:
            self._pool.close()
            raise

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _open(self) -> ConnectionPool:
        if self._pool is None:
            raise StoreUnavailable("the receiver store is closed")
        return self._pool

    def _migrate(self) -> None:
        """Bring the schema to the newest version, one receiver at a time."""
        with self._open().connection() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (version INTEGER NOT NULL, migrated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            current = row[0] if row is not None and row[0] is not None else 0
            if current > len(MIGRATIONS):
                raise StoreUnavailable(
                    f"the database is at schema version {current}, newer than this receiver's"
                    f" {len(MIGRATIONS)}: run the newer receiver, or another database"
                )
            for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
                db.execute(step)
                db.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
                logger.info("receiver database migrated to schema version %d", version)

    def put(
        self,
        key: str,
        batch: Batch,
        document: dict[str, Any] | None,
        digest: str,
        *,
        body: bytes | None = None,
    ) -> Stored | None:
        """Store a batch and its records in one transaction; None if the key is already held.

        `body` is the JSON the batch was validated from; given it, `document` (the same
        JSON parsed) may be None and is parsed here only when needed (events, samples, or
        a suspected NUL). Raises KeyConflict for a known key with another body, like the
        SQLite store, and Refused (422) for text PostgreSQL cannot hold, before anything
        is stored.
        """
        if body is None:
            if document is None:
                raise TypeError("put needs the batch's document or its body")
            body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        # JSON can carry U+0000 only as the escape \u0000: no escape, nothing to look for
        if document is None and (b"\\u0000" in body or batch.events or batch.samples):
            document = json.loads(body)
        if document is not None:
            nul = nul_characters(document)
            if nul:
                raise Refused(
                    422, "batch holds text this receiver's database cannot store", errors=nul
                )
        tags = batch.gateway
        events = event_rows(batch, document) if document is not None and batch.events else []
        samples = sample_rows(batch, document) if document is not None and batch.samples else []
        head = (
            key,
            tags.id,
            batch.sequence,
            batch.schema_version,
            batch.factor_set,
            datetime.now(UTC).isoformat(timespec="milliseconds"),
            digest,
        )
        try:
            intervals = json_parameters(tags, body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise Refused(400, f"body is not UTF-8: {exc}") from None
        try:
            return self._put(head, intervals, len(batch.intervals), events, samples)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"the database: {exc}") from exc
        except psycopg.DataError as exc:  # data PostgreSQL refuses (22xxx): never better
            raise Refused(422, f"batch holds data this receiver's database refuses: {exc}") from exc

    @retry(
        retry=retry_if_exception_type(
            (errors.DeadlockDetected, errors.SerializationFailure, errors.LockNotAvailable)
        ),
        stop=stop_after_attempt(5),
        wait=wait_random_exponential(multiplier=0.05, max=1.0),
        reraise=True,
    )
    def _put(
        self,
        head: tuple[Any, ...],
        intervals: dict[str, Any],
        count: int,
        events: Sequence[tuple[Any, ...]],
        samples: Sequence[tuple[Any, ...]],
    ) -> Stored | None:
        key, digest = head[0], head[-1]
        with self._open().connection() as db, db.transaction(), db.cursor() as cursor:
            cursor.execute(
                "INSERT INTO batches (key, gateway, sequence, schema_version, factor_set,"
                " received_at, body_sha256) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (key) DO NOTHING RETURNING id",
                head,
            )
            row = cursor.fetchone()
            if row is None:
                # Another transaction holds the key; ON CONFLICT waited for it to commit.
                cursor.execute("SELECT body_sha256 FROM batches WHERE key = %s", (key,))
                known = cursor.fetchone()
                if known is not None and known[0] != digest:
                    raise KeyConflict(key)
                return None
            batch_id = row[0]
            new: list[int] = [0, 0, 0]
            if count:
                cursor.execute(INSERT_INTERVALS_JSON, {"batch_id": batch_id, **intervals})
                new[0] = cursor.rowcount  # the rows not skipped
            for n, sql, rows in ((1, INSERT_EVENTS, events), (2, INSERT_SAMPLES, samples)):
                if rows:
                    cursor.executemany(sql, [(batch_id, *row) for row in rows])
                    # executemany's rowcount is the sum over the rows: those not skipped
                    new[n] = cursor.rowcount
            stored = Stored(
                intervals=new[0],
                events=new[1],
                samples=new[2],
                duplicate_records=count + len(events) + len(samples) - sum(new),
            )
            cursor.execute(
                "UPDATE batches SET intervals = %s, events = %s, samples = %s,"
                " duplicate_records = %s WHERE id = %s",
                (
                    stored.intervals,
                    stored.events,
                    stored.samples,
                    stored.duplicate_records,
                    batch_id,
                ),
            )
        return stored

    def _read(self, sql: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            with self._open().connection() as db:
                return db.execute(sql, parameters).fetchall()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"the database: {exc}") from exc

    def _rows(self, sql: str, parameters: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        """Like `_read`, row by row through a server-side cursor, for long answers."""
        try:
            with (
                self._open().connection() as db,
                db.transaction(),
                db.cursor(name="receiver_rows") as cursor,
            ):
                cursor.itersize = 10_000
                cursor.execute(sql, parameters)
                yield from cursor
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(f"the database: {exc}") from exc
