"""A bounded buffer: what goes when it is full, what never goes, and a damaged file at start."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from buffer import AsyncStore, Store
from domain.errors import BufferFull
from domain.records import Commit, EventRow, IntervalRow
from tests.fixtures.full_buffer import fill

HEADER = {"schema_version": 1, "gateway": {"id": "gw"}, "factor_set": "cn-mee-2022"}
CAP = 256_000  # bytes: 62 pages of 4 KiB


def samples(n: int, t0: float) -> list[tuple]:
    return [("m1", "power_kw", t0 + i, 1.5 + i, "kW", "good") for i in range(n)]


def interval(start: float) -> IntervalRow:
    return IntervalRow("m1", start, 60.0, {"device": "m1", "start": start, "pad": "x" * 300})


def events_of(store: Store, kind: str) -> list[str]:
    return [r["message"] for r in store.db.query("SELECT * FROM events WHERE kind = ?", [kind])]


def count(store: Store, table: str) -> int:
    return store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_raw_samples_go_first_oldest_first_and_intervals_stay(tmp_path: Path) -> None:
    """At the cap, the oldest raw samples make room; every interval is kept; it is said."""
    store = Store(tmp_path / "b.db", max_size=CAP)
    for i in range(60):  # far more than fits: about 1.5 MB of samples
        store.commit(Commit(intervals=[interval(60.0 * i)], samples=samples(500, 1000.0 * i)))
    assert count(store, "intervals") == 60
    assert store.db.conn.execute("PRAGMA page_count").fetchone()[0] * 4096 <= CAP
    oldest_kept = store.db.execute("SELECT min(ts) FROM samples").fetchone()[0]
    newest = store.db.execute("SELECT max(ts) FROM samples").fetchone()[0]
    assert (oldest_kept > 0, newest) == (True, 1000.0 * 59 + 499)  # the newest survive
    backlog = store.backlog()
    assert backlog["dropped_samples"] == 60 * 500 - count(store, "samples")
    assert backlog["dropped_synced"] == 0
    [full] = events_of(store, "buffer_full")  # dropping again and again: told once an hour
    assert "raw samples" in full and "max_size 0.256 MB" in full
    assert len(events_of(store, "buffer_near_full")) == 1
    store.close()


def test_unsynced_records_are_never_dropped_the_write_is_refused(tmp_path: Path) -> None:
    """Without drop_synced, a buffer full of unsent intervals refuses the next write, whole."""
    store = Store(tmp_path / "b.db", max_size=CAP)
    written = 0
    with pytest.raises(BufferFull, match="max_size"):
        for i in range(10_000):
            store.commit(Commit(intervals=[interval(60.0 * i)], counters={"m1": {"n": i}}))
            written += 1
    assert count(store, "intervals") == written  # all kept, the refused one not half-written
    assert store.counters() == {"m1": {"n": written - 1}}
    with pytest.raises(BufferFull):  # still full: refused again, nothing dropped
        store.commit(Commit(intervals=[interval(-60.0)]))
    assert store.backlog()["dropped_synced"] == 0 and count(store, "intervals") == written
    store.close()


def test_with_drop_synced_acknowledged_records_make_room_and_the_refused_write_lands(
    tmp_path: Path,
) -> None:
    """drop_synced: the oldest acknowledged intervals go, unsent ones stay, and it is said."""
    store = Store(tmp_path / "b.db", max_size=CAP, drop_synced=True)
    n = 0
    with pytest.raises(BufferFull):
        for n in range(10_000):
            store.commit(Commit(intervals=[interval(60.0 * n)]))
    while (batch := store.outbox("sync").pending_batch(100, HEADER)) is not None and batch.size:
        if not batch.intervals:
            break
        store.outbox("sync").finish_batch(batch.seq, "acked")
    store.commit(Commit(intervals=[interval(60.0 * n)]))  # now it fits
    assert store.backlog()["dropped_synced"] > 0
    assert store.backlog()["intervals"] == 1  # the new one, unsent, is there
    message = events_of(store, "buffer_full")[-1]
    assert "synced records" in message and "refused" in message and "held by the agent" in message
    store.close()


def test_the_cap_holds_across_a_restart(tmp_path: Path) -> None:
    """max_size is set on every open, not remembered by the file."""
    Store(tmp_path / "b.db", max_size=CAP).close()
    store = Store(tmp_path / "b.db", max_size=CAP)
    with pytest.raises(BufferFull):
        for i in range(10_000):
            store.commit(Commit(intervals=[interval(60.0 * i)]))
    store.close()


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    """Garbage at buffer.path: renamed with a timestamp, a fresh buffer, an event says so."""
    path = tmp_path / "buffer.db"
    path.write_bytes(b"this is not an SQLite file\n" * 200)
    store = Store(path)
    assert store.replaced is not None and store.replaced.name.startswith("buffer.db.corrupt-")
    assert store.replaced.read_bytes().startswith(b"this is not")
    [message] = events_of(store, "buffer_replaced")
    assert store.replaced.name in message
    store.commit(Commit(intervals=[interval(0.0)]))
    assert count(store, "intervals") == 1
    store.close()


def _written_buffer(path: Path) -> bytes:
    """A closed buffer of 200 intervals, all in the main file (WAL checkpointed): its bytes."""
    store = Store(path)
    for i in range(200):
        store.commit(Commit(intervals=[interval(60.0 * i)]))
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.read_bytes()


def test_a_damaged_database_is_moved_aside(tmp_path: Path) -> None:
    """A real buffer with pages overwritten fails quick_check and is replaced, not opened."""
    path = tmp_path / "buffer.db"
    data = bytearray(_written_buffer(path))
    for page in range(2, len(data) // 4096):  # keep the header page, scramble the rest
        data[page * 4096 + 8 : page * 4096 + 200] = b"\xa5" * 192
    path.write_bytes(bytes(data))
    fresh = Store(path)
    assert fresh.replaced is not None
    assert events_of(fresh, "buffer_replaced")
    assert count(fresh, "intervals") == 0
    fresh.close()


def test_a_truncated_database_is_moved_aside(tmp_path: Path) -> None:
    """A buffer cut short (a copy or a write that stopped half way) is replaced."""
    path = tmp_path / "buffer.db"
    data = _written_buffer(path)
    path.write_bytes(data[: len(data) // 2])
    fresh = Store(path)
    assert fresh.replaced is not None and events_of(fresh, "buffer_replaced")
    assert fresh.replaced.read_bytes() == data[: len(data) // 2]
    assert count(fresh, "intervals") == 0
    fresh.close()


def test_a_sound_buffer_is_kept(tmp_path: Path) -> None:
    """quick_check passes: the same file, its records and no event."""
    path = tmp_path / "buffer.db"
    store = Store(path)
    store.commit(Commit(intervals=[interval(0.0)]))
    store.close()
    again = Store(path)
    assert (again.replaced, count(again, "intervals")) == (None, 1)
    assert events_of(again, "buffer_replaced") == []
    again.close()


def test_pruning_goes_a_chunk_at_a_time(tmp_path: Path) -> None:
    """One prune call drops at most `limit` rows per table: no long transaction."""
    store = Store(tmp_path / "b.db")
    store.commit(Commit(samples=samples(1000, 0.0)))
    assert store.prune(raw_before=10_000.0, synced_before=0.0, limit=300) == 300
    assert count(store, "samples") == 700
    store.close()


async def test_retention_drops_every_old_sample_and_keeps_the_rest(tmp_path: Path) -> None:
    """AsyncStore.prune loops chunk by chunk until everything past retention is gone,
    while commits from the poll path still go through between chunks."""
    store = AsyncStore(tmp_path / "b.db")
    await store.commit(Commit(samples=samples(5000, 0.0) + samples(10, 100_000.0)))
    pruning = asyncio.create_task(store.prune(raw_before=50_000.0, synced_before=0.0))
    await store.commit(Commit(events=[EventRow(1.0, "m1", "x", "info", "during the prune")]))
    assert await pruning == 5000
    left = await store.run(count, store.store, "samples")
    assert left == 10
    store.close()


def test_status_shows_how_full_the_buffer_is_and_what_it_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`edge-agent status` reads the loss counters the full buffer kept."""
    from agent.cli import main

    store = Store(tmp_path / "b.db", max_size=CAP)
    for i in range(30):
        store.commit(Commit(intervals=[interval(60.0 * i)], samples=samples(500, 1000.0 * i)))
    dropped = store.backlog()["dropped_samples"]
    store.close()
    config = tmp_path / "agent.yaml"
    config.write_text(
        "gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: '510100',"
        " industry_code: C3011}\n"
        f"buffer: {{path: {tmp_path / 'b.db'}, max_size: 256kB}}\n"
        "sync: {url: 'https://central.example/api/v1/batches'}\n"
        "devices: []\n"
    )
    assert main(["status", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert dropped > 0
    assert f"of 0.256 MB; dropped when full: {dropped} raw samples, 0 synced records" in out


def test_a_buffer_full_of_unsent_intervals_can_still_send_them_all(tmp_path: Path) -> None:
    """The sync path's own writes (batch rows, cursors) fit even when the poll path is refused,
    so a full buffer drains instead of locking itself up."""
    store = Store(tmp_path / "b.db", max_size=CAP)
    written = 0
    with pytest.raises(BufferFull):
        while True:
            store.commit(Commit(intervals=[interval(60.0 * written)]))
            written += 1
    acked = 0
    while (
        batch := store.outbox("sync").pending_batch(1, HEADER)
    ) is not None:  # one record a batch: many rows
        store.outbox("sync").finish_batch(batch.seq, "acked")
        acked += len(batch.intervals)
    assert acked == written
    assert store.backlog()["intervals"] == 0
    store.close()


def test_a_buffer_path_that_cannot_be_opened_is_not_moved(tmp_path: Path) -> None:
    """Failing to open is not damage (here: a directory where the file should be): nothing is
    renamed and the open fails, so the daemon reports buffer.path instead."""
    path = tmp_path / "buffer.db"
    path.mkdir()
    (path / "keep").write_text("x")
    with pytest.raises(sqlite3.Error):
        Store(path)
    assert list(tmp_path.glob("*.corrupt-*")) == [] and (path / "keep").exists()


@pytest.mark.timeout(60)
def test_a_really_full_disk_drops_raw_samples_and_keeps_every_interval(tmp_path: Path) -> None:
    """On a 16 MB file system filled by another file: the reserve is given back, the oldest
    raw samples make room, and no interval is lost (the few refused ones are written later)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = Path(__file__).with_name("_disk_full.py")
    shell = f"mount -t tmpfs -o size=16m tmpfs {mnt} && exec {sys.executable} {script} {mnt}"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {mnt}"],
        capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.skip("no user and mount namespaces here to make a small file system")
    run = subprocess.run(
        ["unshare", "-rm", "sh", "-c", shell],
        capture_output=True, text=True, timeout=50, stdin=subprocess.DEVNULL,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["other"] is None
    assert result["ballast"] is True
    assert (result["intervals"], result["missing"]) == (1150, [])
    assert result["written"] > result["held"] and result["dropped_samples"] > 0
    assert any("raw samples" in m and "disk is full" in m for m in result["events"])


def test_a_refused_work_leaves_its_events_and_their_state_in_a_room_of_their_own(
    tmp_path: Path,
) -> None:
    """Nothing may be dropped: the poll's interval and counter state are refused (held by
    the agent), its alarm and the rule state that says it is raised are written beyond
    the cap, and taken out of the work, so nothing is written twice."""
    fill(tmp_path / "b.db", CAP)
    store = Store(tmp_path / "b.db", max_size=CAP, event_state=("#rule/",))
    alarm = EventRow(5.0, "m1", "alarm_raised", "critical", "rule hot: power_kw of m1 9 above 5")
    work = Commit(
        intervals=[interval(0.0)],
        events=[alarm],
        counters={"#rule/hot": {"raised": True}, "m1/energy": {"last": 1.0}},
    )
    with pytest.raises(BufferFull):
        store.commit(work)
    kept = (events_of(store, "alarm_raised"), store.counters().get("#rule/hot"))
    held = store.db.execute("SELECT count(*) FROM intervals WHERE device = 'm1'").fetchone()[0]
    store.close()
    assert kept == ([alarm.message], {"raised": True})
    assert work == Commit(intervals=[interval(0.0)], counters={"m1/energy": {"last": 1.0}})
    assert held == 0  # the interval is the agent's to hold, not half written


def test_the_events_room_is_small_and_used_only_once_nothing_may_go(tmp_path: Path) -> None:
    """Events alone (a failed action) on a full buffer go into their room until it is used
    up too (then BufferFull: the agent holds them); the file stays within the cap plus
    EVENT_PAGES."""
    from buffer._room import EVENT_PAGES

    fill(tmp_path / "b.db", CAP)
    store = Store(tmp_path / "b.db", max_size=CAP)
    page = store.db.execute("PRAGMA page_size").fetchone()[0]
    kept = 0
    with pytest.raises(BufferFull):
        while True:
            event = EventRow(float(kept), "m1", "action_failed", "warning", "could not write" * 5)
            store.add_events([event])
            kept += 1
    size = store.db.execute("PRAGMA page_count").fetchone()[0] * page
    store.close()
    assert kept > 100 and len(events_of_file(tmp_path / "b.db", "action_failed")) == kept
    assert CAP < size <= (CAP // page + EVENT_PAGES) * page


def events_of_file(path: Path, kind: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [m for (m,) in db.execute("SELECT message FROM events WHERE kind = ?", [kind])]
