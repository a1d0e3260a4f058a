"""The buffer's schema, its version, and the steps that bring an older file up to date.

The version is SQLite's `user_version`, read at every open. A buffer lives
for years on a plant PC and outlives the release that made it, so:

- a new, empty file gets the current schema at once, in one transaction;
- an older file is migrated in place, one version at a time, each step in
  one transaction with the version bump inside it: a crash or an error half
  way leaves the file at its old version, still usable by the old release;
- a file newer than this build is refused with BufferTooNew and left exactly
  as it is (not even its journal mode is touched): it is sound, so it must not
  be taken for damaged and moved aside, and an older build must not write
  into a layout it does not know.

Version 1 is the layout of every release before versions were read (it wrote
`user_version = 1` at each open). Version 2 gives each destination its own
cursor (table `destinations`) and each batch its destination. Version 3 keeps each
factor once (table `factors`; a record names it by number, `intervals.factor`, see
buffer/_factors.py) and indexes the interval records that carry statistics
(`intervals_stats`, a partial index: only those rows are in it), so a batch without
any is sent as read, without a search through its text (buffer/_outbox.py).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from domain.errors import BufferTooNew

__all__ = ["SCHEMA", "SCHEMA_VERSION", "file_version", "refuse_newer", "refuse_unknown", "upgrade"]

SCHEMA_VERSION = 3

# One CREATE statement per table, shared by a new file and the migrations, so a migrated
# file has exactly the schema of a new one (tests/buffer/test_migrations.py compares them).
_TABLES = {
    # `factor` last, written as ALTER TABLE ADD COLUMN leaves version 2's table
    "intervals": """CREATE TABLE intervals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL, start REAL NOT NULL, length REAL NOT NULL, body TEXT NOT NULL"""
    ", factor INTEGER)",
    "factors": """CREATE TABLE factors (
    ref INTEGER PRIMARY KEY, json TEXT NOT NULL UNIQUE)""",
    "events": """CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL, device TEXT, kind TEXT NOT NULL, severity TEXT NOT NULL,
    message TEXT NOT NULL)""",
    "samples": """CREATE TABLE samples (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, point TEXT NOT NULL, ts REAL NOT NULL,
    value REAL, unit TEXT, quality TEXT NOT NULL)""",
    "counters": """CREATE TABLE counters (
    key TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL NOT NULL)""",
    # One global sequence for every destination's batches: each key <gateway>:<seq> is
    # unique. `not_before` is the destination's age limit as it stood when the batch was
    # assigned (records older are not owed to it), so a resend reads the same records.
    "batches": """CREATE TABLE batches (
    seq INTEGER PRIMARY KEY, destination TEXT NOT NULL, created REAL NOT NULL,
    header TEXT NOT NULL,
    events_lo INTEGER NOT NULL, events_hi INTEGER NOT NULL,
    intervals_lo INTEGER NOT NULL, intervals_hi INTEGER NOT NULL, not_before REAL,
    status TEXT NOT NULL, finished REAL, reason TEXT)""",
    "losses": """CREATE TABLE losses (
    kind TEXT PRIMARY KEY, records INTEGER NOT NULL, last REAL NOT NULL)""",
    # everything up to events_acked / intervals_acked is done for this destination
    # (acknowledged, or quarantined in one of its rejected batches)
    "destinations": """CREATE TABLE destinations (
    name TEXT PRIMARY KEY, events_acked INTEGER NOT NULL, intervals_acked INTEGER NOT NULL,
    added REAL NOT NULL)""",
    "sync_state": """CREATE TABLE sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1), next_batch INTEGER NOT NULL)""",
}
_INDEXES = (
    "CREATE INDEX samples_ts ON samples (ts)",
    "CREATE INDEX batches_destination ON batches (destination, status, seq)",
    # what buffer/_ranges.py `with_stats` asks, term for term (so SQLite uses this index)
    """CREATE INDEX intervals_stats ON intervals (seq) WHERE instr(body, '"stats"') > 0""",
)
SCHEMA = ";\n".join([*_TABLES.values(), *_INDEXES]) + ";\n"

# The last layout of version 1 (commit b95e8ae), with IF NOT EXISTS as that release ran it
# at every open: a version 1 file from an early build may lack a table added later.
_V1 = """
CREATE TABLE IF NOT EXISTS intervals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL, start REAL NOT NULL, length REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL, device TEXT, kind TEXT NOT NULL, severity TEXT NOT NULL,
    message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, point TEXT NOT NULL, ts REAL NOT NULL,
    value REAL, unit TEXT, quality TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS samples_ts ON samples (ts);
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY, created REAL NOT NULL, header TEXT NOT NULL,
    events_lo INTEGER NOT NULL, events_hi INTEGER NOT NULL,
    intervals_lo INTEGER NOT NULL, intervals_hi INTEGER NOT NULL,
    status TEXT NOT NULL, finished REAL, reason TEXT);
CREATE TABLE IF NOT EXISTS losses (
    kind TEXT PRIMARY KEY, records INTEGER NOT NULL, last REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sync_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    events_acked INTEGER NOT NULL, intervals_acked INTEGER NOT NULL,
    next_batch INTEGER NOT NULL);
"""


def _run(conn: sqlite3.Connection, script: str) -> None:
    """Statement by statement: `executescript` would commit the step's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """The single cursor becomes the cursor of destination "sync" (the HTTP uplink
    configured under `sync:`), and every batch so far (pending, acked, rejected) its batch.

    The old cursor columns are dropped, not kept beside the new table: an older release
    that opened the file anyway would then fail at once on its first statement, instead
    of running on a cursor frozen at the migration and sending everything since again.
    Tables are rebuilt rather than altered (ALTER TABLE DROP COLUMN needs SQLite 3.35;
    Debian 11 has 3.34), which also gives the migrated file the new file's exact schema.
    """
    _run(conn, _V1)
    _run(conn, _TABLES["destinations"])
    conn.execute(
        "INSERT INTO destinations (name, events_acked, intervals_acked, added)"
        " SELECT 'sync', events_acked, intervals_acked, ? FROM sync_state",
        [time.time()],
    )
    conn.execute("ALTER TABLE batches RENAME TO batches_v1")
    conn.execute(_TABLES["batches"])
    conn.execute(
        "INSERT INTO batches (seq, destination, created, header, events_lo, events_hi,"
        " intervals_lo, intervals_hi, not_before, status, finished, reason)"
        " SELECT seq, 'sync', created, header, events_lo, events_hi,"
        " intervals_lo, intervals_hi, NULL, status, finished, reason FROM batches_v1"
    )
    conn.execute("DROP TABLE batches_v1")
    conn.execute(_INDEXES[1])
    conn.execute("ALTER TABLE sync_state RENAME TO sync_state_v1")
    conn.execute(_TABLES["sync_state"])
    conn.execute("INSERT INTO sync_state (id, next_batch) SELECT id, next_batch FROM sync_state_v1")
    conn.execute("DROP TABLE sync_state_v1")


def _v2_to_v3(conn: sqlite3.Connection) -> None:
    """The factors' table, each record's factor number (NULL for the records already
    there: their factor is inline), and the index of the records with statistics, built
    over what the file holds."""
    conn.execute(_TABLES["factors"])
    conn.execute("ALTER TABLE intervals ADD COLUMN factor INTEGER")
    conn.execute(_INDEXES[2])


# STEPS[n] takes a file from version n to n + 1.
STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3}


def file_version(path: Path) -> int | None:
    """The user_version in the file's header, read as bytes (no SQLite, no side files);
    None when the file is absent, empty or no SQLite database. A version written to a WAL
    not yet checkpointed is not seen here: `upgrade` reads it again through SQLite."""
    try:
        with path.open("rb") as f:
            header = f.read(100)
    except OSError:
        return None
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        return None
    return int.from_bytes(header[60:64], "big", signed=True)


def refuse_newer(path: Path, version: int | None) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise BufferTooNew(str(path), version, SCHEMA_VERSION)


def refuse_unknown(conn: sqlite3.Connection, path: Path) -> int:
    """The version of the open file at `path`, read through SQLite (so also from a WAL);
    raises, before anything is written, for a newer buffer or a database that is none."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    refuse_newer(path, found)
    if found == 0:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        if tables:
            raise sqlite3.DatabaseError(
                f"{path} is an SQLite database but not an edge-agent buffer (no schema "
                f"version; tables {', '.join(sorted(tables))}): point buffer.path elsewhere"
            )
    return found


def upgrade(conn: sqlite3.Connection, found: int, *, first_batch: int) -> None:
    """Bring the open, writable buffer from version `found` (as `refuse_unknown` read it)
    to SCHEMA_VERSION. A new file starts its batch numbers at `first_batch`. Each step
    checks the version again inside its transaction."""
    if found == 0:
        _in_one_transaction(conn, 0, SCHEMA_VERSION, lambda c: _create(c, first_batch))
        return
    for version in range(found, SCHEMA_VERSION):
        _in_one_transaction(conn, version, version + 1, STEPS[version])


def _create(conn: sqlite3.Connection, first_batch: int) -> None:
    _run(conn, SCHEMA)
    conn.execute("INSERT INTO sync_state (id, next_batch) VALUES (1, ?)", [first_batch])


def _in_one_transaction(
    conn: sqlite3.Connection, old: int, new: int, step: Callable[[sqlite3.Connection], None]
) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] != old:
            raise sqlite3.OperationalError("another process changed the buffer's version")
        step(conn)
        conn.execute(f"PRAGMA user_version = {new}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
