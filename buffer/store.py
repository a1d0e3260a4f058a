"""The SQLite store-and-forward buffer.

Durability: WAL mode with `synchronous=FULL`. In WAL mode `NORMAL` survives a
process crash but a power cut can roll back the last commits, and this buffer
makes a promise ("what `commit` returned for is on disk") that an industrial
PC losing power must keep, so every commit is fsynced. The cost stays small
because the agent commits only what must survive: closed intervals, events
and counter state, normally once per interval per device, not per sample.

Sync bookkeeping: records get an ever-increasing `seq` (AUTOINCREMENT, so a
pruned number is never reused). A batch is a persisted pair of seq ranges
(events, intervals) assigned before its first send; re-reading the ranges
after a crash gives the same records again, and the acknowledged cursors move
in the same transaction that closes the batch.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from buffer import _recover
from buffer._room import (
    CHUNK,
    KEPT,
    NEAR_FULL,
    NEAR_FULL_CLEARED,
    REPORT_EVERY,
    RESERVE_PAGES,
    Freed,
    Room,
    disk_full,
    is_full,
    lay_ballast,
    level,
    make_room,
)
from domain.errors import BufferFull
from domain.records import Commit, EventRow

log = logging.getLogger(__name__)
T = TypeVar("T")
# made once: the poll path encodes every device's interval and counter state with it
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

SCHEMA_VERSION = 1
_SCHEMA = """
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


@dataclass(frozen=True, slots=True)
class PendingBatch:
    seq: int
    header: dict  # gateway tags, factor set, sequence: fixed when the batch was assigned
    events: list[dict]
    intervals: list[str]  # JSON text, exactly as stored

    @property
    def size(self) -> int:
        return len(self.events) + len(self.intervals)


class Store:
    """One connection, used from one thread (see buffer.AsyncStore).

    `max_size` caps the database file (see buffer._room for what goes when it
    is full); `drop_synced` lets acknowledged records go too, oldest first.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        max_size: int | None = None,
        drop_synced: bool = False,
    ) -> None:
        self.path = Path(path)
        self.room = Room(max_size, drop_synced)
        self.replaced: Path | None = None  # where a damaged buffer was moved at start
        replaced_why = None
        if not readonly:
            replaced_why = _recover.problem(self.path)
            if replaced_why is not None:
                self.replaced = _recover.move_aside(self.path, replaced_why)
        if readonly:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        self.db = sqlite_utils.Database(conn)
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.executescript(_SCHEMA)
            # Batch numbers start at the clock in ms when a buffer is created (first
            # run, or a corrupt one replaced) and only ever go up from there, so a new
            # buffer never reuses a key an earlier one of this gateway sent.
            conn.execute(
                "INSERT OR IGNORE INTO sync_state VALUES (1, 0, 0, ?)", [int(time.time() * 1000)]
            )
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.room.apply(conn)
            lay_ballast(self.room, self.path)
            if self.replaced is not None:
                message = (
                    f"buffer {self.path} was damaged ({replaced_why}) and moved to "
                    f"{self.replaced.name}; a fresh buffer was started, what it held "
                    "and had not sent is not delivered"
                )
                self.add_events([EventRow(time.time(), None, "buffer_replaced", "critical",
                                          message)])  # fmt: skip

    def close(self) -> None:
        self.db.conn.close()

    def resize(self, max_size: int, drop_synced: bool) -> None:
        """A new cap from a reload (SQLite keeps it at least at the current size)."""
        self.room.max_size, self.room.drop_synced = max_size, drop_synced
        self.room.apply(self.db.conn)

    # --- the poll path -------------------------------------------------------

    def commit(self, work: Commit) -> None:
        self.commit_all([work])

    def commit_all(self, works: list[Commit]) -> None:
        """Several polls' work in one transaction: one fsync for all of them."""
        works = [w for w in works if w]
        if not works:
            return

        def write() -> None:
            self._write(works)
            self._watch_level()

        self._with_room(write)

    def _write(self, works: list[Commit]) -> None:
        """All the works' rows, one `executemany` per table, in order (later counter
        state wins): 200 devices closing an interval together cost four statements."""
        conn = self.db.conn
        intervals = [
            (r.device, r.start, r.length, _compact(r.body)) for w in works for r in w.intervals
        ]
        if intervals:
            conn.executemany(
                "INSERT INTO intervals (device, start, length, body) VALUES (?, ?, ?, ?)",
                intervals,
            )
        events = [e for w in works for e in w.events]
        if events:
            self._insert_events(events)
        now = time.time()
        counters = [(k, _compact(v), now) for w in works for k, v in w.counters.items()]
        if counters:
            conn.executemany(
                "INSERT INTO counters (key, state, updated) VALUES (?, ?, ?) ON CONFLICT (key)"
                " DO UPDATE SET state = excluded.state, updated = excluded.updated",
                counters,
            )
        samples = [s for w in works for s in w.samples]
        if samples:
            conn.executemany(
                "INSERT INTO samples (device, point, ts, value, unit, quality)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                samples,
            )

    def add_events(self, events: Iterable[EventRow]) -> None:
        rows = list(events)
        self._with_room(lambda: self._insert_events(rows))

    def counters(self) -> dict[str, dict]:
        return {row["key"]: json.loads(row["state"]) for row in self.db["counters"].rows}

    # --- the sync path ---------------------------------------------------------

    def pending_batch(self, max_records: int, header: dict) -> PendingBatch | None:
        """The batch to send now: the one already assigned, or a new one.

        Events go first; intervals fill the rest in seq order (time order per
        device). A new batch records `header` (with its sequence) so that every
        resend is the same batch, even if the config changed in between.
        """
        row = self._one("SELECT * FROM batches WHERE status = 'pending' ORDER BY seq LIMIT 1")
        if row is None:
            row = self._assign(max_records, header)
            if row is None:
                return None
        events = [
            {
                "id": e["seq"],
                "ts": e["ts"],
                "device": e["device"],
                "kind": e["kind"],
                "severity": e["severity"],
                "message": e["message"],
            }
            for e in self.db.query(
                "SELECT * FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq",
                [row["events_lo"], row["events_hi"]],
            )
        ]
        intervals = [
            r["body"]
            for r in self.db.query(
                "SELECT body FROM intervals WHERE seq BETWEEN ? AND ? ORDER BY seq",
                [row["intervals_lo"], row["intervals_hi"]],
            )
        ]
        return PendingBatch(row["seq"], json.loads(row["header"]), events, intervals)

    def finish_batch(self, seq: int, status: str, reason: str | None = None) -> None:
        """Close a batch as acked or rejected and move the cursors past it, atomically."""
        self._with_room(lambda: self._finish(seq, status, reason), poll_path=False)

    def reject_batch(self, seq: int, reason: str, event: EventRow | None) -> None:
        """Quarantine a batch the platform refused, and say so, in one transaction.

        Its records stay in the buffer (see `prune`) for an operator to resend.
        """

        def write() -> None:
            if self._finish(seq, "rejected", reason) and event is not None:
                self._insert_events([event])

        self._with_room(write, poll_path=False)

    def renumber_batch(self, seq: int) -> int:
        """Give a pending batch a fresh sequence (its key was taken); returns it."""
        with self.db.atomic():
            fresh = self._next_seq()
            row = self._one("SELECT header FROM batches WHERE seq = ?", [seq])
            assert row is not None
            header = json.loads(row["header"]) | {"sequence": fresh}
            self.db.execute(
                "UPDATE batches SET seq = ?, header = ? WHERE seq = ? AND status = 'pending'",
                [fresh, json.dumps(header, ensure_ascii=False), seq],
            )
        return fresh

    def _finish(self, seq: int, status: str, reason: str | None) -> bool:
        row = self._one("SELECT * FROM batches WHERE seq = ?", [seq])
        if row is None or row["status"] != "pending":
            return False
        self.db.execute(
            "UPDATE batches SET status = ?, finished = ?, reason = ? WHERE seq = ?",
            [status, time.time(), reason, seq],
        )
        self.db.execute(
            "UPDATE sync_state SET events_acked = max(events_acked, ?),"
            " intervals_acked = max(intervals_acked, ?)",
            [row["events_hi"], row["intervals_hi"]],
        )
        return True

    def shrink_batch(self, seq: int) -> bool:
        """Halve a pending batch the platform refused as too large (it stored nothing).

        The key is reused: the platform never accepted a batch under it.
        Returns False when the batch holds a single record and cannot shrink.
        """
        with self.db.atomic():
            row = self._one("SELECT * FROM batches WHERE seq = ? AND status = 'pending'", [seq])
            if row is None:
                return False
            events = self._count("events", row["events_lo"], row["events_hi"])
            intervals = self._count("intervals", row["intervals_lo"], row["intervals_hi"])
            keep = (events + intervals) // 2
            if keep < 1:
                return False
            if keep <= events:
                events_hi = self._nth("events", row["events_lo"], keep)
                update = {"events_hi": events_hi, "intervals_lo": 0, "intervals_hi": -1}
            else:
                intervals_hi = self._nth("intervals", row["intervals_lo"], keep - events)
                update = {"intervals_hi": intervals_hi}
            self.db["batches"].update(seq, update)
        return True

    def backlog(self) -> dict[str, int | float | None]:
        cursor = self._one("SELECT * FROM sync_state")
        assert cursor is not None
        intervals = self._one(
            "SELECT count(*) AS n, min(start) AS oldest FROM intervals WHERE seq > ?",
            [cursor["intervals_acked"]],
        )
        events = self._one(
            "SELECT count(*) AS n FROM events WHERE seq > ?", [cursor["events_acked"]]
        )
        assert intervals is not None and events is not None
        try:
            lost = {r["kind"]: r["records"] for r in self.db.query("SELECT * FROM losses")}
        except sqlite3.OperationalError:  # read-only on a buffer from before the table
            lost = {}
        return {
            "intervals": intervals["n"],
            "events": events["n"],
            "oldest": intervals["oldest"],
            "size": level(self.db.conn, self.room).used_bytes,
            "dropped_samples": lost.get("samples", 0),
            "dropped_synced": lost.get("synced", 0),
        }

    def last_batch(self) -> dict | None:
        return self._one("SELECT * FROM batches WHERE status != 'pending' ORDER BY seq DESC")

    # --- housekeeping ----------------------------------------------------------

    def prune(self, *, raw_before: float, synced_before: float, limit: int = CHUNK) -> int:
        """Drop up to `limit` raw samples past retention and as many acknowledged records
        past their keep time, in one short transaction; 0 when nothing is left to drop.

        Called in a loop (AsyncStore.prune) so a day of raw samples goes a chunk
        at a time and the polls' commits get the writer thread in between.
        Rejected (quarantined) batches and their records are kept.
        """
        cursor = self._one("SELECT * FROM sync_state")
        assert cursor is not None
        with self.db.atomic():
            removed = self.db.execute(
                "DELETE FROM samples WHERE id IN"
                " (SELECT id FROM samples WHERE ts < ? ORDER BY ts LIMIT ?)",
                [raw_before, limit],
            ).rowcount
            for table, ts, acked in (
                ("intervals", "start", cursor["intervals_acked"]),
                ("events", "ts", cursor["events_acked"]),
            ):
                removed += self.db.execute(
                    f"DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table}"
                    f" WHERE seq <= ? AND {ts} < ? AND NOT EXISTS ({KEPT.format(table)})"
                    " ORDER BY seq LIMIT ?)",
                    [acked, synced_before, limit],
                ).rowcount
            self.db.execute(
                "DELETE FROM batches WHERE status = 'acked' AND finished < ?", [synced_before]
            )
        return removed

    # --- internals -------------------------------------------------------------

    def _next_seq(self) -> int:
        row = self._one("SELECT next_batch FROM sync_state")
        assert row is not None
        self.db.execute("UPDATE sync_state SET next_batch = next_batch + 1")
        return int(row["next_batch"])

    def _assign(self, max_records: int, header: dict) -> dict | None:
        return self._with_room(lambda: self._assign_now(max_records, header), poll_path=False)

    def _assign_now(self, max_records: int, header: dict) -> dict | None:
        cursor = self._one("SELECT * FROM sync_state")
        assert cursor is not None
        ev = self._range("events", cursor["events_acked"], max_records)
        room = max_records - ev[2]
        iv = self._range("intervals", cursor["intervals_acked"], room) if room else None
        if not ev[2] and not (iv and iv[2]):
            return None
        seq = self._next_seq()
        events_lo, events_hi = (ev[0], ev[1]) if ev[2] else (0, -1)
        intervals_lo, intervals_hi = (iv[0], iv[1]) if iv and iv[2] else (0, -1)
        row = {
            "seq": seq,
            "created": time.time(),
            "header": json.dumps(header | {"sequence": seq}, ensure_ascii=False),
            "events_lo": events_lo,
            "events_hi": events_hi,
            "intervals_lo": intervals_lo,
            "intervals_hi": intervals_hi,
            "status": "pending",
            "finished": None,
            "reason": None,
        }
        self.db["batches"].insert(row)
        return row

    def _with_room(self, write: Callable[[], T], *, poll_path: bool = True) -> T:
        """The sync path's small writes (a batch row, a cursor) get a reserve beyond the cap:
        a buffer full of unsent intervals must still be able to send them."""
        if poll_path or self.room.max_pages is None:
            return self._fit(write, poll_path)
        self.db.conn.execute(f"PRAGMA max_page_count = {self.room.max_pages + RESERVE_PAGES}")
        try:
            return self._fit(write, poll_path)
        finally:
            self.db.conn.execute(f"PRAGMA max_page_count = {self.room.max_pages}")

    def _fit(self, write: Callable[[], T], poll_path: bool) -> T:
        """Run `write` in one transaction; if the buffer is full, make room and try once more.

        Raises BufferFull when nothing more may be dropped: the caller keeps
        the work (the agent holds it in memory) and tries again later. What a
        full buffer cost is told in the transaction that finally fits.
        """
        freed: Freed | None = None
        while True:
            try:
                with self.db.atomic():
                    result = write()
                    told = self._tell(freed, held=poll_path)
            except (sqlite3.Error, OSError) as exc:
                if not is_full(exc):
                    raise
                if freed is not None:
                    self._refuse(freed, exc, poll_path)
                freed = Freed()
                try:
                    make_room(self.db.conn, self.room, freed)
                except (sqlite3.Error, OSError) as again:  # a full disk may refuse the deletes
                    if not is_full(again):
                        raise
                self.room.unreported.add(freed)
                continue
            if told:
                self.room.unreported, self.room.last_report = Freed(), time.time()
                if poll_path:
                    self.room.full_since, self.room.refused = None, 0
            if freed is not None:
                lay_ballast(self.room, self.path)  # again, if the disk has room for it now
            return result

    def _tell(self, freed: Freed | None, held: bool) -> bool:
        """A buffer_full event, if one is due: writes were held (now in), or something was
        dropped and the last event is an hour old. Counts are in `losses` either way."""
        room = self.room
        note = ""
        if held and room.full_since is not None:
            note = (
                f"; {room.refused} writes were refused for "
                f"{time.time() - room.full_since:.0f}s and held by the agent until now"
            )
        dropped = freed is not None and bool(freed)
        if not note and not (dropped and time.time() - room.last_report >= REPORT_EVERY):
            if dropped:
                log.info("buffer full: dropped %s (counted; told hourly)", freed.describe())
            return False
        lost = room.unreported
        told = f"dropped {lost.describe()}" if lost else "dropped nothing"
        if lost.oldest is not None:
            told += f" from {_stamp(lost.oldest)} to {_stamp(lost.newest)}"
        message = f"buffer full ({self._limit()}): {told}{note}"
        log.warning("%s", message)
        self._insert_events([EventRow(time.time(), None, "buffer_full", "warning", message)])
        return True

    def _refuse(self, freed: Freed, exc: BaseException, poll_path: bool) -> None:
        if poll_path and self.room.full_since is None:
            self.room.full_since = time.time()
            log.error(
                "buffer full (%s) and nothing more may be dropped (dropped %s): "
                "new intervals and events are held in memory until there is room; "
                "free disk space, raise buffer.max_size or set buffer.drop_synced",
                self._limit(), freed.describe(),
            )  # fmt: skip
        self.room.refused += poll_path
        raise BufferFull(f"buffer full ({self._limit()}): {exc}") from exc

    def _limit(self) -> str:
        if disk_full(self.db.conn, self.room):
            return "the disk is full"
        return f"max_size {self.room.max_size / 1e6:g} MB"

    def _watch_level(self) -> None:
        """A buffer_near_full event when the buffer crosses 90% of max_size, once."""
        now = level(self.db.conn, self.room).share
        if now is None:
            return
        if now < NEAR_FULL_CLEARED:
            self.room.near_full = False
        elif now >= NEAR_FULL and not self.room.near_full:
            self.room.near_full = True
            message = f"buffer at {now:.0%} of {self._limit()}; when full, raw samples go first" + (
                ", then synced records" if self.room.drop_synced else ""
            )
            log.warning("%s", message)
            self._insert_events(
                [EventRow(time.time(), None, "buffer_near_full", "warning", message)]
            )

    def _range(self, table: str, after: int, limit: int) -> tuple[int, int, int]:
        row = self._one(
            f"SELECT min(seq) AS lo, max(seq) AS hi, count(*) AS n FROM "
            f"(SELECT seq FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?)",
            [after, limit],
        )
        assert row is not None
        return (row["lo"] or 0, row["hi"] or 0, row["n"])

    def _count(self, table: str, lo: int, hi: int) -> int:
        row = self._one(f"SELECT count(*) AS n FROM {table} WHERE seq BETWEEN ? AND ?", [lo, hi])
        return row["n"] if row else 0

    def _nth(self, table: str, lo: int, n: int) -> int:
        """Seq of the n-th record (1-based) from `lo` on."""
        row = self._one(
            f"SELECT seq FROM {table} WHERE seq >= ? ORDER BY seq LIMIT 1 OFFSET ?", [lo, n - 1]
        )
        assert row is not None
        return row["seq"]

    def _insert_events(self, events: list[EventRow]) -> None:
        self.db.conn.executemany(
            "INSERT INTO events (ts, device, kind, severity, message) VALUES (?, ?, ?, ?, ?)",
            [(e.ts, e.device, e.kind, e.severity, e.message) for e in events],
        )

    def _one(self, sql: str, params: list | None = None) -> dict | None:
        return next(iter(self.db.query(sql, params or [])), None)


def _stamp(ts: float | None) -> str:
    return "?" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
