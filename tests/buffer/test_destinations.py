"""Several destinations, one buffer: each its own cursor; a record stays until all have it."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buffer import AsyncStore, Outbox, Store
from domain.errors import BufferFull
from domain.records import Commit, EventRow, IntervalRow

HEADER = {"schema_version": 1, "gateway": {"id": "gw"}, "factor_set": "cn-mee-2022"}
HOUR = 3600.0
TWO = {"sync": None, "epb": None}
LIMITED = {"sync": None, "epb": HOUR}  # epb is owed the last hour only
WEEK_AGO = 8 * 86400.0
FUTURE = 1e12  # synced_before: everything synced may go now


class Plant:
    """Commits numbered intervals and events into a store, `age` seconds old."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.n = 0

    def commit(self, intervals: int, *, age: float = 0.0, events: int = 0, pad: int = 0) -> list:
        now = time.time()
        ids = []
        rows = []
        for _ in range(intervals):
            self.n += 1
            ids.append(f"i{self.n}")
            rows.append(IntervalRow("m1", now - age, 60.0, {"id": f"i{self.n}", "pad": "x" * pad}))
        notes = []
        for _ in range(events):
            self.n += 1
            ids.append(f"e{self.n}")
            notes.append(EventRow(now - age, "m1", "counter_reset", "warning", f"e{self.n}"))
        self.store.commit(Commit(intervals=rows, events=notes))
        return ids


def ids(batch) -> list[str]:  # type: ignore[no-untyped-def]
    import json

    return [e["message"] for e in batch.events] + [json.loads(b)["id"] for b in batch.intervals]


def drain(outbox: Outbox, size: int = 100) -> list[str]:
    """Everything pending for this destination, acknowledged batch by batch."""
    got: list[str] = []
    while (batch := outbox.pending_batch(size, HEADER)) is not None:
        got += ids(batch)
        outbox.finish_batch(batch.seq, "acked")
    return got


def count(store: Store, table: str) -> int:
    return store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "buffer.db", destinations=TWO)
    yield s
    s.close()


# --- cursors -----------------------------------------------------------------------------


def test_each_destination_gets_every_record_once_at_its_own_pace(store: Store) -> None:
    """One destination far ahead of the other: both get everything, in order, once."""
    plant = Plant(store)
    first = plant.commit(5, events=1)
    sync, epb = store.outbox("sync"), store.outbox("epb")
    assert drain(sync, 2) == [first[-1], *first[:-1]]  # events go ahead of the backlog
    second = plant.commit(3)
    assert drain(sync) == second
    assert drain(epb, 3) == [first[-1], *first[:-1], *second]
    assert drain(sync) == drain(epb) == []


def test_batch_numbers_are_one_sequence_for_all_destinations(store: Store) -> None:
    """Two destinations' batches never share a number, so never a key."""
    Plant(store).commit(2)
    a = store.outbox("sync").pending_batch(1, HEADER)
    b = store.outbox("epb").pending_batch(1, HEADER)
    assert a is not None and b is not None
    assert b.seq == a.seq + 1 and b.header["sequence"] == b.seq
    fresh = store.outbox("sync").renumber_batch(a.seq)
    assert fresh == b.seq + 1


def test_a_destination_cannot_touch_another_ones_batch(store: Store) -> None:
    """epb acknowledging, shrinking or renumbering sync's batch changes nothing."""
    Plant(store).commit(4)
    sync, epb = store.outbox("sync"), store.outbox("epb")
    batch = sync.pending_batch(4, HEADER)
    assert batch is not None
    epb.finish_batch(batch.seq, "acked")
    epb.reject_batch(batch.seq, "no", None)
    assert not epb.shrink_batch(batch.seq)
    with pytest.raises(ValueError, match="no pending batch"):
        epb.renumber_batch(batch.seq)
    again = sync.pending_batch(4, HEADER)
    assert again is not None and (again.seq, again.size) == (batch.seq, 4)
    assert store.backlog()["destinations"]["sync"]["intervals"] == 4


def test_an_unregistered_destination_has_no_outbox(store: Store) -> None:
    """Naming a destination the agent did not declare is a programming error, said clearly."""
    with pytest.raises(ValueError, match=r"'mqtt' is not registered .*epb, sync"):
        store.outbox("mqtt")


def test_a_new_destination_starts_at_the_end_of_the_buffer(store: Store) -> None:
    """Added later, it is sent what is committed from then on, not the history."""
    plant = Plant(store)
    before = plant.commit(3, events=1)
    store.register({**TWO, "mqtt": None})
    assert store.outbox("mqtt").pending_batch(100, HEADER) is None
    after = plant.commit(2)
    assert drain(store.outbox("mqtt")) == after
    assert drain(store.outbox("sync")) == [before[-1], *before[:-1], *after]


def test_in_a_new_buffer_every_destination_gets_everything(tmp_path: Path) -> None:
    """Declared at open on an empty buffer, each destination's end is the beginning."""
    store = Store(tmp_path / "b.db", destinations={"sync": None, "mqtt": None})
    sent = Plant(store).commit(3)
    assert drain(store.outbox("sync")) == drain(store.outbox("mqtt")) == sent
    store.close()


def test_cursors_survive_a_restart(tmp_path: Path) -> None:
    """Each destination resumes where it stopped, whatever the other did."""
    store = Store(tmp_path / "b.db", destinations=TWO)
    sent = Plant(store).commit(4)
    assert drain(store.outbox("sync")) == sent
    store.close()
    again = Store(tmp_path / "b.db", destinations=TWO)
    assert drain(again.outbox("sync")) == []
    assert drain(again.outbox("epb")) == sent
    again.close()


async def test_the_async_store_registers_and_hands_out_outboxes(tmp_path: Path) -> None:
    """AsyncStore.register and AsyncOutbox do on the store's thread what Store does."""
    store = AsyncStore(tmp_path / "b.db")
    await store.commit(Commit(intervals=[IntervalRow("m1", time.time(), 60.0, {"id": "i1"})]))
    await store.register({"sync": None, "epb": HOUR})
    epb = store.outbox("epb")
    assert await epb.pending_batch(10, HEADER) is None  # it came after the interval
    sync = store.outbox("sync")
    batch = await sync.pending_batch(10, HEADER)
    assert batch is not None and await sync.shrink_batch(batch.seq) is False
    await sync.finish_batch(batch.seq)
    assert await sync.backlog() == {"intervals": 0, "events": 0, "oldest": None, "max_age": None}
    assert (await epb.backlog())["max_age"] == HOUR
    store.close()


# --- age limits --------------------------------------------------------------------------


def test_a_destination_is_not_sent_records_older_than_its_age_limit(tmp_path: Path) -> None:
    """epb keeps an hour: two-hour-old records are skipped for it, sent to sync."""
    store = Store(tmp_path / "b.db", destinations=LIMITED)
    plant = Plant(store)
    old = plant.commit(3, age=2 * HOUR, events=1)
    young = plant.commit(2, events=1)
    backlog = store.backlog()
    assert backlog["destinations"]["epb"]["intervals"] == 2
    assert backlog["destinations"]["epb"]["max_age"] == HOUR
    assert (backlog["intervals"], backlog["events"]) == (5, 2)  # sync waits for all
    assert drain(store.outbox("epb"), 2) == [young[-1], *young[:-1]]
    assert drain(store.outbox("sync")) == [old[-1], young[-1], *old[:-1], *young[:-1]]
    store.close()


def test_records_older_than_the_limit_go_once_the_others_have_them(tmp_path: Path) -> None:
    """Retention: what sync has and is too old for epb is pruned; what epb still needs is not."""
    store = Store(tmp_path / "b.db", destinations=LIMITED)
    plant = Plant(store)
    plant.commit(3, age=WEEK_AGO)
    plant.commit(2, age=10.0)
    assert store.prune(raw_before=0, synced_before=FUTURE) == 0  # sync has nothing yet
    drain(store.outbox("sync"))
    assert store.prune(raw_before=0, synced_before=FUTURE) == 3  # the two young: epb's
    assert count(store, "intervals") == 2
    drain(store.outbox("epb"))
    assert store.prune(raw_before=0, synced_before=FUTURE) == 2
    store.close()


def test_a_pending_batch_keeps_its_records_when_they_age_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch assigned is resent whole, even after its records passed the age limit:
    its key must always carry the same records. Once acknowledged, they may go."""
    store = Store(tmp_path / "b.db", destinations=LIMITED)
    sent = Plant(store).commit(3)
    drain(store.outbox("sync"))
    batch = store.outbox("epb").pending_batch(10, HEADER)
    assert batch is not None and ids(batch) == sent
    later = time.time() + 2 * HOUR
    monkeypatch.setattr(time, "time", lambda: later)
    assert store.prune(raw_before=0, synced_before=FUTURE) == 0
    again = store.outbox("epb").pending_batch(10, HEADER)
    assert again is not None and (again.seq, ids(again)) == (batch.seq, sent)
    assert store.backlog()["destinations"]["epb"]["intervals"] == 3
    store.outbox("epb").finish_batch(batch.seq, "acked")
    assert store.prune(raw_before=0, synced_before=FUTURE) == 3
    store.close()


def test_an_intervals_age_counts_from_its_end(tmp_path: Path) -> None:
    """An interval is committed when it closes, its start already a length in the past: a
    limit shorter than the interval still gets each one that just closed."""
    store = Store(tmp_path / "b.db", destinations={"sync": None, "epb": 30.0})
    now = time.time()
    rows = [IntervalRow("m1", now - 900.0, 900.0, {"id": "just-closed"})]
    rows.append(IntervalRow("m1", now - 3600.0, 900.0, {"id": "long-ago"}))
    store.commit(Commit(intervals=rows))
    assert drain(store.outbox("epb")) == ["just-closed"]
    store.close()


# --- registration and retention ----------------------------------------------------------


def test_a_record_is_kept_until_every_destination_has_it(store: Store) -> None:
    """Acknowledged by sync a week ago and more: kept while epb has not got it."""
    Plant(store).commit(5, age=WEEK_AGO, events=1)
    drain(store.outbox("sync"))
    assert store.prune(raw_before=0, synced_before=time.time() - 7 * 86400) == 0
    backlog = store.backlog()
    assert (backlog["intervals"], backlog["events"]) == (5, 1)
    assert backlog["destinations"]["sync"]["intervals"] == 0
    drain(store.outbox("epb"))
    assert store.prune(raw_before=0, synced_before=time.time() - 7 * 86400) == 6


def test_a_destination_no_longer_declared_holds_nothing_back_and_resumes_when_back(
    store: Store,
) -> None:
    """epb removed from the config: records go once sync has them; epb, declared again,
    carries on from its own cursor with what is still there."""
    plant = Plant(store)
    plant.commit(3, age=WEEK_AGO)
    drain(store.outbox("sync"))
    store.register({"sync": None})
    assert store.backlog()["destinations"].keys() == {"sync"}
    with pytest.raises(ValueError):
        store.outbox("epb")
    fresh = plant.commit(2)
    assert store.prune(raw_before=0, synced_before=FUTURE) == 3
    store.register(TWO)
    assert drain(store.outbox("epb")) == fresh  # the three pruned ones are gone for it
    assert drain(store.outbox("sync")) == fresh


def test_a_removed_destination_gives_up_its_pending_batch(store: Store) -> None:
    """Its pending batch is abandoned when it leaves the config: declared again after its
    records were pruned, it never resends that key with part of the batch gone."""
    plant = Plant(store)
    plant.commit(3, age=WEEK_AGO)
    assigned = store.outbox("epb").pending_batch(10, HEADER)
    assert assigned is not None and assigned.size == 3
    store.register({"sync": None})
    given_up = store.db.execute("SELECT status FROM batches WHERE seq = ?", [assigned.seq])
    assert given_up.fetchone()[0] == "abandoned"
    drain(store.outbox("sync"))
    assert store.prune(raw_before=0, synced_before=FUTURE) == 3
    fresh = plant.commit(2)
    store.register(TWO)
    batch = store.outbox("epb").pending_batch(10, HEADER)
    assert batch is not None and batch.seq != assigned.seq and ids(batch) == fresh


def test_with_no_destination_declared_nothing_counts_as_synced(store: Store) -> None:
    """A buffer nobody drains keeps every record (only raw samples age out)."""
    Plant(store).commit(3, age=WEEK_AGO)
    drain(store.outbox("sync"))
    drain(store.outbox("epb"))
    store.register({})
    assert store.prune(raw_before=0, synced_before=FUTURE) == 0
    assert store.backlog()["intervals"] == 3


def test_age_limits_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="age limit must be positive"):
        Store(tmp_path / "b.db", destinations={"sync": 0})


# --- a full buffer ------------------------------------------------------------------------

CAP = 256_000


def fill_until_full(plant: Plant, **kw: float) -> int:
    written = 0
    with pytest.raises(BufferFull):
        while True:
            plant.commit(1, pad=300, **kw)
            written += 1
    return written


def test_a_full_buffer_drops_only_what_every_destination_has(tmp_path: Path) -> None:
    """drop_synced: while epb lags, sync's acknowledgements free nothing; once epb has the
    records too, the oldest go and the refused write lands."""
    store = Store(tmp_path / "b.db", max_size=CAP, drop_synced=True, destinations=TWO)
    plant = Plant(store)
    written = fill_until_full(plant)
    drain(store.outbox("sync"))
    with pytest.raises(BufferFull):
        plant.commit(1, pad=300)
    assert store.backlog()["dropped_synced"] == 0 and count(store, "intervals") == written
    drain(store.outbox("epb"))
    plant.commit(1, pad=300)
    assert store.backlog()["dropped_synced"] > 0
    assert store.backlog()["destinations"]["epb"]["intervals"] == 1
    store.close()


def test_a_full_buffer_may_drop_what_is_too_old_for_the_limited_destination(
    tmp_path: Path,
) -> None:
    """drop_synced with epb keeping an hour: two-hour-old records sync has may go."""
    store = Store(tmp_path / "b.db", max_size=CAP, drop_synced=True, destinations=LIMITED)
    plant = Plant(store)
    fill_until_full(plant, age=2 * HOUR)
    drain(store.outbox("sync"))
    plant.commit(1, pad=300)
    assert store.backlog()["dropped_synced"] > 0
    store.close()


# --- any interleaving ------------------------------------------------------------------------

STEP = st.one_of(
    st.tuples(st.just("commit"), st.integers(1, 4), st.booleans()),
    st.tuples(st.just("assign"), st.sampled_from(["sync", "epb"]), st.integers(1, 6)),
    st.tuples(st.just("ack"), st.sampled_from(["sync", "epb"])),
    st.tuples(st.just("shrink"), st.sampled_from(["sync", "epb"])),
    st.tuples(st.just("prune")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEP, max_size=30))
def test_any_interleaving_gives_each_destination_each_record_once(steps: list[tuple]) -> None:
    """Commits, batches, acknowledgements, halvings and pruning in any order, across sync
    (keeps all) and epb (keeps an hour): sync gets every record, epb every young one,
    each exactly once and in order; pruning never takes one still owed; at the end,
    with both drained, nothing is left."""
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "b.db", destinations=LIMITED)
        plant = Plant(store)
        committed: list[tuple[str, bool]] = []
        got: dict[str, list[str]] = {"sync": [], "epb": []}
        pending: dict = {"sync": None, "epb": None}
        for step in steps:
            if step[0] == "commit":
                _, n, old = step
                new = plant.commit(n, age=2 * HOUR if old else 0.0, events=1)
                committed += [(i, old) for i in new]
            elif step[0] == "assign":
                _, name, size = step
                batch = store.outbox(name).pending_batch(size, HEADER)
                if pending[name] is not None:  # assigned before: the same batch, unchanged
                    assert batch is not None and batch == pending[name]
                pending[name] = batch
            elif step[0] == "ack" and pending[step[1]] is not None:
                got[step[1]] += ids(pending[step[1]])
                store.outbox(step[1]).finish_batch(pending[step[1]].seq, "acked")
                pending[step[1]] = None
            elif step[0] == "shrink" and pending[step[1]] is not None:
                store.outbox(step[1]).shrink_batch(pending[step[1]].seq)
                pending[step[1]] = None
            elif step[0] == "prune":
                store.prune(raw_before=0, synced_before=FUTURE)
        for name in ("sync", "epb"):
            got[name] += drain(store.outbox(name), 5)
        store.prune(raw_before=0, synced_before=FUTURE)
        left = count(store, "intervals") + count(store, "events")
        store.close()
    order = [i for i, _ in committed]

    def in_order(seen: list[str]) -> list[str]:  # events go ahead of intervals per batch
        return sorted(seen, key=order.index)

    assert len(got["sync"]) == len(set(got["sync"])) and len(got["epb"]) == len(set(got["epb"]))
    assert in_order(got["sync"]) == order
    assert in_order(got["epb"]) == [i for i, old in committed if not old]
    for name in ("sync", "epb"):
        intervals = [i for i in got[name] if i.startswith("i")]
        assert intervals == in_order(intervals)
    assert left == 0
