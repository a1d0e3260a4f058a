"""One destination's view of the buffer: what is pending for it, and its acknowledgements.

An uplink reads and acknowledges through its own Outbox and cannot move
another destination's cursor. A batch is a persisted pair of seq ranges
(events, intervals) with the destination's age cut-off, assigned before its
first send; re-reading the ranges after a crash gives the same records again,
and the destination's cursor moves in the same transaction that closes the
batch. Batch numbers come from one sequence shared by all destinations, so
every key `<gateway>:<seq>` names one batch only.

A destination may have several batches pending at once (a window in flight,
cloud_sync/mqtt): each new batch starts after the last pending one, so a
destination's pending batches, in seq order, hold increasing ranges that do not
overlap, all past its cursor. They are closed only as a run from the oldest
(`finish_batches`): the cursor never passes a batch still pending, so no record
is skipped however the acknowledgements come, and after a `kill -9` every batch
still pending is read again, the same records under the same key.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import buffer._ranges as _ranges
from buffer._ranges import JOINED, within
from domain.records import EventRow

if TYPE_CHECKING:
    from buffer.store import Store


Fresh = tuple[bytes, int, str | None]
"""A new batch's intervals as its assignment read them: joined text, count, factors."""


@dataclass(frozen=True, slots=True)
class PendingBatch:
    seq: int
    header: dict  # gateway tags, factor set, sequence: fixed when the batch was assigned
    events: list[dict]
    intervals: list[str]  # JSON text, exactly as stored
    # or, read `joined`: the intervals' texts joined by commas, UTF-8 (then `intervals` is
    # empty and `count` says how many); None when read as a list
    joined: bytes | None = None
    count: int = 0

    @property
    def size(self) -> int:
        return len(self.events) + (self.count if self.joined is not None else len(self.intervals))


class Outbox:
    """The batches of destination `name`; used from the store's thread (see buffer.AsyncStore)."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name

    def __repr__(self) -> str:
        return f"Outbox({self.name!r}, {self.store.path})"

    def pending_batch(self, max_records: int, header: dict) -> PendingBatch | None:
        """The batch to send now: this destination's oldest pending batch, or a new one.

        Events go first; intervals fill the rest in seq order (time order per
        device). A new batch records `header` (with its sequence) so that every
        resend is the same batch, even if the config changed in between.
        """
        return self.next_batch(0, max_records, header)

    def next_batch(
        self, after: int, max_records: int, header: dict, joined: bool = False
    ) -> PendingBatch | None:
        """The oldest pending batch numbered after `after`, or a new one past all pending
        (0: from the oldest pending batch, as `pending_batch`); see `next_batches`."""
        found = self.next_batches(after, 1, max_records, header, joined)
        return found[0] if found else None

    def next_batches(
        self, after: int, count: int, max_records: int, header: dict, joined: bool = False
    ) -> list[PendingBatch]:
        """Up to `count` batches after batch `after`: a destination with batches in flight
        reads the next while they wait. The pending ones first, in seq order; then new
        ones past all pending, assigned together in one transaction (one fsync for them
        all): one call to the buffer's thread for several. `joined`: the intervals as one
        text (PendingBatch.joined) when none holds statistics, concatenated by SQLite: no
        Python object per record (for a new batch, in the pass that found its range)."""
        out: list[PendingBatch] = []
        while len(out) < count and (row := self._pending_after(after)) is not None:
            out.append(self._read(row, joined))
            after = row["seq"]
        if len(out) < count:

            def assign() -> list[tuple[dict, Fresh | None]]:
                made: list[tuple[dict, Fresh | None]] = []
                while len(made) < count - len(out):
                    new = self._assign(max_records, header, joined)
                    if new is None:
                        break
                    made.append(new)
                return made

            for row, fresh in self.store._with_room(assign, poll_path=False):
                out.append(self._read(row, joined, fresh))
        return out

    def _pending_after(self, after: int) -> dict | None:
        cursor = self.store.db.conn.execute(  # not db.query: no savepoint for one read
            "SELECT * FROM batches WHERE destination = ? AND status = 'pending' AND seq > ?"
            " ORDER BY seq LIMIT 1",
            [self.name, after],
        )
        found = cursor.fetchone()
        names = [d[0] for d in cursor.description]
        return None if found is None else dict(zip(names, found, strict=True))

    def _read(self, row: dict, joined: bool = False, fresh: Fresh | None = None) -> PendingBatch:
        """A batch as its row fixes it, every record whole (buffer/_factors.py); `fresh`:
        its intervals' joined text, count and factors, read when it was assigned (else
        read here)."""
        cut = row["not_before"]
        conn = self.store.db.conn
        events = [
            {"id": seq, "ts": ts, "device": device, "kind": kind, "severity": severity,
             "message": message}
            for seq, ts, device, kind, severity, message in conn.execute(
                "SELECT seq, ts, device, kind, severity, message FROM events"
                f" WHERE {within('events', cut)} ORDER BY seq",
                [row["events_lo"], row["events_hi"]],
            )
        ]  # fmt: skip
        header = json.loads(row["header"])
        span = [row["intervals_lo"], row["intervals_hi"]]
        # statistics are for HJ 212 only, taken out record by record; whether the batch has
        # any is one seek in their index (a search of its text was a fifth of the read)
        factors = self.store.factors
        if joined and not _ranges.with_stats(conn, span[0], span[1], cut):
            if fresh is None:
                text, refs, count = conn.execute(
                    f"SELECT {JOINED}, count(*) FROM intervals WHERE {within('intervals', cut)}",
                    span,
                ).fetchone()
            else:
                text, count, refs = fresh
            text = factors.whole_joined(text or b"", refs)
            return PendingBatch(row["seq"], header, events, [], text, count)
        # plain tuples, not sqlite_utils' dict per row: a batch is thousands of records
        intervals = [
            factors.whole(body, ref)
            for body, ref in conn.execute(
                f"SELECT body, factor FROM intervals WHERE {within('intervals', cut)} ORDER BY seq",
                span,
            )
        ]
        return PendingBatch(row["seq"], header, events, intervals)

    def finish_batch(self, seq: int, status: str = "acked", reason: str | None = None) -> None:
        """Close a batch as acked or rejected and move the cursor past it, atomically.
        It must be the destination's oldest pending batch (ValueError otherwise)."""
        self.store._with_room(lambda: self._finish(seq, status, reason), poll_path=False)

    def finish_batches(self, seqs: list[int]) -> None:
        """Close a run of acknowledged batches and move the cursor past the last, in one
        transaction. They must be the destination's oldest pending batches, in order: the
        cursor passes no batch that is still pending (ValueError otherwise, and nothing is
        written).

        The transaction is not fsynced (synchronous=NORMAL, in WAL mode only): a
        `kill -9` loses nothing (SQLite documentation, "PRAGMA synchronous": in WAL
        mode NORMAL is durable across an application crash), a power cut may roll the
        last cursor moves back, and then those batches are pending again and resent
        under the same keys with the same records, which a platform stores once. An
        assignment is not so harmless to lose (a batch number given again to other
        records), so it stays fsynced, as does all the poll path commits; the next
        fsynced commit makes the lazy ones before it durable too (the WAL is one
        sequence). An fsync per acknowledgement was a third of a backlog drain."""

        def write() -> None:
            # the run checked once, closed in two statements (not `_finish` per batch:
            # each would read its batch and look for an older one again)
            conn = self.store.db.conn
            rows = conn.execute(
                "SELECT seq, events_hi, intervals_hi FROM batches"
                " WHERE destination = ? AND status = 'pending' ORDER BY seq LIMIT ?",
                [self.name, len(seqs)],
            ).fetchall()
            oldest = [seq for seq, _, _ in rows]
            if oldest != list(seqs):
                raise ValueError(
                    f"{self.name}: batches {list(seqs)} are not the oldest pending ({oldest})"
                )
            now = time.time()
            conn.executemany(
                "UPDATE batches SET status = 'acked', finished = ?, reason = NULL WHERE seq = ?",
                [(now, seq) for seq in seqs],
            )
            self._advance(max(r[1] for r in rows), max(r[2] for r in rows))

        if not seqs:
            return
        conn = self.store.db.conn
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        (level,) = conn.execute("PRAGMA synchronous").fetchone()
        if mode == "wal":
            conn.execute("PRAGMA synchronous = NORMAL")
        try:
            self.store._with_room(write, poll_path=False)
        finally:
            conn.execute(f"PRAGMA synchronous = {int(level)}")

    def reject_batch(self, seq: int, reason: str, event: EventRow | None) -> None:
        """Quarantine a batch the platform refused, and say so, in one transaction.

        Its records stay in the buffer (see Store.prune) for an operator to resend.
        """

        def write() -> None:
            if self._finish(seq, "rejected", reason) and event is not None:
                self.store._insert_events([event])

        self.store._with_room(write, poll_path=False)

    def renumber_batch(self, seq: int) -> int:
        """Give a pending batch a fresh sequence (its key was taken); returns it.

        A fresh number is the highest, so the destination's later pending batches, if
        any, are given up (see `_give_up_after`): pending batches stay in range order."""
        store = self.store
        with store.db.atomic():
            row = store._one(
                "SELECT header FROM batches"
                " WHERE seq = ? AND destination = ? AND status = 'pending'",
                [seq, self.name],
            )
            if row is None:
                raise ValueError(f"{self.name}: no pending batch {seq} to renumber")
            self._give_up_after(seq, f"batch {seq} before it was renumbered")
            fresh = store._next_seq()
            header = json.loads(row["header"]) | {"sequence": fresh}
            store.db.execute(
                "UPDATE batches SET seq = ?, header = ? WHERE seq = ?",
                [fresh, json.dumps(header, ensure_ascii=False), seq],
            )
        return fresh

    def shrink_batch(self, seq: int) -> bool:
        """Halve a pending batch the platform refused as too large (it stored nothing).

        The key is reused: the platform never accepted a batch under it.
        Returns False when the batch holds a single record and cannot shrink. The
        destination's later pending batches are given up (`_give_up_after`): the half
        left out must go first in the next batch, never be passed by the cursor.
        """
        store = self.store
        with store.db.atomic():
            row = store._one(
                "SELECT * FROM batches WHERE seq = ? AND destination = ? AND status = 'pending'",
                [seq, self.name],
            )
            if row is None:
                return False
            cut = row["not_before"]
            events = _ranges.count(store.db.conn, "events", row["events_lo"], row["events_hi"], cut)
            intervals = _ranges.count(
                store.db.conn, "intervals", row["intervals_lo"], row["intervals_hi"], cut
            )
            keep = (events + intervals) // 2
            if keep < 1:
                return False
            if keep <= events:
                events_hi = _ranges.nth(store.db.conn, "events", row["events_lo"], keep, cut)
                update = {"events_hi": events_hi, "intervals_lo": 0, "intervals_hi": -1}
            else:
                intervals_hi = _ranges.nth(
                    store.db.conn, "intervals", row["intervals_lo"], keep - events, cut
                )
                update = {"intervals_hi": intervals_hi}
            store.db.table("batches").update(seq, update)
            self._give_up_after(seq, f"batch {seq} before it was halved")
        return True

    def backlog(self) -> dict:
        """What this destination still waits for: intervals, events, the oldest interval."""
        now = time.time()
        for cursor in self.store._cursors():
            if cursor.name == self.name:
                return {**self.store._waiting([cursor], now), "max_age": cursor.max_age}
        raise ValueError(f"destination {self.name!r} is no longer registered with the buffer")

    # --- internals -------------------------------------------------------------

    def _give_up_after(self, seq: int, why: str) -> None:
        """Abandon this destination's pending batches after `seq` (status `abandoned`, as
        for a removed destination): their records are past the cursor still and go again
        in new batches under new keys (a platform stores an interval once, whatever the
        key). Only an oversized or renumbered batch in a window comes to this."""
        self.store.db.execute(
            "UPDATE batches SET status = 'abandoned', finished = ?, reason = ?"
            " WHERE destination = ? AND status = 'pending' AND seq > ?",
            [time.time(), f"given up with {why}", self.name, seq],
        )

    def _assign(
        self, max_records: int, header: dict, joined: bool = False
    ) -> tuple[dict, Fresh | None] | None:
        """A new batch after this destination's cursor and after its pending batches: its
        row, and with `joined` its intervals' text and count, read in the pass that finds
        its range, for `_read` (finding the range reads the same pages: a table's rowid
        order is its storage order)."""
        store = self.store
        acked = store._one(
            "SELECT d.events_acked, d.intervals_acked,"
            " (SELECT max(events_hi) FROM batches b WHERE b.destination = d.name"
            "  AND b.status = 'pending') AS events_hi,"
            " (SELECT max(intervals_hi) FROM batches b WHERE b.destination = d.name"
            "  AND b.status = 'pending') AS intervals_hi"
            " FROM destinations d WHERE d.name = ?",
            [self.name],
        )
        if acked is None:
            raise ValueError(f"destination {self.name!r} is not registered with the buffer")
        events_after = max(acked["events_acked"], acked["events_hi"] or 0)
        intervals_after = max(acked["intervals_acked"], acked["intervals_hi"] or 0)
        max_age = store.active.get(self.name)
        cut = None if max_age is None else time.time() - max_age
        ev = _ranges.following(store.db.conn, "events", events_after, max_records, cut)
        room = max_records - ev[2]
        text = refs = None
        if room and joined:
            *found, text, refs = _ranges.following_joined(store.db.conn, intervals_after, room, cut)
            iv: tuple[int, int, int] | None = (found[0], found[1], found[2])
        else:
            iv = (
                _ranges.following(store.db.conn, "intervals", intervals_after, room, cut)
                if room
                else None
            )
        if not ev[2] and not (iv and iv[2]):
            return None
        seq = store._next_seq()
        events_lo, events_hi = (ev[0], ev[1]) if ev[2] else (0, -1)
        intervals_lo, intervals_hi = (iv[0], iv[1]) if iv and iv[2] else (0, -1)
        row = {
            "seq": seq,
            "destination": self.name,
            "created": time.time(),
            "header": json.dumps(header | {"sequence": seq}, ensure_ascii=False),
            "events_lo": events_lo,
            "events_hi": events_hi,
            "intervals_lo": intervals_lo,
            "intervals_hi": intervals_hi,
            "not_before": cut,
            "status": "pending",
            "finished": None,
            "reason": None,
        }
        store.db.conn.execute(  # not sqlite_utils' insert: it reads the table's schema first
            f"INSERT INTO batches ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
        fresh = (text, iv[2], refs) if text is not None and iv is not None and iv[2] else None
        return row, fresh

    def _finish(self, seq: int, status: str, reason: str | None) -> bool:
        store = self.store
        row = store._one(
            "SELECT * FROM batches WHERE seq = ? AND destination = ?", [seq, self.name]
        )
        if row is None or row["status"] != "pending":
            return False
        older = store._one(
            "SELECT seq FROM batches WHERE destination = ? AND status = 'pending' AND seq < ?",
            [self.name, seq],
        )
        if older is not None:  # the cursor would pass a batch still owed
            raise ValueError(f"{self.name}: batch {seq} closed before {older['seq']}")
        store.db.execute(
            "UPDATE batches SET status = ?, finished = ?, reason = ? WHERE seq = ?",
            [status, time.time(), reason, seq],
        )
        self._advance(row["events_hi"], row["intervals_hi"])
        return True

    def _advance(self, events_hi: int, intervals_hi: int) -> None:
        """Move the cursor past a closed batch's ranges (never back: an empty range is -1)."""
        self.store.db.execute(
            "UPDATE destinations SET events_acked = max(events_acked, ?),"
            " intervals_acked = max(intervals_acked, ?) WHERE name = ?",
            [events_hi, intervals_hi, self.name],
        )
