"""The seq ranges of a batch, as SQL over one connection: which records come next for a
destination, how many a range holds, which is its n-th (buffer/_outbox.py uses them).

A seq range of one table is visited in seq (rowid) order, and group_concat joins in
the order visited; SQLite 3.44 can say so (ORDER BY inside the aggregate), older ones
cannot (their documentation calls the order arbitrary), so where it can it does.
Either way a batch holds the same records; the order inside it is a courtesy.
"""

from __future__ import annotations

import sqlite3

from buffer._cursors import young

CONCAT = (
    "group_concat(body, ',' ORDER BY seq)"
    if sqlite3.sqlite_version_info >= (3, 44, 0)
    else "group_concat(body, ',')"
)


JOINED = f"CAST({CONCAT} AS BLOB), group_concat(DISTINCT factor)"
"""SQL: the records' texts joined, and the numbers of the factors they name."""


def following(
    conn: sqlite3.Connection, table: str, after: int, limit: int, cut: float | None
) -> tuple[int, int, int]:
    """(first seq, last seq, count) of the next `limit` records after `after`, skipping
    those older than `cut`."""
    lo, hi, n = conn.execute(
        f"SELECT min(seq), max(seq), count(*) FROM "
        f"(SELECT seq FROM {table} WHERE seq > ?{young(table, cut)} ORDER BY seq LIMIT ?)",
        [after, limit],
    ).fetchone()
    return (lo or 0, hi or 0, n)


def following_joined(
    conn: sqlite3.Connection, after: int, limit: int, cut: float | None
) -> tuple[int, int, int, bytes | None, str | None]:
    """`following` of the intervals, and their texts joined by commas, in one pass over
    the seq span [first, first + limit) rather than the next `limit` records: the span is
    found by its first seq alone (an index seek), where counting `limit` rows off first
    was a second pass over the same pages (a third of the read, bench/mqtt_drain.py).
    seq has no holes but those a prune or the age cut leaves, so the span holds `limit`
    records but where it has one: then fewer, in a batch smaller by as many. Last, the
    numbers of the factors the records name (buffer/_factors.py), as "3,7"."""
    (lo,) = conn.execute(
        f"SELECT min(seq) FROM intervals WHERE seq > ?{young('intervals', cut)}", [after]
    ).fetchone()
    if lo is None:
        return (0, 0, 0, None, None)
    hi, n, text, refs = conn.execute(
        f"SELECT max(seq), count(*), {JOINED} FROM intervals"
        f" WHERE seq >= ? AND seq < ?{young('intervals', cut)}",
        [lo, lo + limit],
    ).fetchone()
    return (lo, hi, n, text, refs)


def with_stats(conn: sqlite3.Connection, lo: int, hi: int, cut: float | None) -> bool:
    """Whether a record of the intervals [lo, hi] may carry statistics: a seek in the
    partial index `intervals_stats` (buffer/schema.py), whose condition this repeats."""
    (found,) = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM intervals WHERE {within('intervals', cut)}"
        """ AND instr(body, '"stats"') > 0)""",
        [lo, hi],
    ).fetchone()
    return bool(found)


def count(conn: sqlite3.Connection, table: str, lo: int, hi: int, cut: float | None) -> int:
    (n,) = conn.execute(
        f"SELECT count(*) FROM {table} WHERE {within(table, cut)}", [lo, hi]
    ).fetchone()
    return int(n)


def nth(conn: sqlite3.Connection, table: str, lo: int, n: int, cut: float | None) -> int:
    """Seq of the n-th record (1-based) of the batch from `lo` on."""
    (seq,) = conn.execute(
        f"SELECT seq FROM {table} WHERE {within(table, cut)} ORDER BY seq LIMIT 1 OFFSET ?",
        [lo, 1 << 62, n - 1],
    ).fetchone()
    return int(seq)


def within(table: str, cut: float | None) -> str:
    """SQL: the records of a batch's range (two parameters: lo, hi) it really holds."""
    return f"seq BETWEEN ? AND ?{young(table, cut)}"
