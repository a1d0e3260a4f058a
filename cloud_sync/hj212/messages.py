"""From the buffer's interval records to HJ 212 data messages, and from readings to
real-time ones: which record goes under which MN and CN, with which items.

Records of one MN, CN and interval start become one message, the devices' items
side by side, in the order the buffer holds them (time order per device), so a
platform gets each MN's data in order; the uplink completes a message whose
records a batch holds only part of (uplink.py, `_wholes`). A value's
data flag (`-Flag`) is N only for an interval measured whole; an interval with
a gap, or estimated over one, is B (communication error), so a gap never looks
normal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cloud_sync.base import Identity
from cloud_sync.hj212 import codes
from cloud_sync.hj212.cp import number, stamp
from cloud_sync.hj212.settings.figures import Sent, figures_of, mn_of
from config.units import DAY, HOUR

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from cloud_sync.hj212.settings import Hj212Settings
    from domain.reading import Reading

_ORDER = ("Cou", "Min", "Avg", "Max")  # the order of an item's fields in the standard's examples


@dataclass(frozen=True, slots=True)
class Message:
    """One data message: its MN and CN, its DataTime, and its CP items."""

    mn: str
    cn: str
    data_time: str  # YYYYMMDDhhmmss, local
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """What this destination sends, from its settings and the plant."""

    mn: dict[str, str]  # device -> MN
    sent: dict[str, list[Sent]]  # device -> its figures under their codes
    cn: dict[float, str]  # interval length -> CN

    @classmethod
    def of(cls, settings: Hj212Settings, identity: Identity) -> Plan:
        mn = mn_of(settings)
        sent = {}
        for device in mn:
            facts = identity.devices.get(device)
            if facts is not None and facts.energy:
                sent[device] = figures_of(settings, device, facts.points, True)
        cn = {}
        lengths = identity.intervals
        data = settings.data or ["minute", "hour", "day"]  # unset: whatever the lengths allow
        if "minute" in data and lengths and lengths[0] < HOUR:
            cn[lengths[0]] = codes.CN_MINUTE
        if "hour" in data and HOUR in lengths:
            cn[float(HOUR)] = codes.CN_HOUR
        if "day" in data and DAY in lengths:
            cn[float(DAY)] = codes.CN_DAY
        return cls(mn, sent, cn)

    def length_of(self, cn: str) -> float | None:
        return next((length for length, c in self.cn.items() if c == cn), None)

    def devices_of(self, mn: str) -> list[str]:
        return [device for device, m in self.mn.items() if m == mn]

    def sent_of(self, mn: str) -> set[str]:
        """The devices of `mn` that have figures to send: what one of its messages holds."""
        return {device for device in self.devices_of(mn) if self.sent.get(device)}


def _length(record: dict) -> float:
    start = datetime.fromisoformat(record["start"]).timestamp()
    length = datetime.fromisoformat(record["end"]).timestamp() - start
    return float(DAY) if length > 82_800 else length  # a day is 23 or 25 h at a DST change


def _flag(record: dict) -> str:
    """N for an interval measured whole: "good" says exactly that (agent/intervals.py)."""
    return "N" if record["quality"] == "good" else "B"


def items_of(record: dict, sent: list[Sent]) -> list[str]:
    """The CP items of one interval record: each figure under its code, with its flag."""
    stats = record.get("stats") or {}
    out = []
    for s in sent:
        values: dict[str, float] = {}
        partial = False
        if s.from_record:
            value = record["quantity"] if s.figure == "energy" else record.get(s.figure)
            if value is not None:
                values["Cou"] = value
        else:
            if "Cou" in s.code.statistics:  # the energy counter: the interval's total
                values["Cou"] = record["quantity"]
            figures = stats.get(s.figure)
            if figures is not None:
                avg, low, high = figures[:3]
                values |= {"Avg": avg, "Min": low, "Max": high}
                partial = len(figures) > 4  # readings lost in a crash (agent/statistics.py)
        fields = [
            f"{s.code.code}-{what}={number(values[what], s.code.decimals)}"
            for what in _ORDER
            if what in s.code.statistics and what in values
        ]
        if fields:
            flag = "B" if partial else _flag(record)
            out.append(",".join([*fields, f"{s.code.code}-Flag={flag}"]))
    return out


Key = tuple[str, str, float]  # MN, CN, interval start: what one message is about


def grouped(bodies: Iterable[str], plan: Plan) -> dict[Key, list[dict]]:
    """Interval records (JSON text, as stored) by the message they go in, in order of
    first appearance; records of devices, lengths or carriers this destination does not
    send are left out."""
    found: dict[Key, list[dict]] = {}
    for body in bodies:
        record = json.loads(body)
        device = record.get("device")
        if device not in plan.sent:  # not sent here, or a production record (no energy)
            continue
        cn = plan.cn.get(_length(record))
        if cn is None:
            continue
        start = datetime.fromisoformat(record["start"]).timestamp()
        found.setdefault((plan.mn[device], cn, start), []).append(record)
    return found


def message_of(key: Key, records: Iterable[dict], plan: Plan, tz: ZoneInfo) -> Message | None:
    """The message of one MN, CN and start: each record's items (None if there are none)."""
    mn, cn, start = key
    items = [item for record in records for item in items_of(record, plan.sent[record["device"]])]
    return Message(mn, cn, stamp(start, tz), tuple(items)) if items else None


def data_messages(bodies: Iterable[str], plan: Plan, tz: ZoneInfo) -> list[Message]:
    """The data messages of interval records (JSON text, as stored)."""
    messages = (
        message_of(key, records, plan, tz) for key, records in grouped(bodies, plan).items()
    )
    return [message for message in messages if message is not None]


def live_message(
    mn: str,
    plan: Plan,
    latest: Mapping[str, Mapping[str, Reading]],
    now: float,
    tz: ZoneInfo,
    stale_before: float,
) -> Message | None:
    """Real-time data of one MN: each point's latest reading under its code, as Rtd; a
    reading older than `stale_before` (the meter stopped answering) is flagged B."""
    items = []
    sampled = 0.0  # the newest reading's time: DataTime of real-time data (table 4)
    for device in plan.devices_of(mn):
        readings = latest.get(device, {})
        for s in plan.sent.get(device, []):
            reading = readings.get(s.figure)
            if s.from_record or reading is None or reading.value is None:
                continue
            flag = "N" if reading.good and reading.ts >= stale_before else "B"
            value = number(reading.value, s.code.decimals)
            items.append(f"{s.code.code}-Rtd={value},{s.code.code}-Flag={flag}")
            sampled = max(sampled, min(reading.ts, now))
    return Message(mn, codes.CN_REALTIME, stamp(sampled, tz), tuple(items)) if items else None
