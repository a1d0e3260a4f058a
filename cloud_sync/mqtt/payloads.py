"""What a batch becomes on the broker: the messages of each payload format.

`batch`: the HTTP batch document itself (cloud_sync/document.py
`document`), the same records under the same key `<gateway id>:<sequence>`,
which is in the document and in a `key` user property; a receiver stores it
once however often it comes.

`thingsboard`: ThingsBoard's gateway telemetry API ("Gateway MQTT API",
Telemetry, https://thingsboard.io/docs/reference/gateway-api/telemetry/):
topic `v1/gateway/telemetry`, payload `{"<device>": [{"ts": <Unix ms>,
"values": {...}}]}`, each device an array of timestamped value objects.
A record's figures are keyed with its interval's length (`kwh_15m`), since a
1-minute and a 15-minute interval of one device start at the same ts and
ThingsBoard keeps one value per key and ts. An event is a value of its device
(of the gateway when it has none): `event`, `severity`, `message`.
A resend writes the same values at the same ts: ThingsBoard overwrites, it does
not add.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from buffer import PendingBatch
from cloud_sync.document import document, key
from cloud_sync.mqtt.link import Message

JSON = "application/json"
FIGURES = ("quantity", "kwh", "tce_kg", "co2_kg", "coverage", "scope", "quality", "unit",
           "carrier")  # fmt: skip
"""What of an interval record goes to ThingsBoard (quantity is in the record's unit)."""


def topic(template: str, gateway: str, kind: str = "intervals", device: str = "") -> str:
    return template.format(gateway=gateway, kind=kind, device=device)


def batch_message(batch: PendingBatch, template: str, *, mqtt5: bool, compress: bool) -> Message:
    """The whole batch as one message, the HTTP document (gzip if asked)."""
    body = document(batch)
    gateway = batch.header["gateway"]["id"]
    kind = "events" if batch.events else "intervals"  # events go first in a batch
    if compress:
        body = gzip.compress(body, compresslevel=5, mtime=0)
    return Message(
        topic(template, gateway, kind),
        body,
        content_type=f"{JSON}; encoding=gzip" if compress else JSON,
        utf8=not compress,
        user=_key(batch, mqtt5) + ((("content-encoding", "gzip"),) if compress and mqtt5 else ()),
    )


def thingsboard_messages(batch: PendingBatch, template: str, *, mqtt5: bool) -> list[Message]:
    """The batch as gateway telemetry: one message, or one per device and kind when the
    topic names them."""
    gateway = batch.header["gateway"]["id"]
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    per_device = "{device}" in template
    per_kind = "{kind}" in template
    for kind, device, entry in _entries(batch, gateway):
        group = (device if per_device else "", kind if per_kind else "")
        groups.setdefault(group, {}).setdefault(device, []).append(entry)
    messages = []
    for (device, kind), telemetry in groups.items():
        text = json.dumps(telemetry, separators=(",", ":"), ensure_ascii=False)
        messages.append(
            Message(
                topic(template, gateway, kind or "intervals", device),
                text.encode(),
                content_type=JSON,
                utf8=True,
                user=_key(batch, mqtt5),
            )
        )
    return messages


def _entries(batch: PendingBatch, gateway: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind, device, {ts, values}) for each record of the batch."""
    for event in batch.events:
        values = {"event": event["kind"], "severity": event["severity"],
                  "message": event["message"]}  # fmt: skip
        yield "events", event["device"] or gateway, {"ts": round(event["ts"] * 1000),
                                                      "values": values}  # fmt: skip
    for text in batch.intervals:
        record = json.loads(text)
        start = datetime.fromisoformat(record["start"])
        end = datetime.fromisoformat(record["end"])
        suffix = length_label((end - start).total_seconds())
        values = {
            f"{name}_{suffix}": record[name] for name in FIGURES if record.get(name) is not None
        }
        yield "intervals", record["device"], {"ts": round(start.timestamp() * 1000),
                                              "values": values}  # fmt: skip


def length_label(seconds: float) -> str:
    """An interval's length as a key suffix: 30s, 1m, 15m, 1h, 1d."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _key(batch: PendingBatch, mqtt5: bool) -> tuple[tuple[str, str], ...]:
    return (("key", key(batch)),) if mqtt5 else ()


def status_payload(state: str, gateway: str, version: str) -> bytes:
    """The retained birth and will: `online` or `offline`, who, and the agent's version."""
    return json.dumps({"state": state, "gateway": gateway, "version": version}).encode()
