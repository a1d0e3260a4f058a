"""Store-and-forward buffer: what the agent computed, kept until the platform has it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from buffer.store import Commit, EventRow, IntervalRow, PendingBatch, Store

__all__ = ["AsyncStore", "Commit", "EventRow", "IntervalRow", "PendingBatch", "Store"]

T = TypeVar("T")


class AsyncStore:
    """The store for the event loop.

    Every call runs on one dedicated thread: there is exactly one writer, and
    the loop never blocks on an fsync while meters wait to be polled.
    """

    def __init__(self, path: str | Path) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="buffer")
        self.store = self._executor.submit(Store, path).result()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def commit(self, work: Commit) -> None:
        await self.run(self.store.commit, work)

    async def add_events(self, events: list[EventRow]) -> None:
        await self.run(self.store.add_events, events)

    async def pending_batch(self, max_records: int) -> PendingBatch | None:
        return await self.run(self.store.pending_batch, max_records)

    async def finish_batch(self, seq: int, status: str, reason: str | None = None) -> None:
        await self.run(self.store.finish_batch, seq, status, reason)

    async def backlog(self) -> dict:
        return await self.run(self.store.backlog)

    def close(self) -> None:
        self._executor.submit(self.store.close).result()
        self._executor.shutdown(wait=True)
