"""The SQLite store-and-forward buffer.

Durability: WAL mode with `synchronous=FULL`. In WAL mode `NORMAL` survives a
process crash but a power cut can roll back the last commits, and this buffer
makes a promise ("what `commit` returned for is on disk") that an industrial
PC losing power must keep, so every commit is fsynced. The cost stays small
because the agent commits only what must survive: closed intervals, events
and counter state, normally once per interval per device, not per sample.

Sync bookkeeping: records get an ever-increasing `seq` (AUTOINCREMENT, so a
pruned number is never reused). Each destination reads and acknowledges
through its own Outbox (buffer._outbox) with its own cursor; a record is
synced, and may go, only once no active destination waits for it
(buffer._cursors). The schema and its migrations are in buffer.schema.

The module is long because it is one class around one connection: every write
(the poll path's commits, the outboxes' batch rows and cursors, housekeeping)
goes through `Store._fit`, the one transaction that makes room when the file
is full and tells what that cost, so its parts share that path and the cap.
What stands apart already lives beside it: schema, _outbox, _cursors, _room,
_recover.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from buffer import _cursors, _recover, schema
from buffer._cursors import Cursor
from buffer._factors import Factors
from buffer._outbox import Outbox, PendingBatch
from buffer._room import (
    CHUNK,
    EVENT_PAGES,
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

__all__ = ["DEFAULT_DESTINATIONS", "Outbox", "PendingBatch", "Store"]

log = logging.getLogger(__name__)
T = TypeVar("T")
# made once: the poll path encodes every device's interval and counter state with it
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# The uplinks the buffer keeps records for when the agent names none: the HTTP batches
# configured under `sync:`, with no age limit. Name -> age limit in seconds, or None.
DEFAULT_DESTINATIONS: Mapping[str, float | None] = {"sync": None}


class Store:
    """One connection, used from one thread (see buffer.AsyncStore).

    `max_size` caps the database file (see buffer._room for what goes when it
    is full); `drop_synced` lets acknowledged records go too, oldest first.
    `destinations` are the active uplinks (see `register`). `readonly` opens
    for `edge-agent status`: an older file is read as it is, never migrated.
    `event_state` are the prefixes of the counter keys that record what an event did
    (a rule raised, a device offline): they go with their events (see `commit_all`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        max_size: int | None = None,
        drop_synced: bool = False,
        destinations: Mapping[str, float | None] = DEFAULT_DESTINATIONS,
        event_state: tuple[str, ...] = (),
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.event_state = event_state
        self.room = Room(max_size, drop_synced)
        self.active: dict[str, float | None] = _checked(destinations)
        self.replaced: Path | None = None  # where a damaged buffer was moved at start
        # A file from a newer release is sound: refuse it before anything can take it for
        # damaged (an unknown schema) or write to it. Its header says so without SQLite.
        schema.refuse_newer(self.path, schema.file_version(self.path))
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
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            # again through SQLite: a newer release's version may still be in the WAL only
            self.version: int = schema.refuse_unknown(conn, self.path)
            self.db = sqlite_utils.Database(conn)
            if readonly:
                self.factors = Factors(conn)
            else:
                self._open_for_writing(conn, replaced_why)
        except BaseException:
            conn.close()
            raise

    def _open_for_writing(self, conn: sqlite3.Connection, replaced_why: str | None) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        # Batch numbers start at the clock in ms when a buffer is created (first run, or a
        # corrupt one replaced) and only ever go up from there, so a new buffer never
        # reuses a key an earlier one of this gateway sent.
        found = self.version
        schema.upgrade(conn, found, first_batch=int(time.time() * 1000))
        self.factors = Factors(conn)
        if 0 < found < schema.SCHEMA_VERSION:
            log.info(
                "buffer %s: schema version %d migrated to %d",
                self.path, found, schema.SCHEMA_VERSION,
            )  # fmt: skip
        self.version = schema.SCHEMA_VERSION
        self.room.apply(conn)
        lay_ballast(self.room, self.path)
        self.register(self.active)
        if self.replaced is not None:
            message = (
                f"buffer {self.path} was damaged ({replaced_why}) and moved to "
                f"{self.replaced.name}; a fresh buffer was started, what it held "
                "and had not sent is not delivered"
            )
            self.add_events([EventRow(time.time(), None, "buffer_replaced", "critical", message)])

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
        """Several polls' work in one transaction: one fsync for all of them.

        A full buffer with nothing left to drop refuses the work (BufferFull: the
        agent holds it and tries again) but not its events: they and their state go
        into the room kept for events, and are taken out of `works`, so what the
        caller holds is what was not written. If that was all, nothing is refused.
        """
        works = [w for w in works if w]
        if not works:
            return

        def write() -> None:
            self._write(works)
            self._watch_level()

        try:
            bodies = (r.body for w in works for r in w.intervals)
            self.factors.learn(bodies, self.db.conn, self._with_room)
            if all(self._events_only(w) for w in works):  # a failed action, a refused batch:
                self._fit(write, poll_path=False)  # no poll work the agent would have to hold
            else:
                self._with_room(write)
        except BufferFull:
            if not self._keep_events(works):
                raise

    def _write(self, works: list[Commit]) -> None:
        """All the works' rows, one `executemany` per table, in order (later counter
        state wins): 200 devices closing an interval together cost four statements."""
        conn = self.db.conn
        stored = self.factors.stored
        intervals = [
            (r.device, r.start, r.length, *stored(r.body)) for w in works for r in w.intervals
        ]
        if intervals:
            conn.executemany(
                "INSERT INTO intervals (device, start, length, body, factor)"
                " VALUES (?, ?, ?, ?, ?)",
                intervals,
            )
        events = [e for w in works for e in w.events]
        if events:
            self._insert_events(events)
        self._set_counters([(k, v) for w in works for k, v in w.counters.items()])
        samples = [s for w in works for s in w.samples]
        if samples:
            conn.executemany(
                "INSERT INTO samples (device, point, ts, value, unit, quality)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                samples,
            )

    def add_events(self, events: Iterable[EventRow]) -> None:
        """Events on their own (a refused batch, a failed action), kept like a poll's."""
        self.commit_all([Commit(events=list(events))])

    def counters(self) -> dict[str, dict]:
        return {row["key"]: json.loads(row["state"]) for row in self.db["counters"].rows}

    def counter(self, key: str) -> dict | None:
        """One saved state (a destination's, say), or None."""
        row = self._one("SELECT state FROM counters WHERE key = ?", [key])
        return None if row is None else json.loads(row["state"])

    def intervals_between(
        self, devices: list[str], length: float, begin: float, end: float, limit: int
    ) -> list[str]:
        """The stored records of `devices` and `length` starting in [begin, end], oldest
        first, as JSON text: what a platform asking for history is sent again. Records
        pruned after delivery (7 days, see Store.prune) are no longer there."""
        marks = ",".join("?" * len(devices))
        return [
            self.factors.whole(body, factor)
            for body, factor in self.db.conn.execute(
                f"SELECT body, factor FROM intervals WHERE device IN ({marks}) AND length = ?"
                " AND start BETWEEN ? AND ? ORDER BY start, seq LIMIT ?",
                [*devices, length, begin, end, limit],
            )
        ]

    # --- the destinations ------------------------------------------------------

    def register(self, destinations: Mapping[str, float | None]) -> None:
        """Declare the active destinations (at open and on reload): name -> age limit in
        seconds, or None to keep every record until it has it.

        A destination never seen before starts at the end of the buffer: it is sent
        what is committed from now on (in a new buffer, everything). One that is no
        longer named keeps its cursor, so naming it again resumes where it stopped,
        but it holds no record back meanwhile (see buffer._cursors).
        """
        active = _checked(destinations)
        if not self.readonly:

            def write() -> list[str]:
                return _cursors.register(self.db.conn, list(active), time.time())

            for name in self._with_room(write, poll_path=False):
                log.info("buffer: destination %r added; it is sent what is committed from now on",
                         name)  # fmt: skip
        self.active = active

    def outbox(self, name: str) -> Outbox:
        """Destination `name`'s view: its pending batch, its acknowledgements."""
        if name not in self.active:
            raise ValueError(
                f"destination {name!r} is not registered with the buffer"
                f" (registered: {', '.join(sorted(self.active)) or 'none'})"
            )
        return Outbox(self, name)

    def backlog(self) -> dict:
        """What the active destinations still wait for, each and in all, and the buffer's use.

        `intervals`, `events` and `oldest` count a record once however many destinations
        wait for it; `destinations` has the same figures per destination.
        """
        now = time.time()
        cursors = self._cursors()
        total = self._waiting(cursors, now)
        per = {  # with one destination its figures are the totals: not counted twice
            c.name: {
                **(total if len(cursors) == 1 else self._waiting([c], now)),
                "max_age": c.max_age,
            }
            for c in cursors
        }
        try:
            lost = {r["kind"]: r["records"] for r in self.db.query("SELECT * FROM losses")}
        except sqlite3.OperationalError:  # read-only on a buffer from before the table
            lost = {}
        return {
            **total,
            "size": level(self.db.conn, self.room).used_bytes,
            "dropped_samples": lost.get("samples", 0),
            "dropped_synced": lost.get("synced", 0),
            "destinations": per,
        }

    def last_acked(self) -> dict[str, float]:
        """When each destination's last acknowledged batch was finished (a version 1 file,
        read by `status` before a start migrates it, knew only the central one)."""
        whose = "destination" if self.version >= 2 else "'sync' AS destination"
        rows = self.db.query(
            f"SELECT {whose}, max(finished) AS finished FROM batches"
            " WHERE status = 'acked' GROUP BY 1"
        )
        return {row["destination"]: row["finished"] for row in rows if row["finished"]}

    def last_batch(self) -> dict | None:
        return self._one("SELECT * FROM batches WHERE status != 'pending' ORDER BY seq DESC")

    def _cursors(self) -> list[Cursor]:
        return _cursors.read(self.db.conn, self.active, self.version)

    def _waiting(self, cursors: list[Cursor], now: float) -> dict:
        intervals = self._one(
            "SELECT count(*) AS n, min(start) AS oldest FROM intervals WHERE "
            + _cursors.owed_to_any(cursors, "intervals", now)
        )
        events = self._one(
            "SELECT count(*) AS n FROM events WHERE " + _cursors.owed_to_any(cursors, "events", now)
        )
        assert intervals is not None and events is not None
        return {"intervals": intervals["n"], "events": events["n"], "oldest": intervals["oldest"]}

    def _synced(self, table: str) -> str:
        """SQL: the records of `table` that may go: no active destination waits for them,
        and no quarantined batch holds them."""
        settled = _cursors.settled(self._cursors(), table, time.time())
        return f"{settled} AND NOT EXISTS ({KEPT.format(table)})"

    # --- housekeeping ----------------------------------------------------------

    def prune(self, *, raw_before: float, synced_before: float, limit: int = CHUNK) -> int:
        """Drop up to `limit` raw samples past retention and as many synced records (every
        active destination has them, or its age limit let them go) past their keep time,
        in one short transaction; 0 when nothing is left to drop.

        Called in a loop (AsyncStore.prune) so a day of raw samples goes a chunk
        at a time and the polls' commits get the writer thread in between.
        Rejected (quarantined) batches and their records are kept.
        """
        with self.db.atomic():
            removed = self.db.execute(
                "DELETE FROM samples WHERE id IN"
                " (SELECT id FROM samples WHERE ts < ? ORDER BY ts LIMIT ?)",
                [raw_before, limit],
            ).rowcount
            for table in ("intervals", "events"):
                removed += self.db.execute(
                    f"DELETE FROM {table} WHERE seq IN (SELECT seq FROM {table}"
                    f" WHERE {_cursors.TIME[table]} < ? AND {self._synced(table)}"
                    " ORDER BY seq LIMIT ?)",
                    [synced_before, limit],
                ).rowcount
            self.db.execute(
                "DELETE FROM batches WHERE status IN ('acked', 'abandoned') AND finished < ?",
                [synced_before],
            )
        return removed

    # --- internals -------------------------------------------------------------

    def _next_seq(self) -> int:
        row = self._one("SELECT next_batch FROM sync_state")
        assert row is not None
        self.db.execute("UPDATE sync_state SET next_batch = next_batch + 1")
        return int(row["next_batch"])

    def _with_room(self, write: Callable[[], T], *, poll_path: bool = True) -> T:
        """The sync path's small writes (a batch row, a cursor) get a reserve beyond the cap
        (and beyond the events' room): a buffer full of unsent intervals must still be
        able to send them."""
        if poll_path or self.room.max_pages is None:
            return self._fit(write, poll_path)
        return self._beyond_cap(EVENT_PAGES + RESERVE_PAGES, lambda: self._fit(write, False))

    def _beyond_cap(self, pages: int, write: Callable[[], T]) -> T:
        """`write` with the cap raised by `pages` (SQLite keeps it at least at the size the
        file has reached when it is set back)."""
        assert self.room.max_pages is not None
        self.db.conn.execute(f"PRAGMA max_page_count = {self.room.max_pages + pages}")
        try:
            return write()
        finally:
            self.db.conn.execute(f"PRAGMA max_page_count = {self.room.max_pages}")

    def _events_only(self, work: Commit) -> bool:
        """Events and the counter state that says what they did, nothing else."""
        counters = all(key.startswith(self.event_state) for key in work.counters)
        return not work.intervals and not work.samples and counters

    def _keep_events(self, works: list[Commit]) -> bool:
        """The refused works' events, and the counter state that says what they did (later
        wins), written in the events' room beyond the cap and taken out of `works`; whether
        nothing else is left. A full disk (no cap) has no such room: the agent holds them."""
        events = [e for w in works for e in w.events]
        if not events or self.room.max_pages is None:
            return False
        state = [
            (k, v) for w in works for k, v in w.counters.items() if k.startswith(self.event_state)
        ]

        def write() -> None:
            with self.db.atomic():
                self._insert_events(events)
                self._set_counters(state)

        try:
            self._beyond_cap(EVENT_PAGES, write)
        except (sqlite3.Error, OSError) as exc:
            if not is_full(exc):
                raise
            return False  # the room is used up too
        for work in works:
            work.events = []
            for key, _ in state:
                work.counters.pop(key, None)
        return not any(works)

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
                    make_room(self.db.conn, self.room, freed, self._synced)
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
        dropped = bool(freed)
        if not note and not (dropped and time.time() - room.last_report >= REPORT_EVERY):
            if freed:
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
                "new intervals are held in memory until there is room (events go to a "
                "room kept for them); "
                "free disk space, raise buffer.max_size or set buffer.drop_synced",
                self._limit(), freed.describe(),
            )  # fmt: skip
        self.room.refused += poll_path
        raise BufferFull(f"buffer full ({self._limit()}): {exc}") from exc

    def _limit(self) -> str:
        max_size = self.room.max_size
        if max_size is None or disk_full(self.db.conn, self.room):  # no cap: only the disk
            return "the disk is full"
        return f"max_size {max_size / 1e6:g} MB"

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

    def _set_counters(self, states: list[tuple[str, dict]]) -> None:
        if states:
            now = time.time()
            self.db.conn.executemany(
                "INSERT INTO counters (key, state, updated) VALUES (?, ?, ?) ON CONFLICT (key)"
                " DO UPDATE SET state = excluded.state, updated = excluded.updated",
                [(key, _compact(state), now) for key, state in states],
            )

    def _insert_events(self, events: list[EventRow]) -> None:
        self.db.conn.executemany(
            "INSERT INTO events (ts, device, kind, severity, message) VALUES (?, ?, ?, ?, ?)",
            [(e.ts, e.device, e.kind, e.severity, e.message) for e in events],
        )

    def _one(self, sql: str, params: list | None = None) -> dict | None:
        return next(iter(self.db.query(sql, params or [])), None)


def _checked(destinations: Mapping[str, float | None]) -> dict[str, float | None]:
    for name, max_age in destinations.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"a destination needs a name (got {name!r})")
        if max_age is not None and not max_age > 0:
            raise ValueError(
                f"destination {name!r}: the age limit must be positive (got {max_age})"
            )
    return dict(destinations)


def _stamp(ts: float | None) -> str:
    return "?" if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
