"""The one exception tree of edge-agent.

    EdgeAgentError
    ├── ConfigError                 a file or setting the technician must fix
    │   ├── ConfigInvalid           every problem of a config, as file:line:col lines
    │   ├── SettingUnusable         a file a setting names cannot be used (a token, ...)
    │   │   └── TlsSetupError       ... a certificate, a key or a CA file
    │   ├── InitError               what `init` was told cannot make a config
    │   └── BufferTooNew            the buffer file was written by a newer edge-agent
    ├── TransientError              worth retrying later (tenacity retries only these)
    └── PermanentError              retrying the same thing fails the same way

    the device branch (DeviceError)        the sync branch (SyncError)
    ├── DeviceTimeout       transient      ├── SyncRetryable   transient (5xx, 429, network)
    ├── Disconnected        transient      ├── SyncRefused     transient (401/403/404: back off)
    ├── OutOfStep           transient      ├── SyncRejected    permanent (400/422)
    ├── DeviceRejected      permanent      ├── BatchTooLarge   permanent (413: send smaller)
    ├── BadReply            permanent      └── KeyTaken        permanent (409: send under a new key)
    │   └── DecodeError     a reply that holds no value
    │       └── FrameError  bytes that form no frame
    └── DriverUnavailable   permanent      BufferFull: transient, the buffer's own

Each error is a branch (what failed) and a kind (transient or permanent), so a
driver's read catches `DeviceError` and a retry loop catches `TransientError`.
Foreign exceptions are translated into these at one seam per driver or client.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


class EdgeAgentError(Exception):
    """Base of every error edge-agent raises on purpose."""


class TransientError(EdgeAgentError):
    """Worth retrying later."""


class PermanentError(EdgeAgentError):
    """Retrying the same thing will fail the same way."""


# --- configuration --------------------------------------------------------------


class ConfigError(EdgeAgentError):
    """Something the technician must fix in a file or a setting."""


@dataclass(frozen=True, order=True)
class Problem:
    """One finding in a config file, ordered by file, line and column so a report reads
    top to bottom."""

    file: str
    line: int
    col: int
    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.path}: {self.message}"


class ConfigInvalid(ConfigError):
    """The config has errors; `problems` lists all of them (and any warnings)."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(dict.fromkeys(problems))
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


class SettingUnusable(ConfigError):
    """A file a setting names cannot be used; `field` is the key of that setting, so the
    caller can report it at its place in the config file."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class TlsSetupError(SettingUnusable):
    """A certificate, key or CA file that cannot be used."""


class InitError(ConfigError):
    """Something `edge-agent init` was told cannot make a config; the message says what
    would."""


# --- the device branch ------------------------------------------------------------


class DeviceError(EdgeAgentError):
    """A meter or its link failed; a driver turns it into bad-quality readings."""


class DeviceTimeout(DeviceError, TransientError):
    """The meter did not answer in time."""


class Disconnected(DeviceError, TransientError):
    """No link to the meter (refused, reset, not yet reconnected)."""


class OutOfStep(DeviceError, TransientError):
    """A reply that does not fit its request (another function, another size): the link
    may be answering an earlier request, so the poll ends and the link starts afresh."""


class DeviceRejected(DeviceError, PermanentError):
    """The meter answered with an exception (illegal address, illegal function, ...)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class BadReply(DeviceError, PermanentError):
    """The meter answered something that is not a value (NaN, short frame, wrong unit)."""


class DecodeError(BadReply):
    """A reply, or a part of one, that holds no value for the point (NaN, not BCD, Null)."""


class FrameError(DecodeError):
    """Bytes on the line that form no valid frame (bad checksum, cut short, junk)."""


class DriverUnavailable(DeviceError, PermanentError):
    """The configuration names a protocol this build cannot poll."""


# --- the sync branch ----------------------------------------------------------------


class SyncError(EdgeAgentError):
    """A destination could not deliver a batch."""


class SyncRetryable(SyncError, TransientError):
    """The platform or the network failed; `retry_after` is the server's hint, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SyncRefused(SyncError, TransientError):
    """401, 403, 404 ...: the platform refuses every batch from here until someone fixes
    the token or the URL; keep the data and back off."""


class SyncRejected(SyncError, PermanentError):
    """The platform will never accept this batch (400/422)."""


class BatchTooLarge(SyncError, PermanentError):
    """413: the same records fit if sent in smaller batches."""


class KeyTaken(SyncError, PermanentError):
    """409: the platform holds another batch under this key; send under a new one."""


# --- the buffer ------------------------------------------------------------------------


class BufferFull(TransientError):
    """The buffer is at buffer.max_size (or the disk is full) and nothing more may be
    dropped: the work is held and written when there is room."""


class BufferTooNew(ConfigError):
    """The buffer file has a schema version this build does not know: a newer edge-agent
    wrote it. It is refused untouched (never migrated down, never moved aside as damaged):
    the technician upgrades edge-agent again, or moves the file aside to start afresh."""

    def __init__(self, path: str, version: int, known: int) -> None:
        super().__init__(
            f"{path} has buffer schema version {version}, newer than this edge-agent knows "
            f"(up to {known}): it was written by a newer release. Upgrade edge-agent, or move "
            "the file aside to start with an empty buffer (what it holds is then not sent); "
            "the file was not changed"
        )
        self.path = path
        self.version = version
        self.known = known
