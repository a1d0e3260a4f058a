"""A delivery run's window: the batches published and waiting for their PUBACKs, oldest
first, and the buffer's work beside them (the next batches read ahead, a run of
acknowledged batches being closed). The publisher (publisher.py) drives it."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from buffer import AsyncOutbox, PendingBatch
from cloud_sync.mqtt.link import NO_SUBSCRIBERS, Message
from domain.errors import SyncRefused, SyncRetryable


@dataclass(slots=True)
class Flight:
    """A batch published and waiting for its PUBACKs (one per message, its reason code)."""

    batch: PendingBatch
    messages: list[Message]
    acks: list[asyncio.Future[int]]
    need_subscriber: bool = False  # PUBACK 0x10 (nobody subscribed) is no delivery

    def acknowledged(self) -> bool:
        """Every message sent (a send may have failed midway) and acknowledged."""
        return len(self.acks) == len(self.messages) and all(
            a.done()
            and not a.cancelled()
            and a.exception() is None
            and not (self.need_subscriber and a.result() == NO_SUBSCRIBERS)
            for a in self.acks
        )

    def failure(self) -> BaseException | None:
        """A refusal among its PUBACKs, or one nobody subscribed to when that counts (a
        lost connection is met when it is waited for)."""
        for ack in self.acks:
            if ack.done() and not ack.cancelled():
                error = ack.exception()
                if isinstance(error, SyncRefused):
                    return error
                if error is None and self.need_subscriber and ack.result() == NO_SUBSCRIBERS:
                    return SyncRetryable("no subscriber took it (PUBACK 0x10 No matching "
                                         "subscribers); it stays buffered")  # fmt: skip
        return None


@dataclass(slots=True)
class Run:
    """One delivery run: the window in flight, oldest first, how far it has read, and
    the buffer's work going on beside it (the next batch read ahead, a run being closed)."""

    deadline: float | None
    outbox: AsyncOutbox
    header: dict
    max_batch: int
    joined: bool  # read the intervals as one text (format batch builds no list)
    window: deque[Flight] = field(default_factory=deque)
    after: int = 0  # the last batch read into the window (0: from the oldest pending)
    sent: int = 0  # records acknowledged
    empty: bool = False  # the buffer had no more
    stop: SyncRefused | None = None  # a batch that cannot go: raised once the window drained
    reading: asyncio.Task[list[PendingBatch]] | None = None
    ready: deque[PendingBatch] = field(default_factory=deque)  # read, not yet published
    closing: asyncio.Task[None] | None = None
    ahead: int = 1  # batches read (and assigned) at once: half the window

    def reading_done(self, now: float) -> bool:
        return (
            self.empty
            or self.stop is not None
            or (self.deadline is not None and now >= self.deadline)
        )

    def read_ahead(self) -> None:
        """Start reading the batches after the last one read, if none are being read and
        not many are left: each trip to the buffer's thread brings several."""
        if self.reading is not None or len(self.ready) >= self.ahead or self.empty:
            return
        after = self.ready[-1].seq if self.ready else self.after
        self.reading = asyncio.create_task(
            self.outbox.next_batches(after, self.ahead, self.max_batch, self.header, self.joined)
        )

    async def next_batch(self) -> PendingBatch | None:
        """The batch after `after`: one read ahead, or read now."""
        if not self.ready:
            self.read_ahead()
            reading, self.reading = self.reading, None
            if reading is not None:
                self.ready.extend(await reading)
        if not self.ready:
            return None
        return self.ready.popleft()

    async def settled(self) -> None:
        """The buffer's work beside the window done: the read ahead (its batch stays
        pending, for the next read) and the run being closed. Raises what they raised."""
        reading, self.reading = self.reading, None
        closing, self.closing = self.closing, None
        self.ready.clear()  # pending still: read again, from `after`, by the next try
        try:
            if reading is not None:
                await reading
        finally:
            if closing is not None:
                await closing
