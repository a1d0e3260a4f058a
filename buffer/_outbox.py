"""One destination's view of the buffer: what is pending for it, and its acknowledgements.

An uplink reads and acknowledges through its own Outbox and cannot move
another destination's cursor. A batch is a persisted pair of seq ranges
(events, intervals) with the destination's age cut-off, assigned before its
first send; re-reading the ranges after a crash gives the same records again,
and the destination's cursor moves in the same transaction that closes the
batch. Batch numbers come from one sequence shared by all destinations, so
every key `<gateway>:<seq>` names one batch only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from buffer._cursors import young
from domain.records import EventRow

if TYPE_CHECKING:
    from buffer.store import Store


@dataclass(frozen=True, slots=True)
class PendingBatch:
    seq: int
    header: dict  # gateway tags, factor set, sequence: fixed when the batch was assigned
    events: list[dict]
    intervals: list[str]  # JSON text, exactly as stored

    @property
    def size(self) -> int:
        return len(self.events) + len(self.intervals)


class Outbox:
    """The batches of destination `name`; used from the store's thread (see buffer.AsyncStore)."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name

    def __repr__(self) -> str:
        return f"Outbox({self.name!r}, {self.store.path})"

    def pending_batch(self, max_records: int, header: dict) -> PendingBatch | None:
        """The batch to send now: this destination's batch already assigned, or a new one.

        Events go first; intervals fill the rest in seq order (time order per
        device). A new batch records `header` (with its sequence) so that every
        resend is the same batch, even if the config changed in between.
        """
        row = self.store._one(
            "SELECT * FROM batches WHERE destination = ? AND status = 'pending' ORDER BY seq",
            [self.name],
        )
        if row is None:
            row = self.store._with_room(lambda: self._assign(max_records, header), poll_path=False)
            if row is None:
                return None
        cut = row["not_before"]
        events = [
            {
                "id": e["seq"],
                "ts": e["ts"],
                "device": e["device"],
                "kind": e["kind"],
                "severity": e["severity"],
                "message": e["message"],
            }
            for e in self.store.db.query(
                f"SELECT * FROM events WHERE {_within('events', cut)} ORDER BY seq",
                [row["events_lo"], row["events_hi"]],
            )
        ]
        intervals = [
            r["body"]
            for r in self.store.db.query(
                f"SELECT body FROM intervals WHERE {_within('intervals', cut)} ORDER BY seq",
                [row["intervals_lo"], row["intervals_hi"]],
            )
        ]
        return PendingBatch(row["seq"], json.loads(row["header"]), events, intervals)

    def finish_batch(self, seq: int, status: str = "acked", reason: str | None = None) -> None:
        """Close a batch as acked or rejected and move the cursor past it, atomically."""
        self.store._with_room(lambda: self._finish(seq, status, reason), poll_path=False)

    def reject_batch(self, seq: int, reason: str, event: EventRow | None) -> None:
        """Quarantine a batch the platform refused, and say so, in one transaction.

        Its records stay in the buffer (see Store.prune) for an operator to resend.
        """

        def write() -> None:
            if self._finish(seq, "rejected", reason) and event is not None:
                self.store._insert_events([event])

        self.store._with_room(write, poll_path=False)

    def renumber_batch(self, seq: int) -> int:
        """Give a pending batch a fresh sequence (its key was taken); returns it."""
        store = self.store
        with store.db.atomic():
            row = store._one(
                "SELECT header FROM batches"
                " WHERE seq = ? AND destination = ? AND status = 'pending'",
                [seq, self.name],
            )
            if row is None:
                raise ValueError(f"{self.name}: no pending batch {seq} to renumber")
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
        Returns False when the batch holds a single record and cannot shrink.
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
            events = self._count("events", row["events_lo"], row["events_hi"], cut)
            intervals = self._count("intervals", row["intervals_lo"], row["intervals_hi"], cut)
            keep = (events + intervals) // 2
            if keep < 1:
                return False
            if keep <= events:
                events_hi = self._nth("events", row["events_lo"], keep, cut)
                update = {"events_hi": events_hi, "intervals_lo": 0, "intervals_hi": -1}
            else:
                intervals_hi = self._nth("intervals", row["intervals_lo"], keep - events, cut)
                update = {"intervals_hi": intervals_hi}
            store.db.table("batches").update(seq, update)
        return True

    def backlog(self) -> dict:
        """What this destination still waits for: intervals, events, the oldest interval."""
        now = time.time()
        for cursor in self.store._cursors():
            if cursor.name == self.name:
                return {**self.store._waiting([cursor], now), "max_age": cursor.max_age}
        raise ValueError(f"destination {self.name!r} is no longer registered with the buffer")

    # --- internals -------------------------------------------------------------

    def _assign(self, max_records: int, header: dict) -> dict | None:
        store = self.store
        acked = store._one(
            "SELECT events_acked, intervals_acked FROM destinations WHERE name = ?", [self.name]
        )
        if acked is None:
            raise ValueError(f"destination {self.name!r} is not registered with the buffer")
        max_age = store.active.get(self.name)
        cut = None if max_age is None else time.time() - max_age
        ev = self._range("events", acked["events_acked"], max_records, cut)
        room = max_records - ev[2]
        iv = self._range("intervals", acked["intervals_acked"], room, cut) if room else None
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
        store.db.table("batches").insert(row)
        return row

    def _finish(self, seq: int, status: str, reason: str | None) -> bool:
        store = self.store
        row = store._one(
            "SELECT * FROM batches WHERE seq = ? AND destination = ?", [seq, self.name]
        )
        if row is None or row["status"] != "pending":
            return False
        store.db.execute(
            "UPDATE batches SET status = ?, finished = ?, reason = ? WHERE seq = ?",
            [status, time.time(), reason, seq],
        )
        store.db.execute(
            "UPDATE destinations SET events_acked = max(events_acked, ?),"
            " intervals_acked = max(intervals_acked, ?) WHERE name = ?",
            [row["events_hi"], row["intervals_hi"], self.name],
        )
        return True

    def _range(self, table: str, after: int, limit: int, cut: float | None) -> tuple[int, int, int]:
        """The next `limit` records after `after`, skipping those older than `cut`."""
        row = self.store._one(
            f"SELECT min(seq) AS lo, max(seq) AS hi, count(*) AS n FROM "
            f"(SELECT seq FROM {table} WHERE seq > ?{young(table, cut)} ORDER BY seq LIMIT ?)",
            [after, limit],
        )
        assert row is not None
        return (row["lo"] or 0, row["hi"] or 0, row["n"])

    def _count(self, table: str, lo: int, hi: int, cut: float | None) -> int:
        row = self.store._one(
            f"SELECT count(*) AS n FROM {table} WHERE {_within(table, cut)}", [lo, hi]
        )
        return row["n"] if row else 0

    def _nth(self, table: str, lo: int, n: int, cut: float | None) -> int:
        """Seq of the n-th record (1-based) of the batch from `lo` on."""
        row = self.store._one(
            f"SELECT seq FROM {table} WHERE {_within(table, cut)} ORDER BY seq LIMIT 1 OFFSET ?",
            [lo, 1 << 62, n - 1],
        )
        assert row is not None
        return row["seq"]


def _within(table: str, cut: float | None) -> str:
    """SQL: the records of a batch's range (two parameters: lo, hi) it really holds."""
    return f"seq BETWEEN ? AND ?{young(table, cut)}"
