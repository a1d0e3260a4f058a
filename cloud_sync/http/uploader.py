"""Drain the buffer to a platform's HTTP endpoint, one idempotent batch at a time.

The uploader is one destination (cloud_sync/base.py): "sync", the central
platform configured under `sync:`, or a `destinations:` entry with `http:`. It
reads what is pending for it and acknowledges what the platform stored
through its own outbox, so other uplinks keep their own pace.
A batch's key (`<gateway id>:<sequence>`) and content are fixed in the buffer
before the first send, so every retry, including one after a crash, sends the
same bytes under the same key and the platform can recognise it. A batch is
marked sent only when the platform answered 2xx.
"""

from __future__ import annotations

import gzip
import logging
import ssl
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from buffer import AsyncStore, PendingBatch
from cloud_sync.base import DestinationStatus, Identity
from cloud_sync.document import document, key
from cloud_sync.http.settings import HttpSettings
from cloud_sync.tls import client_tls
from domain.batch import SCHEMA_VERSION
from domain.errors import (
    BatchTooLarge,
    KeyTaken,
    SettingUnusable,
    SyncRefused,
    SyncRejected,
    SyncRetryable,
)
from domain.records import EventRow

log = logging.getLogger(__name__)

REFUSED_MAX_WAIT = 900.0  # the longest pause after 401/403/404 answers
REJECT_LIMIT = 3  # records quarantined in a row before the platform, not the data, is suspect


def make(name: str, settings: HttpSettings, identity: Identity, *, setting: str) -> Uploader:
    """The destination `name` as its settings say (the registry's factory).

    Its token and TLS files are read now: one that cannot be used raises
    SettingUnusable naming its field. `setting` is where the technician finds
    these settings (sync, destinations[1].http), for the messages.
    """
    token = read_token(settings.token_file)
    verify = client_tls(settings.ca_file, settings.client_cert, settings.client_key)
    return Uploader(
        None,
        url=settings.url,
        token=token,
        gateway=identity.gateway,
        factor_set=identity.factor_set,
        max_batch=settings.max_batch,
        timeout=settings.timeout,
        budget=settings.every,
        verify=verify,
        destination=name,
        setting=setting,
        token_file=settings.token_file,
    )


def trust_for(url: str, verify: ssl.SSLContext | bool) -> ssl.SSLContext | bool:
    """What the client verifies with: for an http:// platform, a context that trusts nothing.

    httpx loads the default trust store (about 140 CA certificates) when the client is
    made, TLS or not: 1.2 MiB of an idle agent's RSS for a platform reached over plain
    HTTP, as on a plant's own network. Verification stays on in that context, so were a
    request ever to go out over TLS it would fail, never pass unchecked.
    """
    if verify is True and httpx.URL(url).scheme == "http":
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return verify


def read_token(path: str | None) -> str | None:
    """The bearer token from its file; SettingUnusable naming token_file if unreadable."""
    if path is None:
        return None
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise SettingUnusable("token_file", f"cannot read {path}: {exc.strerror}") from exc
    if not token:
        raise SettingUnusable("token_file", f"{path} is empty")
    return token


def retry_after(header: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Uploader:
    def __init__(
        self,
        store: AsyncStore | None,
        *,
        url: str,
        token: str | None,
        gateway: dict[str, str],
        factor_set: str,
        max_batch: int = 5000,
        timeout: float = 30.0,
        attempts: int = 4,
        budget: float = 60.0,
        client: httpx.AsyncClient | None = None,
        verify: ssl.SSLContext | bool = True,
        destination: str = "sync",
        setting: str = "sync",
        token_file: str | None = None,
    ) -> None:
        self.name = destination
        self.setting = setting  # where its settings are: sync, destinations[1].http
        if store is not None:
            self.attach(store)
        self.timeout = timeout
        self.url = url
        self._headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self.gateway = gateway
        self.factor_set = factor_set
        self.max_batch = max_batch
        self.attempts = attempts
        self.budget = budget
        self.client = client or httpx.AsyncClient(timeout=timeout, verify=trust_for(url, verify))
        self.status = DestinationStatus()
        self.token, self.token_file = token, token_file  # as read, for stale()
        self.certificates = verify is not True  # client_tls read files: a CA, a certificate
        self.rejected_in_a_row = 0
        self.refusals = 0  # 401/403/404 answers in a row
        self.hold_until = 0.0  # monotonic time before which no batch is sent after those

    def attach(self, store: AsyncStore) -> None:
        """Its outbox in the buffer, and the buffer for its events (sync_refused ...)."""
        self.store = store
        self.outbox = store.outbox(self.name)

    @property
    def every(self) -> float:
        return self.budget

    @property
    def allowance(self) -> float:
        """A run stops sending at `every`, but the batch in flight may use its retry budget
        (`every`) and a request's timeout on top."""
        return 2 * self.budget + 2 * self.timeout + 30

    def stale(self) -> bool:
        """Certificates may have been replaced at the same paths, or the token rotated."""
        if self.certificates:
            return True
        try:
            return read_token(self.token_file) != self.token
        except SettingUnusable:
            return True  # made afresh, the unreadable file is reported where it is set

    async def close(self) -> None:
        await self.client.aclose()

    async def deliver(self, *, deadline: float | None = None, last: bool = False) -> int:
        """Send batches until the backlog is empty, a send fails, or `deadline` passes;
        `last` (stopping): one try per batch, the backlog waits for the next start.

        Returns the number of records acknowledged. Never raises for a network
        or platform failure: the batch stays pending for the next run. At most
        one batch is quarantined per run, so a platform that rejects everything
        cannot drain the backlog into quarantine in a loop.
        """
        if last:
            self.attempts = 1
        sent = 0
        if time.monotonic() < self.hold_until:  # refused (401/403/404): backing off
            return sent
        renumbered: set[int] = set()
        header = {
            "schema_version": SCHEMA_VERSION,
            "gateway": self.gateway,
            "factor_set": self.factor_set,
        }
        while deadline is None or time.monotonic() < deadline:
            batch = await self.outbox.pending_batch(self.max_batch, header)
            if batch is None:
                break
            self.status.last_attempt = time.time()
            try:
                answer = await self._send_with_retries(batch)
            except (BatchTooLarge, SyncRejected) as exc:
                # halve until the records the platform refuses are found, one by one
                if await self.outbox.shrink_batch(batch.seq):
                    continue
                if self.rejected_in_a_row >= REJECT_LIMIT:
                    why = f"{REJECT_LIMIT} records rejected in a row, holding the backlog"
                    self._refused(batch, f"{exc}; {why} (is the platform's schema newer?)")
                else:
                    await self._quarantine(batch, str(exc))
                break
            except KeyTaken as exc:
                if batch.seq in renumbered:
                    self._refused(batch, f"{exc} again under a new key")
                    break
                fresh = await self.outbox.renumber_batch(batch.seq)
                renumbered.add(fresh)
                log.warning("%s: %s; resending as batch %d", self.name, exc, fresh)
                continue
            except SyncRefused as exc:
                await self._refused_by_platform(exc)
                break
            except SyncRetryable as exc:
                self.status.failures += 1
                if self.status.last_result != str(exc):
                    log.warning("%s: batch %d not sent: %s", self.name, batch.seq, exc)
                self.status.last_result = str(exc)
                break
            await self.outbox.finish_batch(batch.seq, "acked")
            self.rejected_in_a_row = self.refusals = 0
            sent += batch.size
            self.status.batches_sent += 1
            self.status.records_sent += batch.size
            self.status.last_success = time.time()
            if self.status.last_result not in ("stored", "duplicate"):
                log.info("%s: batch %d %s", self.name, batch.seq, answer)
            self.status.last_result = answer
        return sent

    def payload(self, batch: PendingBatch) -> bytes:
        """The exact bytes of a batch: the same for every retry, whatever the config says now."""
        return gzip.compress(document(batch), compresslevel=5, mtime=0)

    async def _send_with_retries(self, batch: PendingBatch) -> str:
        body = self.payload(batch)
        # as in the body, whatever the config
        headers = {**self._headers, "Idempotency-Key": key(batch)}
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(SyncRetryable),
            wait=_server_hint_or_backoff,
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.budget),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._post(body, headers)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _post(self, body: bytes, headers: dict[str, str]) -> str:
        """One POST; the answer translated into a status or one of our errors."""
        try:
            reply = await self.client.post(self.url, content=body, headers=headers)
        except (httpx.HTTPError, OSError) as exc:  # OSError: ssl.SSLError can escape httpx
            raise SyncRetryable(f"{type(exc).__name__}: {exc}") from exc
        code = reply.status_code
        if 200 <= code < 300:
            try:
                return str(reply.json().get("status", "stored"))
            except (ValueError, AttributeError):
                return "stored"
        reason = _reason(reply)
        if code in (429, 503):
            raise SyncRetryable(f"HTTP {code} busy", retry_after(reply.headers.get("Retry-After")))
        if code == 413:
            raise BatchTooLarge(f"HTTP 413: {reason}")
        if code == 409:
            raise KeyTaken(f"HTTP 409: {reason}")
        if code in (400, 422):  # this batch, and only this one, will never be accepted
            raise SyncRejected(f"HTTP {code}: {reason}")
        if code in (401, 403):
            raise SyncRefused(f"HTTP {code}: {reason} (check the {self.name} token)")
        if 300 <= code < 500:
            raise SyncRefused(f"HTTP {code}: {reason} (check {self.setting}.url)")
        raise SyncRetryable(f"HTTP {code}: {reason}")

    async def _refused_by_platform(self, exc: SyncRefused) -> None:
        """401/403/404: nothing is dropped; an event (once per cause) and a growing pause,
        so a revoked token is not hammered every minute for days."""
        self.status.failures += 1
        self.refusals += 1
        wait = wait_exponential_jitter(multiplier=self.budget, max=REFUSED_MAX_WAIT, jitter=5)
        self.hold_until = time.monotonic() + wait(SimpleNamespace(attempt_number=self.refusals))  # type: ignore[arg-type]
        if self.status.last_result != str(exc):
            log.error("%s: %s; every record stays buffered", self.name, exc)
            message = f"{self._who}the platform refuses batches: {exc}; every record stays buffered"
            await self.store.add_events([EventRow(time.time(), None, "sync_refused", "critical",
                                                  message)])  # fmt: skip
        self.status.last_result = str(exc)

    @property
    def _who(self) -> str:
        """Events name the destination, unless it is the central one (as they always did)."""
        return "" if self.name == "sync" else f"{self.name}: "

    def _refused(self, batch: PendingBatch, reason: str) -> None:
        """Keep the batch pending and say why, once."""
        self.status.failures += 1
        if self.status.last_result != reason:
            log.error("%s: batch %d held: %s", self.name, batch.seq, reason)
        self.status.last_result = reason

    async def _quarantine(self, batch: PendingBatch, reason: str) -> None:
        """A batch the platform will never take: set it aside loudly; the rest flows."""
        log.error("%s: batch %d rejected and quarantined: %s", self.name, batch.seq, reason)
        notices_only = not batch.intervals and all(
            e["kind"] == "batch_rejected" for e in batch.events
        )
        message = f"{self._who}batch {batch.seq} ({batch.size} records) rejected: {reason}"
        # a rejected batch of rejection notices gets no notice of its own: no endless chain
        event = (
            None
            if notices_only
            else EventRow(time.time(), None, "batch_rejected", "critical", message)
        )
        await self.outbox.reject_batch(batch.seq, reason, event)
        self.rejected_in_a_row += 1
        self.status.last_result = f"rejected: {reason}"


def _server_hint_or_backoff(state: RetryCallState) -> float:
    backoff = wait_exponential_jitter(multiplier=1, max=60)(state)
    error = state.outcome.exception() if state.outcome else None
    hint = getattr(error, "retry_after", None)
    return min(hint, 300.0) if hint is not None else backoff


def _reason(reply: httpx.Response) -> str:
    try:
        data = reply.json()
    except ValueError:
        return reply.text[:200] or reply.reason_phrase
    if isinstance(data, dict):
        return str(data.get("reason") or data.get("detail") or data)[:500]
    return str(data)[:500]
