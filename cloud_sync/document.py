"""The batch document both delivery kinds send: schema version 1 as JSON, and its key.

The HTTP destination posts it (gzip on the wire) and the MQTT destination publishes
it as its `batch` payload: one definition, so a receiver stores what either sends
the same way.
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from buffer import PendingBatch


def document(batch: PendingBatch) -> bytes:
    """A batch as the JSON document of batch schema version 1, from what the buffer fixed
    for it: the HTTP body (before gzip) and the MQTT destination's `batch` payload."""
    tz = ZoneInfo(batch.header["gateway"]["timezone"])
    events = [
        {**e, "ts": datetime.fromtimestamp(e["ts"], tz).isoformat(timespec="seconds")}
        for e in batch.events
    ]
    head = json.dumps(batch.header | {"events": events}, separators=(",", ":"), ensure_ascii=False)
    if batch.joined is not None:  # read as one text, none with statistics (buffer/_outbox.py)
        return b"".join((head[:-1].encode(), b',"intervals":[', batch.joined, b"]}"))
    intervals = ",".join(batch.intervals)  # in C: a batch is thousands of records
    if '"stats"' in intervals:
        intervals = ",".join(_version_1(text) for text in batch.intervals)
    return f'{head[:-1]},"intervals":[{intervals}]}}'.encode()


def key(batch: PendingBatch) -> str:
    """A batch's idempotency key, `<gateway id>:<sequence>`, as its header has it."""
    return f"{batch.header['gateway']['id']}:{batch.seq}"


def _version_1(text: str) -> str:
    """A stored record as batch schema version 1 has it: without the interval statistics
    kept for other destinations (domain/records.py), which a version 1 receiver refuses."""
    if '"stats"' not in text:  # the buffer's records carry them only for an HJ 212 uplink
        return text
    record = json.loads(text)
    record.pop("stats", None)
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)
