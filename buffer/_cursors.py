"""Who still waits for a record: the destinations' cursors as SQL conditions.

Each destination (an uplink: the HTTP batches under `sync:`, later HJ 212 or
MQTT) has its own cursor per table: every record up to it is done for that
destination, acknowledged or quarantined. A record after the cursor is owed
to it while it is in the destination's pending batch (fixed: a resend must
read the same records), or, not yet assigned, while it is younger than the
destination's age limit, if it has one: older ones are skipped when the next
batch is assigned, so they are no longer owed. A destination with several
pending batches (a window in flight, buffer/_outbox.py) is counted as if they
were one from its cursor to the last one's end, with the earliest cut-off of
them: a record a later batch skipped as too old may be kept a little longer,
never one dropped that a batch still holds.

A record is synced, and retention or a full buffer (drop_synced) may drop
it, when no active destination is owed it. A destination that is no longer
configured keeps its row, so adding it again resumes where it stopped, but it
holds nothing back meanwhile. With no active destination nothing counts as
synced: a buffer nobody drains keeps its records.

The conditions are SQL text with the numbers written in (ints and floats read
from the buffer and the registration, never user text), used inside the
store's DELETE and SELECT statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

# where a record's age counts from, for the age limits: an interval is committed when it
# ends, so its age counts from its end (from its start, a limit shorter than the interval
# would skip every one of them)
TIME = {"intervals": "(start + length)", "events": "ts"}


@dataclass(frozen=True, slots=True)
class Cursor:
    """One active destination, as it stands now."""

    name: str
    max_age: float | None  # seconds; older records are not owed to it (None: all are)
    acked: dict[str, int]  # table -> seq up to which all is done
    inflight: dict[str, int]  # table -> last seq of its pending batches (= acked when none)
    not_before: float | None  # the pending batches' earliest age cut-off

    def owed(self, table: str, now: float) -> str:
        """SQL: the records of `table` this destination still waits for."""
        acked, inflight = self.acked[table], self.inflight[table]
        in_batch = f"seq <= {inflight}" + young(table, self.not_before)
        later = f"seq > {inflight}" + young(
            table, None if self.max_age is None else now - self.max_age
        )
        if self.not_before is None and self.max_age is None:
            return f"seq > {acked}"
        return f"(seq > {acked} AND (({in_batch}) OR ({later})))"

    def done_up_to(self, table: str) -> int | None:
        """Past this seq nothing is settled for this destination (None: its age limit
        may settle any record): a bound that keeps retention's scans short."""
        if self.max_age is not None:
            return None
        return self.acked[table] if self.not_before is None else self.inflight[table]


def young(table: str, cutoff: float | None) -> str:
    """SQL to AND to a condition: the records of `table` not older than `cutoff`."""
    return "" if cutoff is None else f" AND {TIME[table]} >= {float(cutoff)!r}"


def owed_to_any(cursors: list[Cursor], table: str, now: float) -> str:
    """SQL: the records of `table` some active destination still waits for."""
    if not cursors:
        return "1"  # nobody drains the buffer: everything is kept
    floor = min(c.acked[table] for c in cursors)
    return f"seq > {floor} AND (" + " OR ".join(c.owed(table, now) for c in cursors) + ")"


def settled(cursors: list[Cursor], table: str, now: float) -> str:
    """SQL: the records of `table` no active destination waits for any more."""
    if not cursors:
        return "0"
    bounds = [b for c in cursors if (b := c.done_up_to(table)) is not None]
    clause = f"NOT ({owed_to_any(cursors, table, now)})"
    return f"seq <= {min(bounds)} AND {clause}" if bounds else clause


def end_of(conn: sqlite3.Connection, table: str) -> int:
    """The last seq ever given in `table` (AUTOINCREMENT: pruned numbers count too)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", [table]).fetchone()
    return int(row[0]) if row else 0


def read(
    conn: sqlite3.Connection, active: Mapping[str, float | None], version: int
) -> list[Cursor]:
    """The active destinations' cursors. A version 1 file (read-only, for `status`) has one
    cursor in sync_state, which is destination "sync"'s; a destination without a row yet
    (read-only too) starts at the end, as `register` would start it."""
    if version < 2:
        rows = {
            "sync": conn.execute("SELECT events_acked, intervals_acked FROM sync_state").fetchone()
        }
        pending_sql = (
            "SELECT max(events_hi), max(intervals_hi), NULL, count(*) FROM batches"
            " WHERE ? = 'sync' AND status = 'pending'"
        )
    else:
        rows = {
            name: (events, intervals)
            for name, events, intervals in conn.execute(
                "SELECT name, events_acked, intervals_acked FROM destinations"
            )
        }
        pending_sql = (  # several pending (a window): one span, the earliest cut-off;
            # a batch without a cut-off (no age limit then) makes the span keep everything
            "SELECT max(events_hi), max(intervals_hi),"
            " CASE WHEN count(not_before) = count(*) THEN min(not_before) END, count(*)"
            " FROM batches WHERE destination = ? AND status = 'pending'"
        )
    out = []
    for name, max_age in active.items():
        row = rows.get(name)
        if row is None:
            row = (end_of(conn, "events"), end_of(conn, "intervals"))
        acked = {"events": int(row[0]), "intervals": int(row[1])}
        pending = conn.execute(pending_sql, [name]).fetchone()
        inflight, not_before = dict(acked), None
        if pending[3]:
            inflight = {
                "events": max(acked["events"], pending[0]),
                "intervals": max(acked["intervals"], pending[1]),
            }
            not_before = pending[2]
        out.append(Cursor(name, max_age, acked, inflight, not_before))
    return out


def register(conn: sqlite3.Connection, names: list[str], now: float) -> list[str]:
    """Give each destination never seen before its row, starting at the end of the buffer:
    it is sent what is committed from now on (in a new buffer, everything). Returns the
    names added. Starting at the end, not at the oldest record kept, means adding an uplink
    neither floods a platform with a week of history it did not ask for nor holds back the
    retention of records every other destination already has.

    A destination no longer named gives up its pending batch (status `abandoned`): its
    records no longer wait for it and may be pruned, so named again later it must not
    resend that batch's key with part of its records gone. It resumes at its cursor, with
    new batches under new keys (a platform stores an interval once, whatever the key)."""
    known = {r[0] for r in conn.execute("SELECT name FROM destinations")}
    conn.executemany(
        "UPDATE batches SET status = 'abandoned', finished = ?,"
        " reason = 'its destination was removed from the config'"
        " WHERE destination = ? AND status = 'pending'",
        [(now, name) for name in known - set(names)],
    )
    added = [n for n in names if n not in known]
    conn.executemany(
        "INSERT INTO destinations (name, events_acked, intervals_acked, added) VALUES (?, ?, ?, ?)",
        [(n, end_of(conn, "events"), end_of(conn, "intervals"), now) for n in added],
    )
    return added
