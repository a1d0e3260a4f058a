"""Keeping the buffer inside `buffer.max_size`, and what to give up when it is full.

The cap is SQLite's own `max_page_count`, so a capped buffer and a full disk
fail the same way (SQLITE_FULL) and take the same path: raw samples go first,
oldest first; then, only with `buffer.drop_synced`, the oldest records every
active destination already has (see buffer._cursors); unsynced intervals and
events never. Whatever is dropped is counted in the `losses` table in the
transaction that drops it, and a `buffer_full` event says so with the next
write. When nothing more may go, the write is refused and the agent holds it
in memory, except its events: an alarm raised then must survive a kill, so
events (with the counter state that records what they did) get a small room
beyond the cap, EVENT_PAGES; the sync path's reserve lies beyond that. Pages
either gains stay in the file (SQLite never sets the cap below the file's
size), so later writes may use what they have left: the file still never
grows past the cap and the two reserves.

Space freed by a delete goes to SQLite's freelist and is reused by the next
inserts; the file does not shrink (no VACUUM: rewriting gigabytes on an
industrial PC's flash to give back space we will need again is no bargain).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

NEAR_FULL = 0.9  # share of max_size at which a buffer_near_full event warns
NEAR_FULL_CLEARED = 0.5  # ... and below which it may warn again (dropping frees ~10%)
FREE_SHARE = 0.1  # a full buffer frees this share of its pages at once, not a page per write
BALLAST = 4 << 20  # disk kept in reserve for a full disk: one WAL's worth (1000 pages)
SMALL_WAL_PAGES = 64  # WAL checkpoint interval once the disk was found full
EVENT_PAGES = 32  # beyond the cap, for events a full buffer refused (128 KB: hundreds)
RESERVE_PAGES = 64  # beyond those, for the sync path only (256 KB with 4 KB pages)
CHUNK = 2000  # rows per delete: short transactions, so polls never wait long behind one
MAX_CHUNKS = 25  # per attempt to make room: the writer thread is back to the polls soon
REPORT_EVERY = 3600.0  # a buffer dropping samples steadily says so hourly, not per delete

KEPT = (  # a quarantined batch's records stay for an operator to resend
    "SELECT 1 FROM batches b WHERE b.status = 'rejected' AND {0}.seq BETWEEN b.{0}_lo AND b.{0}_hi"
)


def is_full(exc: BaseException) -> bool:
    """SQLITE_FULL (the cap, or the disk) or ENOSPC from the file system."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
            "disk is full" in str(exc)
        )
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


@dataclass(slots=True)
class Freed:
    """What one attempt to make room dropped."""

    samples: int = 0
    synced: int = 0
    oldest: float | None = None  # the oldest dropped record's time
    newest: float | None = None

    def __bool__(self) -> bool:
        return bool(self.samples or self.synced)

    def add(self, other: Freed) -> None:
        self.samples += other.samples
        self.synced += other.synced
        for ts in (other.oldest, other.newest):
            if ts is not None:
                self.oldest = ts if self.oldest is None else min(self.oldest, ts)
                self.newest = ts if self.newest is None else max(self.newest, ts)

    def describe(self) -> str:
        parts = []
        if self.samples:
            parts.append(f"{self.samples} raw samples")
        if self.synced:
            parts.append(f"{self.synced} synced records")
        return " and ".join(parts) or "nothing"


@dataclass(slots=True)
class Level:
    """How full the buffer is, in pages."""

    page_size: int
    pages: int  # in the file
    free: int  # on the freelist, reusable
    max_pages: int | None

    @property
    def used_bytes(self) -> int:
        return (self.pages - self.free) * self.page_size

    @property
    def share(self) -> float | None:
        return (self.pages - self.free) / self.max_pages if self.max_pages else None


@dataclass(slots=True)
class Room:
    """The cap of one buffer, and its state while full."""

    max_size: int | None
    drop_synced: bool
    max_pages: int | None = None
    near_full: bool = False
    full_since: float | None = None  # refused writes since then (held by the agent)
    refused: int = 0
    ballast: Path | None = None  # see lay_ballast
    unreported: Freed = field(default_factory=lambda: Freed())  # dropped since the last event
    last_report: float = 0.0

    def apply(self, conn: sqlite3.Connection) -> None:
        """Set the cap on this connection (SQLite keeps it at least at the current size)."""
        if self.max_size is None:
            return
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        want = max(1, self.max_size // page_size)
        self.max_pages = conn.execute(f"PRAGMA max_page_count = {want}").fetchone()[0]


def lay_ballast(room: Room, db_path: Path) -> None:
    """Reserve disk space next to the buffer (allocated, never written: kind to flash).

    On a full disk SQLite cannot even delete: every write, a DELETE too, goes
    through the WAL, which must grow. Giving this file back is what lets the
    buffer drop raw samples and go on (see make_room). It is laid again at the
    next start, or once a write succeeds while the disk has room for it twice.
    """
    path = db_path.with_name(db_path.name + "-reserve")
    room.ballast = path
    if path.exists():
        return
    try:
        if shutil.disk_usage(path.parent).free < 2 * BALLAST:
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, BALLAST)
        finally:
            os.close(fd)
    except OSError:
        path.unlink(missing_ok=True)  # no room, or a file system without fallocate


def release_ballast(room: Room) -> bool:
    if room.ballast is None or not room.ballast.exists():
        return False
    room.ballast.unlink()
    log.warning("disk full: released %s (%d MB) to make room", room.ballast, BALLAST >> 20)
    return True


def disk_full(conn: sqlite3.Connection, room: Room) -> bool:
    """SQLITE_FULL well below the cap: the disk, not max_size, is full."""
    return room.max_pages is None or level(conn, room).pages + 16 < room.max_pages


def level(conn: sqlite3.Connection, room: Room) -> Level:
    """One statement: it runs after every commit (see Store._watch_level)."""
    page_size, pages, free = conn.execute(
        "SELECT * FROM pragma_page_size(), pragma_page_count(), pragma_freelist_count()"
    ).fetchone()
    return Level(page_size, pages, free, room.max_pages)


def make_room(
    conn: sqlite3.Connection, room: Room, freed: Freed, synced: Callable[[str], str]
) -> Freed:
    """Drop what may be dropped, in short transactions, until a tenth of the buffer is free;
    `freed` counts what went, also when a full disk stops the deletes half way.

    `synced(table)` is the SQL condition of the records no destination waits for and no
    quarantine keeps (Store._synced): only those go, and only with drop_synced."""
    now = level(conn, room)
    target = max(8, int((room.max_pages or now.pages) * FREE_SHARE))
    if disk_full(conn, room):
        release_ballast(room)
        # From now on keep the WAL small (checkpoint every 64 pages, the file cut back to
        # 1 MB) and give its disk back: on a full disk the WAL must not eat the room the
        # checkpoints need, and the pages freed below are reused instead of new ones.
        conn.execute(f"PRAGMA wal_autocheckpoint = {SMALL_WAL_PAGES}")
        conn.execute("PRAGMA journal_size_limit = 1048576")
        with contextlib.suppress(sqlite3.Error):
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        target = max(target, SMALL_WAL_PAGES)
    chunks = 0

    def more() -> bool:
        return chunks < MAX_CHUNKS and conn.execute("PRAGMA freelist_count").fetchone()[0] < target

    while more():
        chunks += 1
        if not _drop_chunk(conn, freed, "samples", "id", "ts", "1"):
            break
    if not room.drop_synced:
        return freed
    for table, ts in (("intervals", "start"), ("events", "ts")):
        where = synced(table)
        while more():
            chunks += 1
            if not _drop_chunk(conn, freed, table, "seq", ts, where):
                break
    return freed


def _drop_chunk(
    conn: sqlite3.Connection, freed: Freed, table: str, key: str, ts: str, where: str
) -> int:
    """Delete the oldest CHUNK rows of `table` matching `where`, counted, in one transaction."""
    span = conn.execute(
        f"SELECT count(*), min({ts}), max({ts}), max({key}) FROM"
        f" (SELECT {key}, {ts} FROM {table} WHERE {where} ORDER BY {key} LIMIT {CHUNK})"
    ).fetchone()
    n, oldest, newest, last = span
    if not n:
        return 0
    kind = "samples" if table == "samples" else "synced"
    conn.execute("BEGIN")
    try:
        conn.execute(f"DELETE FROM {table} WHERE {key} <= ? AND {where}", [last])
        if table == "intervals":  # their batches are gone with them
            conn.execute("DELETE FROM batches WHERE status = 'acked' AND intervals_hi <= ?", [last])
        conn.execute(
            "INSERT INTO losses VALUES (?, ?, ?) ON CONFLICT (kind) DO UPDATE"
            " SET records = records + excluded.records, last = excluded.last",
            [kind, n, time.time()],
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLITE_FULL may have rolled it back already
            conn.execute("ROLLBACK")
        raise
    setattr(freed, kind, getattr(freed, kind) + n)
    freed.oldest = oldest if freed.oldest is None else min(freed.oldest, oldest)
    freed.newest = newest if freed.newest is None else max(freed.newest, newest)
    return n
