"""Run inside a private mount namespace on a 16 MB tmpfs (see test_bounds.py): fill the
disk around a buffer, keep committing, then free the disk. Prints one JSON line."""

from __future__ import annotations

import contextlib
import json
import os
import sys

from buffer import Store
from domain.errors import BufferFull
from domain.records import Commit, IntervalRow

d = sys.argv[1]
store = Store(os.path.join(d, "b.db"))


def work(i: int) -> Commit:
    return Commit(
        intervals=[IntervalRow("m1", 60.0 * i, 60.0, {"i": i, "pad": "x" * 300})],
        samples=[("m1", "p", float(i * 100 + k), 1.0, "V", "good") for k in range(100)],
    )


for i in range(150):
    store.commit(work(i))
ballast = os.path.exists(os.path.join(d, "b.db-reserve"))
free = os.statvfs(d).f_bavail * os.statvfs(d).f_frsize
# someone else's log fills the disk
with contextlib.suppress(OSError), open(os.path.join(d, "filler"), "wb") as f:
    f.write(b"\0" * free)
held, written, other = [], [], None
for i in range(150, 1150):
    try:
        store.commit(work(i))
        written.append(i)
    except BufferFull:
        held.append(i)  # the agent keeps it and writes it later
    except Exception as exc:  # anything else is the failure this test looks for
        other = f"{type(exc).__name__}: {exc}"
        break
os.unlink(os.path.join(d, "filler"))
for i in held:
    store.commit(work(i))
kept = {r[0] for r in store.db.execute("SELECT body ->> '$.i' FROM intervals")}
full = [r[0] for r in store.db.execute("SELECT message FROM events WHERE kind = 'buffer_full'")]
print(
    json.dumps(
        {
            "ballast": ballast,
            "written": len(written),
            "held": len(held),
            "other": other,
            "intervals": len(kept),
            "missing": sorted(set(range(1150)) - kept)[:10],
            "dropped_samples": store.backlog()["dropped_samples"],
            "events": full,
        }
    )
)
