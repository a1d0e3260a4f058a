"""The cursor arithmetic of a window of batches (buffer/_outbox.py), over any order of
acknowledgements and any crash point: the cursor passes only a run of acknowledged batches
from the oldest, a crash leaves every unacknowledged batch pending with its records, and no
record is skipped or sent in two batches."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buffer import Store
from domain.records import Commit, IntervalRow
from tests.fixtures.batches import series

HEADER = {"schema_version": 1, "gateway": {"id": "gw"}, "factor_set": "x"}
MAX = 3  # records per batch

steps = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(1, 4)),
        st.tuples(st.just("ack"), st.integers(0, 7)),
        st.tuples(st.just("commit"), st.integers(1, 7)),
        st.tuples(st.just("crash"), st.just(0)),
    ),
    max_size=25,
)


def commit(store: Store, count: int, first: int) -> None:
    records = series("main_incomer", "2026-11-26T08:00:00+08:00", 1, first + count)[first:]
    rows = [
        IntervalRow(r["device"], datetime.fromisoformat(r["start"]).timestamp(), 60.0, r)
        for r in records
    ]
    store.commit(Commit(intervals=rows))


def cursor(store: Store) -> int:
    row = store._one("SELECT intervals_acked FROM destinations WHERE name = 'up'")
    assert row is not None
    return int(row["intervals_acked"])


def pending(store: Store) -> list[tuple[int, int, int]]:
    return [
        (r["seq"], r["intervals_lo"], r["intervals_hi"])
        for r in store.db.query(
            "SELECT * FROM batches WHERE destination = 'up' AND status = 'pending' ORDER BY seq"
        )
    ]


def records(store: Store, lo: int, hi: int) -> list[int]:
    return [r[0] for r in store.db.execute("SELECT seq FROM intervals WHERE seq BETWEEN ? AND ?",
                                           [lo, hi]).fetchall()]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, joined=st.booleans())
def test_acknowledgements_in_any_order_and_crashes_never_skip_a_record(
    steps: list[tuple[str, int]], joined: bool
) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "buffer.db"
        store = Store(path, destinations={"up": None})
        committed = 0
        commit(store, 5, 0)
        committed += 5
        window: list[int] = []  # batches read and published, oldest first
        acked: set[int] = set()  # acknowledged by the "broker", maybe not closed yet
        content: dict[int, bytes | list[str]] = {}  # what each batch held when first read
        delivered: list[int] = []  # interval seqs of the batches closed
        try:
            for action, n in steps:
                outbox = store.outbox("up")
                if action == "read":
                    after = window[-1] if window else 0
                    for batch in outbox.next_batches(after, n, MAX, HEADER, joined):
                        held = batch.joined if batch.joined is not None else batch.intervals
                        if batch.seq in content:  # read again after a crash: the same
                            assert held == content[batch.seq]
                        content[batch.seq] = held
                        window.append(batch.seq)
                elif action == "ack" and window:
                    acked.add(window[n % len(window)])  # PUBACKs in any order
                    run = []
                    for seq in window:
                        if seq not in acked:
                            break
                        run.append(seq)
                    if window[0] not in acked and len(window) > 1 and window[-1] in acked:
                        with pytest.raises(ValueError, match="not the oldest pending"):
                            outbox.finish_batches([window[-1]])  # out of order: refused
                    before = pending(store)
                    outbox.finish_batches(run)
                    closed = {seq: (lo, hi) for seq, lo, hi in before if seq in run}
                    statuses = {
                        r["seq"]: r["status"]
                        for r in store.db.query("SELECT seq, status FROM batches")
                    }
                    assert all(statuses[seq] == "acked" for seq in run)
                    for seq in run:
                        delivered += records(store, *closed[seq])
                    window = window[len(run) :]
                elif action == "commit":
                    commit(store, n, committed)
                    committed += n
                elif action == "crash":
                    store.close()
                    store = Store(path, destinations={"up": None})
                    window, acked = [], set()  # an acknowledgement not yet closed is lost
                # the cursor never passes a pending batch; pending ranges increase
                at = cursor(store)
                spans = pending(store)
                assert all(lo > at for _, lo, hi in spans if hi >= lo)
                his = [hi for _, _, hi in spans]
                los = [lo for _, lo, _ in spans]
                assert all(los[i + 1] > his[i] for i in range(len(spans) - 1))
                # everything up to the cursor went in a closed batch, once
                assert delivered == list(range(1, at + 1))
            # drained in the end: every record in exactly one closed batch
            outbox = store.outbox("up")
            while (batch := outbox.next_batch(0, MAX, HEADER)) is not None:
                span = pending(store)[0]
                delivered += records(store, span[1], span[2])
                outbox.finish_batches([batch.seq])
            assert delivered == list(range(1, committed + 1))
        finally:
            store.close()
