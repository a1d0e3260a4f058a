"""The standing TCP connection to an HJ 212 platform: frames out, answers and requests in.

HJ 212 keeps one connection open: the field unit sends its data on it and the
platform sends its requests back on the same one, at any time. One reader
task reads every frame that arrives: a data answer (CN 9014) wakes the send
waiting for its QN; anything else is a request, handed in arrival order to
the uplink's handler. A frame the reader cannot make sense of is counted and
logged once; nothing the platform sends reaches further than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from cloud_sync.hj212.frame import Reader, Segment
from domain.errors import FrameError

log = logging.getLogger(__name__)

ANSWERS = ("9013", "9014")  # the platform's answers to a notice and to data, by QN
READ_SIZE = 4096


class Link:
    """One platform's connection; `handle` gets each request the platform sends."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        timeout: float,
        handle: Callable[[Segment], Awaitable[None]],
        on_state: Callable[[bool], None],
    ) -> None:
        self.name = name
        self.on_state = on_state  # told when the connection comes and goes
        self.host, self.port, self.timeout = host, port, timeout
        self.handle = handle
        self.writer: asyncio.StreamWriter | None = None
        self.reading: asyncio.Task[None] | None = None
        self.waiting: dict[str, asyncio.Future[Segment]] = {}  # QN -> its answer
        self.malformed = 0  # frames from the platform that could not be read
        self.last_error: str | None = None
        self._lock = asyncio.Lock()

    @property
    def up(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()

    async def connect(self, attempts: int = 3) -> bool:
        """Connected, trying again with back-off a few times; False if the platform
        cannot be reached now (logged once per cause)."""
        if self.up:
            return True
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(OSError),
            wait=wait_exponential_jitter(multiplier=0.5, max=5),
            stop=stop_after_attempt(attempts),
            reraise=True,
        )
        try:
            opened: tuple[asyncio.StreamReader, asyncio.StreamWriter] = await retrying(self._open)
            reader, writer = opened
        except (OSError, TimeoutError) as exc:
            why = f"cannot connect to {self.host}:{self.port}: {str(exc) or type(exc).__name__}"
            if why != self.last_error:
                log.warning("%s: %s", self.name, why)
            self.last_error = why
            return False
        self.writer = writer
        self.on_state(True)
        self.reading = asyncio.create_task(self._read(reader, writer), name=f"{self.name} reader")
        if self.last_error is not None:
            log.info("%s: connected to %s:%d", self.name, self.host, self.port)
        self.last_error = None
        return True

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout
            )
        except TimeoutError as exc:  # retried like a refused connection
            raise OSError(f"no answer within {self.timeout:g}s") from exc

    async def send(self, frame: bytes) -> None:
        """One frame, whole: frames from several tasks never interleave. A platform that
        stops reading for `timeout` is dropped (ConnectionError): the next run reconnects,
        rather than a full socket holding every sender."""
        async with self._lock:
            writer = self.writer
            if writer is None or writer.is_closing():
                raise ConnectionError("not connected")
            writer.write(frame)
            try:
                await asyncio.wait_for(writer.drain(), self.timeout)
            except TimeoutError:
                writer.transport.abort()  # the reader sees it go and cleans up
                raise ConnectionError(f"the platform read nothing for {self.timeout:g}s") from None

    async def exchange(self, frame: bytes, qn: str, wait: float) -> Segment | None:
        """Send a frame that wants an answer and wait `wait` seconds for it: None if none
        came, ConnectionError if the connection went meanwhile."""
        answer = self.waiting[qn] = asyncio.get_running_loop().create_future()
        try:
            await self.send(frame)
            return await asyncio.wait_for(asyncio.shield(answer), wait)
        except TimeoutError:
            return None
        finally:
            if self.waiting.get(qn) is answer:
                del self.waiting[qn]

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = Reader()
        requests: asyncio.Queue[Segment | None] = asyncio.Queue()
        handling = asyncio.create_task(self._handle(requests), name=f"{self.name} requests")
        try:
            while data := await reader.read(READ_SIZE):
                for item in frames.feed(data):
                    if isinstance(item, FrameError):
                        self._malformed(str(item))
                    elif item.cn in ANSWERS and item.qn is not None:
                        answer = self.waiting.get(item.qn)
                        if answer is not None and not answer.done():
                            answer.set_result(item)
                    else:
                        requests.put_nowait(item)
        except OSError as exc:
            log.info("%s: connection lost: %s", self.name, exc)
        finally:  # requests still queued cannot be answered on a connection that is gone
            handling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await handling
            await self._drop(writer)

    async def _handle(self, requests: asyncio.Queue[Segment | None]) -> None:
        while (request := await requests.get()) is not None:
            try:
                await self.handle(request)
            except (OSError, ConnectionError) as exc:  # the connection went while answering
                log.info("%s: request %s not answered: %s", self.name, request.cn, exc)
            except Exception:  # a fault of ours must not end the reader
                log.exception("%s: request %s failed", self.name, request.cn)

    def _malformed(self, why: str) -> None:
        self.malformed += 1
        if self.malformed == 1 or self.malformed % 100 == 0:
            log.warning("%s: %s from the platform (%d so far)", self.name, why, self.malformed)

    async def _drop(self, writer: asyncio.StreamWriter) -> None:
        """This reader's connection is gone; a newer one, if made meanwhile, stays."""
        if self.writer is writer:
            self.writer = None
            self.on_state(False)
            for answer in self.waiting.values():
                if not answer.done():
                    answer.set_exception(ConnectionError("the connection was closed"))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def reset(self) -> None:
        """Drop the connection (its reader and the requests it queued with it)."""
        reading, self.reading = self.reading, None
        if reading is not None:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading

    async def close(self) -> None:
        self.on_state = lambda up: None  # a reload's successor owns the status from now
        await self.reset()
