"""Deliver the buffer to an HJ 212 platform: every interval at least once, in order per MN.

The destination drains its own outbox like any other (cloud_sync/base.py): a
batch of records becomes data messages (messages.py), each sent with the A
flag and its 9014 answer awaited for `overtime` seconds; an unanswered frame
is sent again under the same QN `recount` times, and if it still goes
unanswered the batch stays pending and the run ends, so nothing is dropped
and no later message of an MN overtakes it. A batch is acknowledged in the
buffer only when every one of its messages was answered; after a crash it is
sent again whole (the platform sees some messages twice, never a gap). A
message holds every device of its MN that the buffer has for its time: what a
batch lacks is read from the buffer (`_wholes`).
Requests the platform sends on the same connection are answered by
requests.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from cloud_sync.base import DestinationStatus, Identity
from cloud_sync.hj212 import codes
from cloud_sync.hj212.cp import packets, qn
from cloud_sync.hj212.frame import flag, pack, segment
from cloud_sync.hj212.link import Link
from cloud_sync.hj212.messages import Key, Message, Plan, grouped, live_message, message_of
from cloud_sync.hj212.requests import Requests
from domain.records import Commit

if TYPE_CHECKING:
    from buffer import AsyncOutbox, AsyncStore
    from cloud_sync.hj212.settings import Hj212Settings
    from domain.reading import Reading

log = logging.getLogger(__name__)

DEFAULT_LIVE = 30.0  # seconds: real-time data asked for (2011) with no interval set
MAX_RECORDS = 2000  # records per batch: a few minutes of a large plant, answered frame by frame
MAX_WAIT = 60.0  # s past its interval's end a message waits at most for a device of its MN
MAX_COMPLETED = 4096  # messages completed from the buffer, remembered (see _complete)


def make(name: str, settings: Hj212Settings, identity: Identity, *, setting: str) -> Hj212Uplink:
    """The destination `name` (the registry's factory); it reads no file."""
    return Hj212Uplink(name, settings, identity, setting)


class Hj212Uplink:
    def __init__(
        self, name: str, settings: Hj212Settings, identity: Identity, setting: str
    ) -> None:
        self.name = name
        self.settings = settings
        self.setting = setting
        self.tz = ZoneInfo(identity.gateway["timezone"])
        self.plan = Plan.of(settings, identity)
        self.status = DestinationStatus(connected=False)
        self.requests = Requests(self)
        self.link = Link(
            name, settings.host, settings.port, settings.overtime, self.requests.handle,
            self._connected,
        )  # fmt: skip
        self.live = settings.realtime  # as configured, until the platform's choice is read
        self.live_paused = False
        self._live_changed: Callable[[], None] | None = None
        self._restored = False
        self._answered: dict[int, set[int]] = {}  # batch seq -> messages answered (this process)
        self._completed: dict[Key, frozenset[str]] = {}  # see _complete
        self._last_qn_at = 0.0
        self.store: AsyncStore | None = None

    # --- what the agent asks of every destination -------------------------------

    def attach(self, store: AsyncStore) -> None:
        self.store = store
        self.outbox: AsyncOutbox = store.outbox(self.name)

    @property
    def every(self) -> float:
        return self.settings.every

    @property
    def allowance(self) -> float:
        """A run stops at `every`, but the message in flight may wait out its tries."""
        s = self.settings
        return 2 * s.every + (s.recount + 2) * s.overtime + 30

    def stale(self) -> bool:
        return False  # it reads no file

    async def close(self) -> None:
        await self.link.close()

    async def deliver(self, *, deadline: float | None = None, last: bool = False) -> int:
        """Send what is pending until done, a message goes unanswered, or `deadline`.
        Never raises for a network or platform failure."""
        await self._restore()
        if not await self._connect(attempts=1 if last else 3):
            return 0
        sent = 0
        while deadline is None or time.monotonic() < deadline:
            batch = await self.outbox.pending_batch(MAX_RECORDS, {"kind": "hj212"})
            if batch is None:
                break
            self.status.last_attempt = time.time()
            done = self._answered.setdefault(batch.seq, set())
            groups = {
                i: group
                for i, group in enumerate(grouped(batch.intervals, self.plan).items())
                if i not in done
            }
            wholes = await self._wholes(groups)
            held: set[str] = set()  # MNs waiting for a late device: their later messages too
            for i, (key, records) in groups.items():
                whole = wholes[i]
                if key[0] in held or (not last and self._waits(key, whole)):
                    held.add(key[0])  # the next run; other MNs go on meanwhile
                    continue
                devices = frozenset(record["device"] for record in whole)
                if not devices <= self._completed.get(key, frozenset()):  # else sent whole
                    message = message_of(key, whole, self.plan, self.tz)
                    tries = 1 if last else self.settings.recount + 1
                    if message is not None and not await self._send(message, tries):
                        return sent
                    if len(whole) > len(records):
                        self._complete(key, devices)
                done.add(i)
                if deadline is not None and time.monotonic() >= deadline:
                    return sent  # a slow platform: the next run goes on from here
            if held:
                return sent
            await self.outbox.finish_batch(batch.seq, "acked")
            self._answered.pop(batch.seq, None)
            sent += batch.size
            self.status.batches_sent += 1
            self.status.records_sent += batch.size
            self.status.last_success = time.time()
            if self.status.last_result.startswith("no answer"):
                log.info("%s: the platform answers again; the held data goes", self.name)
            self.status.last_result = "answered"
        return sent

    # --- real-time data (cloud_sync.base.SendsLive) ---------------------------------

    @property
    def live_every(self) -> float | None:
        return None if self.live_paused else self.live

    @property
    def live_interval(self) -> float:
        """The real-time interval as the platform sees it (1061), set or not."""
        return self.live or DEFAULT_LIVE

    async def pause_live(self, paused: bool) -> None:
        """2012 stops real-time data, 2011 starts it again (at the default if none is set)."""
        self.live_paused = paused
        if not paused and self.live is None:
            self.live = DEFAULT_LIVE
        if self._live_changed is not None:
            self._live_changed()

    def on_live_every(self, changed: Callable[[], None]) -> None:
        self._live_changed = changed

    async def send_live(self, latest: Mapping[str, Mapping[str, Reading]]) -> None:
        """The latest readings of every MN, unanswered (real-time data asks no answer)."""
        await self._restore()
        if not self.link.up:  # the delivery runs keep the connection; no reconnect here
            return
        now = time.time()
        stale_before = now - 2 * (self.live or self.settings.every)
        for mn in dict.fromkeys(self.plan.mn.values()):
            message = live_message(mn, self.plan, latest, now, self.tz, stale_before)
            if message is not None:
                for frame, _ in self.frames(message, answer=False):
                    await self.link.send(frame)

    async def set_live(self, seconds: float) -> None:
        """The platform's real-time interval (CN 1062), kept across restarts: written
        first, so a buffer that refuses it leaves the interval as it was (and says so)."""
        if self.store is not None:
            await self.store.commit(Commit(counters={self._state_key: {"realtime": seconds}}))
        self.live = seconds
        if self._live_changed is not None:
            self._live_changed()

    # --- a technician's try (cloud_sync.base.Pings) --------------------------------

    async def ping(self, say: Callable[[str], None]) -> bool:
        """Per MN, the notice 1013 (the field unit asks for its time to be checked), which
        the platform answers with 9013 (Appendix C.4): it shows the link works and the
        platform takes this MN, PW and ST, and it stores nothing."""
        s = self.settings
        if not await self.link.connect(attempts=1):
            say(f"cannot reach the platform: {self.link.last_error}")
            return False
        say(f"connected to {s.host}:{s.port}")
        answered = True
        for mn in dict.fromkeys(p.mn for p in s.monitoring_points):
            number = self.next_qn()
            text = segment(
                qn=number, st=s.st, cn=codes.CN_TIME_CALIBRATION, pw=s.pw, mn=mn,
                flag=flag(s.version, answer=True, split=False), cp="",
            )  # fmt: skip
            say(f"sent:     {text}")
            started = time.monotonic()
            try:
                answer = await self.link.exchange(pack(text), number, s.overtime)
            except ConnectionError:
                answer = None
            if answer is None:
                answered = False
                say(
                    f"no answer within {s.overtime:g}s for MN {mn}: check the MN, PW and ST "
                    "with the platform's operator"
                )
                continue
            took = (time.monotonic() - started) * 1000
            say(f"answered: CN={answer.cn} QN={answer.qn} MN={answer.mn} in {took:.0f} ms")
        return answered

    # --- internals -------------------------------------------------------------

    def _connected(self, up: bool) -> None:
        # self.status, not a copy: a reload hands this destination its predecessor's
        self.status.connected = up

    @property
    def _state_key(self) -> str:
        return f"#hj212/{self.name}"

    async def _restore(self) -> None:
        """The real-time interval the platform set before a restart, once."""
        if self._restored or self.store is None:
            return
        self._restored = True
        saved = await self.store.counter(self._state_key)
        if saved and saved.get("realtime") and saved["realtime"] != self.live:
            self.live = float(saved["realtime"])
            log.info("%s: real-time data every %gs, as the platform set it", self.name, self.live)
            if self._live_changed is not None:
                self._live_changed()

    async def _wholes(self, groups: Mapping[int, tuple[Key, list[dict]]]) -> dict[int, list[dict]]:
        """The records of each message, every device of its MN. A platform keys minute,
        hour and day data by MN and DataTime and may take a second message of the same
        time as a re-upload replacing the first, so a message never holds part of its MN
        when the buffer has the rest: the devices of one MN close their intervals at
        different polls, so a batch may begin or end between them, and a device back
        from an outage brings its intervals long after its neighbours'. What a batch
        lacks is read from the buffer, one query per CN."""
        lacking: dict[str, tuple[set[str], float, float]] = {}  # CN -> devices, first, last
        for (mn, cn, start), records in groups.values():
            missing = self.plan.sent_of(mn) - {record["device"] for record in records}
            if missing:
                devices, first, final = lacking.get(cn, (set(), start, start))
                lacking[cn] = (devices | missing, min(first, start), max(final, start))
        found: dict[tuple[str, str, float], dict] = {}  # (device, CN, start) -> its record
        for cn, (devices, first, final) in lacking.items():
            length = self.plan.length_of(cn)
            if length is None or self.store is None:
                continue
            most = len(devices) * (int((final - first) / length) + 2)
            for body in await self.store.intervals_between(
                sorted(devices), length, first, final, most
            ):
                record = json.loads(body)
                start = datetime.fromisoformat(record["start"]).timestamp()
                found[record["device"], cn, start] = record
        wholes = {}
        for i, ((mn, cn, start), records) in groups.items():
            have = {record["device"] for record in records}
            more = sorted(self.plan.sent_of(mn) - have)
            wholes[i] = records + [found[d, cn, start] for d in more if (d, cn, start) in found]
        return wholes

    def _waits(self, key: Key, records: list[dict]) -> bool:
        """Whether a message lacking a device of its MN waits for it (the next run): a
        record closes a poll or two after its interval's end, and a meter polled less
        than twice an interval is no meter for it, so for half an interval past the end
        (MAX_WAIT at most). Then it goes with what there is (an offline device holds up
        no other for longer), and goes again, whole, with the batch that brings the rest."""
        mn, cn, _ = key
        length = self.plan.length_of(cn)
        if length is None or {record["device"] for record in records} >= self.plan.sent_of(mn):
            return False
        ends = max(datetime.fromisoformat(record["end"]).timestamp() for record in records)
        return time.time() < ends + min(length / 2, MAX_WAIT)

    def _complete(self, key: Key, devices: frozenset[str]) -> None:
        """A message completed from the buffer was answered: the batch that brings the
        rest of it need not send it again (in this process; after a restart it does)."""
        self._completed[key] = devices
        while len(self._completed) > MAX_COMPLETED:
            del self._completed[next(iter(self._completed))]

    async def _connect(self, attempts: int) -> bool:
        up = await self.link.connect(attempts)
        if not up:
            self.status.failures += 1
            self.status.last_result = self.link.last_error or "not connected"
        return up

    def next_qn(self) -> str:
        """A request number of our own: the time, made unique within this process."""
        now = max(time.time(), self._last_qn_at + 0.001)  # a millisecond on, if need be
        self._last_qn_at = now
        return qn(now, self.tz)

    def frames(self, message: Message, *, answer: bool) -> list[tuple[bytes, str]]:
        """A message's frames with their QNs: one, or packets when its CP is long, each
        with a QN of its own and the DataTime repeated (Appendix C, C.49 and C.50)."""
        bodies = packets([f"DataTime={message.data_time}"], list(message.items))
        split = len(bodies) > 1
        out = []
        for i, body in enumerate(bodies, 1):
            number = self.next_qn()
            text = segment(
                qn=number, st=self.settings.st, cn=message.cn, pw=self.settings.pw,
                mn=message.mn, flag=flag(self.settings.version, answer=answer, split=split),
                cp=body, pnum=len(bodies) if split else None, pno=i if split else None,
            )  # fmt: skip
            out.append((pack(text), number))
        return out

    async def _send(self, message: Message, tries: int) -> bool:
        """A message's frames, each answered; False (and the reason in the status) if one
        went unanswered `tries` times or the connection could not be kept."""
        for frame, number in self.frames(message, answer=True):
            for attempt in range(tries):
                if attempt:
                    self.status.resends += 1
                if not await self._connect(attempts=1):
                    return False
                try:
                    answer = await self.link.exchange(frame, number, self.settings.overtime)
                except ConnectionError:
                    continue  # hung up: connect again and resend under the same QN
                if answer is not None:
                    break
            else:
                self.status.failures += 1
                why = f"no answer to {message.cn} of MN {message.mn} at {message.data_time}"
                if self.status.last_result != why:
                    log.warning("%s: %s after %d tries; it stays pending", self.name, why, tries)
                self.status.last_result = why
                await self.link.reset()  # a half-open link (a NAT that forgot it) is not kept
                return False
        return True
