"""A batch's interval span read in one pass: every record once, in order, at most `limit`
a batch, whatever holes a prune or the age cut left; and the statistics index."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buffer import Store, _ranges, schema
from domain.records import Commit, IntervalRow

ROWS = 120


def record(i: int, stats: bool = False) -> IntervalRow:
    body: dict = {"device": f"m{i % 3}", "start": 60.0 * i, "quantity": float(i)}
    if stats:
        body["stats"] = {"e": [1.0, 2.0, 3.0]}
    return IntervalRow(body["device"], 60.0 * i, 60.0, body)


@given(
    kept=st.sets(st.integers(1, ROWS)),
    limit=st.integers(1, 40),
    cut=st.none() | st.integers(0, ROWS),
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_spans_cover_every_record_once_in_order(
    tmp_path_factory: pytest.TempPathFactory, kept: set[int], limit: int, cut: int | None
) -> None:
    store = Store(tmp_path_factory.mktemp("ranges") / "buffer.db")
    try:
        store.commit(Commit(intervals=[record(i) for i in range(ROWS)]))  # seq 1..ROWS
        conn = store.db.conn
        conn.execute(f"DELETE FROM intervals WHERE seq NOT IN ({','.join(map(str, kept)) or 0})")
        since = None if cut is None else 60.0 * cut  # records ended before are not owed
        owed = [s for s in sorted(kept) if cut is None or s >= cut]  # seq s ends at 60 s
        seen: list[int] = []
        after = 0
        while True:
            lo, hi, n, text, refs = _ranges.following_joined(conn, after, limit, since)
            if not n:
                assert (lo, hi, n, text, refs) == (0, 0, 0, None, None)
                break
            assert refs is None  # these records name no factor
            assert 0 < n <= limit and lo <= hi < lo + limit
            records = json.loads(b"[" + text + b"]")
            assert len(records) == n
            seen += [int(r["quantity"]) + 1 for r in records]  # quantity i is seq i + 1
            after = hi
        assert seen == owed
    finally:
        store.close()


def test_statistics_are_found_by_their_index_in_the_span_asked(tmp_path: Path) -> None:
    store = Store(tmp_path / "buffer.db")
    try:
        store.commit(Commit(intervals=[record(i, stats=i in (10, 50)) for i in range(ROWS)]))
        conn = store.db.conn
        assert _ranges.with_stats(conn, 1, 20, None) and _ranges.with_stats(conn, 51, 51, None)
        assert not _ranges.with_stats(conn, 12, 50, None)
        assert not _ranges.with_stats(conn, 1, 20, 60.0 * 12)  # seq 11 ended before the cut
        plan = conn.execute(
            """EXPLAIN QUERY PLAN SELECT 1 FROM intervals WHERE seq BETWEEN 1 AND 9"""
            """ AND instr(body, '"stats"') > 0"""
        ).fetchall()
        assert "USING INDEX intervals_stats" in str(plan)
    finally:
        store.close()


@pytest.mark.skipif(sqlite3.sqlite_version_info < (3, 35), reason="DROP COLUMN: SQLite 3.35")
def test_the_migration_to_3_indexes_the_records_already_there(tmp_path: Path) -> None:
    """A version 2 file (the index dropped, the version set back) holding records with
    statistics: opened, it is version 3 and its index finds them."""
    path = tmp_path / "buffer.db"
    store = Store(path)
    store.commit(Commit(intervals=[record(i, stats=i == 7) for i in range(ROWS)]))
    store.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP INDEX intervals_stats")
    db.execute("DROP TABLE factors")
    db.execute("ALTER TABLE intervals DROP COLUMN factor")  # SQLite 3.35
    db.execute("PRAGMA user_version = 2")
    db.close()
    store = Store(path)
    try:
        assert store.version == schema.SCHEMA_VERSION == 3
        assert _ranges.with_stats(store.db.conn, 1, ROWS, None)
        assert not _ranges.with_stats(store.db.conn, 9, ROWS, None)
    finally:
        store.close()
