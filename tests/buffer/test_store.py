"""The buffer's contract: what was committed stays, batches are stable, cursors move once."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from buffer import AsyncStore, Store
from domain.records import Commit, EventRow, IntervalRow

HEADER = {"schema_version": 1, "gateway": {"id": "gw"}, "factor_set": "cn-mee-2022"}


def interval(device: str, start: float) -> IntervalRow:
    return IntervalRow(device, start, 60.0, {"device": device, "start": start, "quantity": 1.0})


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "buffer.db")
    yield s
    s.close()


def fill(store: Store, intervals: int, events: int = 0) -> None:
    store.commit(
        Commit(
            intervals=[interval("m1", 60.0 * i) for i in range(intervals)],
            events=[
                EventRow(float(i), "m1", "counter_reset", "warning", f"e{i}") for i in range(events)
            ],
        )
    )


def test_buffer_runs_in_wal_mode_with_full_sync(store: Store) -> None:
    """Committed data must survive a power cut: WAL with synchronous=FULL."""
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_a_batch_is_stable_until_finished(store: Store) -> None:
    """The pending batch is re-read with the same key and content, even from a new connection."""
    fill(store, 5)
    first = store.outbox("sync").pending_batch(3, HEADER)
    store.close()
    again = Store(store.path).outbox("sync").pending_batch(100, {"gateway": "changed meanwhile"})
    assert first is not None and again is not None
    assert (again.seq, again.header, again.intervals) == (first.seq, first.header, first.intervals)
    assert first.header == HEADER | {"sequence": first.seq}
    assert len(first.intervals) == 3


def test_finishing_a_batch_moves_on_to_the_rest(store: Store) -> None:
    """After an ack the next batch starts after the acknowledged records, never before."""
    fill(store, 5)
    first = store.outbox("sync").pending_batch(3, HEADER)
    assert first is not None
    store.outbox("sync").finish_batch(first.seq, "acked")
    second = store.outbox("sync").pending_batch(100, HEADER)
    assert second is not None and second.seq == first.seq + 1
    assert [json.loads(b)["start"] for b in second.intervals] == [180.0, 240.0]
    store.outbox("sync").finish_batch(second.seq, "acked")
    assert store.outbox("sync").pending_batch(100, HEADER) is None
    assert store.backlog()["intervals"] == 0


def test_events_go_ahead_of_the_interval_backlog(store: Store) -> None:
    """A batch takes every waiting event first, then fills up with intervals."""
    fill(store, 10)
    fill(store, 0, events=2)
    batch = store.outbox("sync").pending_batch(4, HEADER)
    assert batch is not None
    assert [e["message"] for e in batch.events] == ["e0", "e1"]
    assert len(batch.intervals) == 2


def test_finishing_twice_changes_nothing(store: Store) -> None:
    """A duplicate acknowledgement cannot skip records."""
    fill(store, 4)
    batch = store.outbox("sync").pending_batch(2, HEADER)
    assert batch is not None
    store.outbox("sync").finish_batch(batch.seq, "acked")
    store.outbox("sync").finish_batch(batch.seq, "acked")
    assert store.backlog()["intervals"] == 2


def test_shrinking_halves_a_pending_batch_and_keeps_the_rest_waiting(store: Store) -> None:
    """A batch refused as too large is halved; nothing is dropped."""
    fill(store, 6, events=1)
    batch = store.outbox("sync").pending_batch(100, HEADER)
    assert batch is not None and batch.size == 7
    assert store.outbox("sync").shrink_batch(batch.seq)
    smaller = store.outbox("sync").pending_batch(100, HEADER)
    assert smaller is not None and smaller.seq == batch.seq and smaller.size == 3
    store.outbox("sync").finish_batch(smaller.seq, "acked")
    rest = store.outbox("sync").pending_batch(100, HEADER)
    assert rest is not None and rest.size == 4


def test_sequence_numbers_are_never_reused_after_pruning(store: Store) -> None:
    """Pruned synced records leave no hole a new record could fall into."""
    fill(store, 3)
    batch = store.outbox("sync").pending_batch(100, HEADER)
    assert batch is not None
    store.outbox("sync").finish_batch(batch.seq, "acked")
    assert store.prune(raw_before=0, synced_before=1e12) == 3
    fill(store, 1)
    assert store.backlog()["intervals"] == 1
    assert store.outbox("sync").pending_batch(100, HEADER) is not None


def test_batch_numbers_start_at_the_clock_and_never_come_back(tmp_path: Path) -> None:
    """A new buffer numbers batches from the time in ms; pruning never resets the count."""
    store = Store(tmp_path / "b.db")
    fill(store, 2)
    first = store.outbox("sync").pending_batch(1, HEADER)
    assert first is not None and first.seq > 1_700_000_000_000
    store.outbox("sync").finish_batch(first.seq, "acked")
    store.prune(raw_before=0, synced_before=1e12)  # every finished batch row is gone
    second = store.outbox("sync").pending_batch(1, HEADER)
    assert second is not None and second.seq == first.seq + 1
    store.close()


def test_a_quarantined_batch_and_its_records_are_kept(store: Store) -> None:
    """Rejected batches are set aside with their event, and pruning keeps them."""
    fill(store, 3)
    batch = store.outbox("sync").pending_batch(2, HEADER)
    assert batch is not None
    store.outbox("sync").reject_batch(
        batch.seq, "HTTP 422: bad", EventRow(1.0, None, "batch_rejected", "critical", "x")
    )
    store.prune(raw_before=1e12, synced_before=1e12)
    assert store.db.execute("SELECT count(*) FROM intervals").fetchone()[0] == 3
    assert store.last_batch()["status"] == "rejected"
    nxt = store.outbox("sync").pending_batch(10, HEADER)
    assert nxt is not None and [e["kind"] for e in nxt.events] == ["batch_rejected"]
    assert len(nxt.intervals) == 1


def test_a_renumbered_batch_keeps_its_records_under_a_new_key(store: Store) -> None:
    """409 (key taken): the same records go out under a fresh sequence."""
    fill(store, 2)
    batch = store.outbox("sync").pending_batch(10, HEADER)
    assert batch is not None
    fresh = store.outbox("sync").renumber_batch(batch.seq)
    again = store.outbox("sync").pending_batch(10, HEADER)
    assert again is not None
    assert (again.seq, again.header["sequence"], again.intervals) == (fresh, fresh, batch.intervals)
    assert fresh > batch.seq


def test_pruning_never_touches_unsynced_records(store: Store) -> None:
    """Only acknowledged records may be pruned, however old."""
    fill(store, 3)
    store.prune(raw_before=1e12, synced_before=1e12)
    assert store.backlog()["intervals"] == 3


def test_counter_state_is_committed_with_the_intervals(store: Store) -> None:
    """Counter state and the intervals computed from it land in one transaction."""
    store.commit(Commit(intervals=[interval("m1", 0.0)], counters={"m1/kwh": {"last": [1.0, 2.0]}}))
    assert store.counters() == {"m1/kwh": {"last": [1.0, 2.0]}}


def test_a_failed_commit_leaves_nothing_behind(store: Store) -> None:
    """All or nothing: an error mid-commit writes no interval and no counter state."""
    bad = Commit(intervals=[interval("m1", 0.0)], counters={"m1/kwh": {"x": object()}})
    with pytest.raises(TypeError):
        store.commit(bad)
    assert store.backlog()["intervals"] == 0
    assert store.counters() == {}


def test_a_reader_sees_the_buffer_while_the_writer_runs(store: Store) -> None:
    """`status` reads a live buffer read-only, without blocking the writer."""
    fill(store, 2)
    reader = Store(store.path, readonly=True)
    fill(store, 1)
    assert reader.backlog()["intervals"] == 3
    with pytest.raises(sqlite3.OperationalError):
        reader.db.execute("DELETE FROM intervals")
    reader.close()


async def test_commits_arriving_together_share_a_transaction(tmp_path: Path) -> None:
    """Many polls committing at once are written in fewer transactions, and all land."""
    store = AsyncStore(tmp_path / "buffer.db")
    transactions = []
    store.store.db.conn.set_trace_callback(
        lambda sql: transactions.append(sql) if sql.strip().upper() == "COMMIT" else None
    )
    await asyncio.gather(
        *(store.commit(Commit(intervals=[interval(f"m{i}", 0.0)])) for i in range(50))
    )
    store.store.db.conn.set_trace_callback(None)
    assert (await store.backlog())["intervals"] == 50
    assert len(transactions) < 10
    store.close()


async def test_a_bad_commit_fails_alone(tmp_path: Path) -> None:
    """A commit that cannot be written raises for its caller only; the others land."""
    store = AsyncStore(tmp_path / "buffer.db")
    bad = Commit(counters={"m1/kwh": {"x": object()}})
    results = await asyncio.gather(
        store.commit(Commit(intervals=[interval("m1", 0.0)])),
        store.commit(bad),
        store.commit(Commit(intervals=[interval("m2", 0.0)])),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == ["NoneType", "TypeError", "NoneType"]
    assert (await store.backlog())["intervals"] == 2
    store.close()


def test_a_batch_without_events_leaves_the_event_cursor_alone(store: Store) -> None:
    """Acknowledging intervals only never moves the event cursor back."""
    fill(store, 0, events=2)
    batch = store.outbox("sync").pending_batch(10, HEADER)
    assert batch is not None
    store.outbox("sync").finish_batch(batch.seq, "acked")
    fill(store, 2)
    batch = store.outbox("sync").pending_batch(10, HEADER)
    assert batch is not None and batch.events == []
    store.outbox("sync").finish_batch(batch.seq, "acked")
    backlog = store.backlog()
    assert (backlog["intervals"], backlog["events"], backlog["oldest"]) == (0, 0, None)


def test_pruning_keeps_the_events_of_a_quarantined_batch(store: Store) -> None:
    """A rejected batch's events stay for an operator, like its intervals."""
    fill(store, 0, events=2)
    batch = store.outbox("sync").pending_batch(10, HEADER)
    assert batch is not None
    store.outbox("sync").reject_batch(batch.seq, "HTTP 422", None)
    store.prune(raw_before=1e12, synced_before=1e12)
    assert store.db.execute("SELECT count(*) FROM events").fetchone()[0] == 2


async def test_a_cancelled_waiter_does_not_strand_its_group(tmp_path: Path) -> None:
    """One poll cancelled while its commit is written: the others still hear back."""
    store = AsyncStore(tmp_path / "buffer.db")
    waiters = [
        asyncio.ensure_future(store.commit(Commit(intervals=[interval(f"m{i}", 0.0)])))
        for i in range(5)
    ]
    await asyncio.sleep(0)
    waiters[2].cancel()
    _, pending = await asyncio.wait(waiters, timeout=5)
    assert not pending
    assert (await store.backlog())["intervals"] == 5
    store.close()
