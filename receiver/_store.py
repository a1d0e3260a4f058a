"""The receiver's SQLite store: batches, and the records they carried.

Two keys make re-sending harmless. A batch key ('<gateway>:<sequence>') is
UNIQUE, so a batch is stored at most once whatever the timing; and each record
has its own natural key, so a record that reaches us in two different batches
(an agent that re-batched its backlog after a crash) is still counted once.

Writes go through one connection and one lock; reads open their own short-lived
connection, which WAL lets run beside a write. The summary's totals count each
device's energy once across interval lengths (receiver._totals).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.batch import Batch
from receiver._queries import StoreReads
from receiver._rows import rows

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    gateway TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    schema_version INTEGER NOT NULL,
    factor_set TEXT NOT NULL,
    received_at TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    intervals INTEGER NOT NULL DEFAULT 0,
    events INTEGER NOT NULL DEFAULT 0,
    samples INTEGER NOT NULL DEFAULT 0,
    duplicate_records INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS intervals (
    id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batches (id),
    gateway TEXT NOT NULL,
    enterprise_id TEXT NOT NULL,
    region_code TEXT NOT NULL,
    industry_code TEXT NOT NULL,
    timezone TEXT NOT NULL,
    device TEXT NOT NULL,
    carrier TEXT NOT NULL,
    start_text TEXT NOT NULL,
    end_text TEXT NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    duration_s REAL NOT NULL,
    local_date TEXT NOT NULL,
    quantity REAL NOT NULL,
    unit TEXT NOT NULL,
    kwh REAL,
    tce_kg REAL,
    co2_kg REAL,
    scope INTEGER,
    factor_id TEXT,
    coverage REAL NOT NULL,
    quality TEXT NOT NULL,
    record TEXT NOT NULL,
    UNIQUE (gateway, device, carrier, start_s, end_s)
);
CREATE INDEX IF NOT EXISTS intervals_device_start ON intervals (device, start_s);
CREATE INDEX IF NOT EXISTS intervals_local_date ON intervals (local_date);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batches (id),
    gateway TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    ts_text TEXT NOT NULL,
    ts_s REAL NOT NULL,
    device TEXT,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    record TEXT NOT NULL,
    UNIQUE (gateway, event_id)
);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batches (id),
    gateway TEXT NOT NULL,
    device TEXT NOT NULL,
    point TEXT NOT NULL,
    ts_text TEXT NOT NULL,
    ts_s REAL NOT NULL,
    value REAL,
    unit TEXT NOT NULL,
    quality TEXT NOT NULL,
    record TEXT NOT NULL,
    UNIQUE (gateway, device, point, ts_s)
);
"""


class KeyConflict(Exception):
    """A known Idempotency-Key with a different body: two batches claim one key."""


@dataclass(frozen=True)
class Stored:
    """What one accepted batch added: new records, and records already held."""

    intervals: int
    events: int
    samples: int
    duplicate_records: int


class Store(StoreReads):
    """One receiver database file; its reads are receiver._queries.StoreReads'."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = self._connect()
        try:
            # synchronous=FULL: an acknowledged batch is never re-sent, so it
            # must survive a power cut on the receiver too.
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)
        except BaseException:
            self._db.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are opened explicitly, and only
        # where a write needs one.
        return sqlite3.connect(
            self._path, timeout=30, isolation_level=None, check_same_thread=False
        )

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def put(self, key: str, batch: Batch, document: dict[str, Any], digest: str) -> Stored | None:
        """Store a batch and its records in one transaction; None if the key is already held.

        `document` is the batch as parsed from JSON, so records are kept as
        received, fields unknown to this schema version included.
        """
        tags = batch.gateway
        intervals, events, samples = rows(batch, document)
        received_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self._lock:
            db = self._open()
            db.execute("BEGIN IMMEDIATE")
            try:
                try:
                    cursor = db.execute(
                        "INSERT INTO batches (key, gateway, sequence, schema_version, factor_set,"
                        " received_at, body_sha256) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            key,
                            tags.id,
                            batch.sequence,
                            batch.schema_version,
                            batch.factor_set,
                            received_at,
                            digest,
                        ),
                    )
                except sqlite3.IntegrityError as exc:
                    if "batches.key" not in str(exc):
                        raise
                    (known,) = db.execute(
                        "SELECT body_sha256 FROM batches WHERE key = ?", (key,)
                    ).fetchone()
                    db.execute("ROLLBACK")
                    if known != digest:
                        raise KeyConflict(key) from None
                    return None
                batch_id = cursor.lastrowid
                new_intervals = self._insert(
                    db,
                    "INSERT OR IGNORE INTO intervals (batch_id, gateway, enterprise_id,"
                    " region_code, industry_code, timezone, device, carrier, start_text,"
                    " end_text, start_s, end_s, duration_s, local_date, quantity, unit, kwh,"
                    " tce_kg, co2_kg, scope, factor_id, coverage, quality, record)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                    " ?, ?)",
                    batch_id,
                    intervals,
                )
                new_events = self._insert(
                    db,
                    "INSERT OR IGNORE INTO events (batch_id, gateway, event_id, ts_text, ts_s,"
                    " device, kind, severity, message, record)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    batch_id,
                    events,
                )
                new_samples = self._insert(
                    db,
                    "INSERT OR IGNORE INTO samples (batch_id, gateway, device, point, ts_text,"
                    " ts_s, value, unit, quality, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    batch_id,
                    samples,
                )
                stored = Stored(
                    intervals=new_intervals,
                    events=new_events,
                    samples=new_samples,
                    duplicate_records=len(intervals)
                    + len(events)
                    + len(samples)
                    - new_intervals
                    - new_events
                    - new_samples,
                )
                db.execute(
                    "UPDATE batches SET intervals = ?, events = ?, samples = ?,"
                    " duplicate_records = ? WHERE id = ?",
                    (
                        stored.intervals,
                        stored.events,
                        stored.samples,
                        stored.duplicate_records,
                        batch_id,
                    ),
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return stored

    @staticmethod
    def _insert(
        db: sqlite3.Connection, sql: str, batch_id: int | None, rows: Sequence[tuple[Any, ...]]
    ) -> int:
        """Insert rows but those whose natural key is already held; how many were new."""
        if not rows:
            return 0
        cursor = db.executemany(sql, ((batch_id, *row) for row in rows))
        return cursor.rowcount

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("the receiver store is closed")
        return self._db

    def _read(self, sql: str, parameters: Iterable[Any]) -> list[tuple[Any, ...]]:
        """Run one query on a connection of its own, so a long read never holds up a write."""
        return list(self._rows(sql, parameters))

    def _rows(self, sql: str, parameters: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
        """Like `_read`, but row by row, for answers too long to hold in memory at once."""
        self._open()
        db = self._connect()
        try:
            yield from db.execute(sql, tuple(parameters))
        finally:
            db.close()
