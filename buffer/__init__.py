"""Store-and-forward buffer: what the agent computed, kept until every destination has it.

store = AsyncStore(path, destinations={"sync": None, "epb": 3600.0})
outbox = store.outbox("sync")        # one uplink's view: its batches, its cursor
batch = await outbox.pending_batch(5000, header)
await outbox.finish_batch(batch.seq, "acked")
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from buffer.schema import SCHEMA_VERSION
from buffer.store import DEFAULT_DESTINATIONS, Outbox, PendingBatch, Store
from domain.records import Commit, EventRow

__all__ = [
    "DEFAULT_DESTINATIONS",
    "SCHEMA_VERSION",
    "AsyncOutbox",
    "AsyncStore",
    "Outbox",
    "PendingBatch",
    "Store",
]

T = TypeVar("T")


class AsyncStore:
    """The store for the event loop.

    Every call runs on one dedicated thread: there is exactly one writer, and
    the loop never blocks on an fsync while meters wait to be polled.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_size: int | None = None,
        drop_synced: bool = False,
        destinations: Mapping[str, float | None] = DEFAULT_DESTINATIONS,
        event_state: tuple[str, ...] = (),
    ) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="buffer")
        opened = self._executor.submit(
            functools.partial(
                Store, path, max_size=max_size, drop_synced=drop_synced,
                destinations=destinations, event_state=event_state,
            )
        )  # fmt: skip
        try:
            self.store = opened.result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise
        self._waiting: list[tuple[Commit, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def commit(self, work: Commit) -> None:
        """Returns once `work` is on disk.

        Group commit: what arrives while a transaction is being written goes
        into the next one, so the devices whose intervals close at the same
        boundary share one fsync instead of paying one each.
        """
        if not work:
            return
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((work, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting())
        await done

    async def _write_waiting(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                await self.run(self.store.commit_all, [work for work, _ in group])
            except Exception:
                # one bad commit must not fail its neighbours: retry them one by one
                for work, done in group:
                    try:
                        await self.run(self.store.commit, work)
                    except Exception as exc:
                        _settle(done, exc)
                    else:
                        _settle(done, None)
            else:
                for _, done in group:
                    _settle(done, None)

    async def add_events(self, events: list[EventRow]) -> None:
        await self.run(self.store.add_events, events)

    async def register(self, destinations: Mapping[str, float | None]) -> None:
        """The active destinations, on reload (see Store.register)."""
        await self.run(self.store.register, destinations)

    async def counter(self, key: str) -> dict | None:
        return await self.run(self.store.counter, key)

    async def intervals_between(
        self, devices: list[str], length: float, begin: float, end: float, limit: int
    ) -> list[str]:
        """See Store.intervals_between."""
        return await self.run(self.store.intervals_between, devices, length, begin, end, limit)

    def outbox(self, name: str) -> AsyncOutbox:
        """Destination `name`'s view of the buffer (see Store.outbox)."""
        return AsyncOutbox(self, self.store.outbox(name))

    async def prune(self, *, raw_before: float, synced_before: float) -> int:
        """Retention, a short transaction at a time: a poll's commit waits for one
        chunk at most, never for the whole day of raw samples."""
        removed = 0
        while n := await self.run(
            functools.partial(self.store.prune, raw_before=raw_before, synced_before=synced_before)
        ):
            removed += n
        return removed

    async def backlog(self) -> dict:
        return await self.run(self.store.backlog)

    def close(self) -> None:
        self._executor.submit(self.store.close).result()
        self._executor.shutdown(wait=True)


class AsyncOutbox:
    """An Outbox for the event loop: each call runs on the store's one thread."""

    def __init__(self, store: AsyncStore, outbox: Outbox) -> None:
        self._store = store
        self._outbox = outbox
        self.name = outbox.name

    async def pending_batch(self, max_records: int, header: dict) -> PendingBatch | None:
        return await self._store.run(self._outbox.pending_batch, max_records, header)

    async def next_batches(
        self, after: int, count: int, max_records: int, header: dict, joined: bool = False
    ) -> list[PendingBatch]:
        return await self._store.run(
            self._outbox.next_batches, after, count, max_records, header, joined
        )

    async def finish_batch(
        self, seq: int, status: str = "acked", reason: str | None = None
    ) -> None:
        await self._store.run(self._outbox.finish_batch, seq, status, reason)

    async def finish_batches(self, seqs: list[int]) -> None:
        await self._store.run(self._outbox.finish_batches, seqs)

    async def reject_batch(self, seq: int, reason: str, event: EventRow | None) -> None:
        await self._store.run(self._outbox.reject_batch, seq, reason, event)

    async def shrink_batch(self, seq: int) -> bool:
        return await self._store.run(self._outbox.shrink_batch, seq)

    async def renumber_batch(self, seq: int) -> int:
        return await self._store.run(self._outbox.renumber_batch, seq)

    async def backlog(self) -> dict:
        return await self._store.run(self._outbox.backlog)


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    """Tell a waiter its commit's fate, unless it stopped waiting (cancelled)."""
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
