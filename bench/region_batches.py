"""A region's gateways' batches, as the agent's mqtt destination would publish them.

Interval records are made as the agent's buffer keeps them (JSON text with the
fields of domain/batch.py's Interval, as domain/records.py serialises them),
one batch per gateway per hour, and turned into the message by the agent's own
code (cloud_sync/mqtt/payloads.py `batch_message`: the HTTP document of
cloud_sync/http/uploader.py `document`, gzip, the `key` user property). Energy
is a whole number of Wh per minute, so what was sent sums exactly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from buffer import PendingBatch
from cloud_sync.mqtt.link import Message
from cloud_sync.mqtt.payloads import batch_message

TOPIC = "edge-agent/{gateway}/{kind}"  # the agent's default, which the receiver subscribes to
DAY = datetime.fromisoformat("2026-11-26T00:00:00+08:00")
FACTOR = (
    '{"id":"cn-grid-2022","value":0.5703,"unit":"kgCO2/kWh","source":"MEE 2024 No. 12","year":2022}'
)


def gateway_id(number: int) -> str:
    return f"gw{number:05d}"


def header(number: int, sequence: int) -> dict[str, Any]:
    """What the agent's buffer fixes for a batch: its gateway's tags, factor set, sequence."""
    return {
        "schema_version": 1,
        "gateway": {
            "id": gateway_id(number),
            "enterprise_id": "91510100MA61234567",
            "region_code": f"{510100 + number % 97:06d}",
            "industry_code": "C3011",
            "timezone": "Asia/Shanghai",
        },
        "sequence": sequence,
        "factor_set": "cn-mee-2022",
    }


def watt_hours(gateway: int, device: int, minute: int) -> int:
    """A minute's energy of one meter, in Wh: a daily shape plus a spread per meter."""
    base = 300 + 5 * device + (gateway % 50)
    shape = 200 if 8 * 60 <= minute % 1440 < 20 * 60 else 0
    return base + shape + (gateway * 7919 + device * 104_729 + minute * 31) % 97


def records(gateway: int, devices: int, hour: int) -> tuple[list[str], int]:
    """An hour of 1-minute interval records of `devices` meters, as the buffer keeps them
    (JSON text), and their energy in Wh."""
    out: list[str] = []
    total = 0
    for device in range(devices):
        for minute in range(hour * 60, hour * 60 + 60):
            wh = watt_hours(gateway, device, minute)
            total += wh
            kwh = wh / 1000
            begin = DAY + timedelta(minutes=minute)
            out.append(
                f'{{"device":"m{device:02d}","carrier":"electricity",'
                f'"start":"{begin.isoformat()}",'
                f'"end":"{(begin + timedelta(minutes=1)).isoformat()}",'
                f'"quantity":{kwh},"unit":"kWh","kwh":{kwh},'
                f'"tce_kg":{round(kwh * 0.1229, 6)},"co2_kg":{round(kwh * 0.5703, 6)},'
                f'"scope":2,"factor":{FACTOR},"coverage":1.0,"quality":"good"}}'
            )
    return out, total


def message(gateway: int, devices: int, hour: int) -> Message:
    """A gateway's batch of one hour as the agent's mqtt destination publishes it."""
    return message_of(gateway, hour, records(gateway, devices, hour)[0])


def message_of(gateway: int, hour: int, texts: list[str]) -> Message:
    """`records` of a gateway's hour as the agent's mqtt destination publishes them: the
    hour's batch (sequence hour + 1), gzipped, with its key."""
    batch = PendingBatch(hour + 1, header(gateway, hour + 1), [], texts)
    return batch_message(batch, TOPIC, mqtt5=True, compress=True)
