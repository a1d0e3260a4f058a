"""Write buffer-v1.db: a buffer as the release before schema versions left it (version 1).

It was made with the code at commit b95e8ae (main before per-destination
cursors; its buffer schema is the last release's, 467ab6f, table for table), so
the migration tests open a file the old code really wrote, not one the new code
imagines. The script needs nothing of the tests but itself. To make it again:

    git worktree add /tmp/v1tree b95e8ae
    PYTHONPATH=/tmp/v1tree .venv/bin/python tests/buffer/data/make_buffer_v1.py \
        tests/buffer/data/buffer-v1.db
    git worktree remove /tmp/v1tree

What it holds (tests/buffer/test_migrations.py relies on these numbers):

- 60 one-minute intervals, main_incomer and press_line_2 from
  2026-11-26T08:00+08:00, committed in three commits of 20;
- batch 1 (1 event, 7 intervals) and batch 2 (8 intervals): acknowledged;
- batch 3 (3 intervals): rejected with HTTP 422, quarantined, with its
  batch_rejected event;
- batch 4 (2 events, 4 intervals): assigned, sent perhaps, never acknowledged;
- 38 intervals and 1 event never assigned to a batch;
- counter state of both meters as of the last commit, and 30 raw samples.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import buffer.store
from buffer.store import Store
from cloud_sync.batch import SCHEMA_VERSION
from domain.records import Commit, EventRow, IntervalRow

GATEWAY = {
    "id": "cd-plant07-gw1",
    "enterprise_id": "91510100MA61234567",
    "region_code": "510100",
    "industry_code": "C3011",
    "timezone": "Asia/Shanghai",
}
FACTOR = {
    "id": "test-grid",
    "value": 0.5,
    "unit": "kgCO2/kWh",
    "source": "made up for tests",
    "year": 2022,
}
HEADER = {"schema_version": SCHEMA_VERSION, "gateway": GATEWAY, "factor_set": "cn-mee-2022"}
DEVICES = ("main_incomer", "press_line_2")
T0 = "2026-11-26T08:00:00+08:00"


def series(device: str, start: str, minutes: int, count: int) -> list[dict]:
    """`count` back-to-back electricity intervals of 1 kWh (as the tests' batches make)."""
    begin = datetime.fromisoformat(start)
    out = []
    for n in range(count):
        at = begin + timedelta(minutes=minutes * n)
        out.append({
            "device": device, "carrier": "electricity", "start": at.isoformat(),
            "end": (at + timedelta(minutes=minutes)).isoformat(), "quantity": 1.0,
            "unit": "kWh", "kwh": 1.0, "tce_kg": 0.1, "co2_kg": 0.5, "scope": 2,
            "factor": FACTOR, "coverage": 1.0, "quality": "good",
        })  # fmt: skip
    return out


def rows(first: int, last: int) -> list[IntervalRow]:
    out = []
    for device in DEVICES:
        for record in series(device, T0, 1, last)[first:]:
            start = datetime.fromisoformat(record["start"]).timestamp()
            out.append(IntervalRow(device, start, 60.0, record))
    return out


def work(first: int, last: int, event: EventRow, n: int) -> Commit:
    t = datetime.fromisoformat(T0).timestamp() + 60.0 * last
    return Commit(
        intervals=rows(first, last),
        events=[event],
        counters={
            f"{d}/import_kwh": {"last": [t, 1000.0 + i * 100 + last], "baseline": 1000.0 + i * 100}
            for i, d in enumerate(DEVICES)
        },
        samples=[("main_incomer", "power_kw", t + s, 480.0 + s, "kW", "good") for s in range(n)],
    )


def main(path: Path) -> None:
    path.unlink(missing_ok=True)
    t = datetime.fromisoformat(T0).timestamp()
    store = Store(path)
    raised = EventRow(t + 300, "main_incomer", "alarm_raised", "warning", "demand above 800 kW")
    store.commit(work(0, 10, raised, 10))
    for size in (8, 8):  # batches 1 and 2: acknowledged
        batch = store.pending_batch(size, HEADER)
        assert batch is not None
        store.finish_batch(batch.seq, "acked")
    rejected = store.pending_batch(3, HEADER)  # batch 3: quarantined
    assert rejected is not None and len(rejected.intervals) == 3
    notice = EventRow(t + 600, None, "batch_rejected", "critical", "batch rejected: HTTP 422")
    store.reject_batch(rejected.seq, "HTTP 422: factor missing", notice)
    cleared = EventRow(t + 900, "main_incomer", "alarm_cleared", "info", "demand back below 760")
    store.commit(work(10, 20, cleared, 10))
    pending = store.pending_batch(6, HEADER)  # batch 4: assigned, never acknowledged
    assert pending is not None and (len(pending.events), len(pending.intervals)) == (2, 4)
    offline = EventRow(t + 1500, "press_line_2", "device_offline", "warning", "offline")
    store.commit(work(20, 30, offline, 10))
    store.close()
    # closing the last connection checkpointed the WAL into the file and removed it
    assert not path.with_name(path.name + "-wal").exists()
    path.with_name(path.name + "-reserve").unlink()  # the full-disk reserve: not data
    assert int.from_bytes(path.read_bytes()[60:64], "big") == 1  # user_version
    print(f"{path}: written by {Path(buffer.store.__file__).parent}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
