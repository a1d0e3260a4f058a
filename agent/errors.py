"""The one exception tree of edge-agent.

Transient errors (a timeout, a busy endpoint) are retried; permanent ones (an
illegal register address, a batch the platform rejects) are not, because
retrying them cannot succeed. tenacity retries only `TransientError`.
Foreign exceptions are translated into these at one seam per driver or client.
"""

from __future__ import annotations


class EdgeAgentError(Exception):
    """Base of every error edge-agent raises on purpose."""


class TransientError(EdgeAgentError):
    """Worth retrying later."""


class PermanentError(EdgeAgentError):
    """Retrying the same thing will fail the same way."""


class DeviceTimeout(TransientError):
    """The meter did not answer in time."""


class Disconnected(TransientError):
    """No link to the meter (refused, reset, not yet reconnected)."""


class DeviceRejected(PermanentError):
    """The meter answered with an exception (illegal address, illegal function, ...)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class BadReply(PermanentError):
    """The meter answered something that is not a value (NaN, short frame, wrong unit)."""


class OutOfStep(TransientError):
    """A reply that does not fit its request (another function, another size): the link
    may be answering an earlier request, so the poll ends and the link starts afresh."""


class SyncRetryable(TransientError):
    """The platform or the network failed; `retry_after` is the server's hint, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SyncRefused(TransientError):
    """401, 403, 404 ...: the platform refuses every batch from here until someone fixes
    the token or the URL; keep the data and back off."""


class SyncRejected(PermanentError):
    """The platform will never accept this batch (400/422)."""


class BatchTooLarge(PermanentError):
    """413: the same records fit if sent in smaller batches."""


class KeyTaken(PermanentError):
    """409: the platform holds another batch under this key; send under a new one."""


class BufferFull(TransientError):
    """The buffer is at buffer.max_size (or the disk is full) and nothing more may be
    dropped: the work is held and written when there is room."""
