"""From an HTTP request to a validated batch, or to the reason it will never be one.

Everything here is bounded by the receiver's body limit before it is trusted:
the declared length, each chunk, and the output of gzip, which is inflated a
piece at a time so a small body cannot grow into gigabytes in memory.
"""

from __future__ import annotations

import io
import json
import re
import socket
import time
import zlib
from email.message import Message
from typing import Any

from pydantic import ValidationError

from domain.batch import SCHEMA_VERSION, Batch

_MAX_ERRORS = 100
_KEY = re.compile(r"(?P<gateway>.+):(?P<sequence>[0-9]{1,19})")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,8}")


class Refused(Exception):
    """A request answered with an error; `close` when the connection can't be reused."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.errors = errors
        self.headers = headers or {}
        self.close = close

    def payload(self) -> dict[str, Any]:
        word = "rejected" if self.status < 500 else "unavailable" if self.status == 503 else "error"
        payload: dict[str, Any] = {"status": word, "reason": self.reason}
        if self.errors is not None:
            payload["errors"] = self.errors
        return payload


class Body:
    """The body of one request, framed by Content-Length or chunked encoding."""

    def __init__(self, rfile: io.BufferedIOBase, headers: Message, limit: int) -> None:
        self._rfile = rfile
        self._limit = limit
        self._chunked = False
        self._left = 0
        self.complete = False
        encoding = headers.get("Transfer-Encoding")
        lengths = headers.get_all("Content-Length") or []
        if encoding is not None:
            if lengths:
                raise Refused(400, "both Transfer-Encoding and Content-Length given", close=True)
            if encoding.strip().lower() != "chunked":
                raise Refused(501, f"Transfer-Encoding {encoding!r} is not supported", close=True)
            self._chunked = True
        elif lengths:
            if len(set(lengths)) > 1 or not re.fullmatch(r"[0-9]{1,18}", lengths[0].strip()):
                raise Refused(400, f"invalid Content-Length {lengths[0]!r}", close=True)
            self._left = int(lengths[0])
        self.complete = not self._chunked and self._left == 0

    def read(self) -> bytes:
        """The whole body; 413 without reading it when it is over the limit."""
        if self.complete:
            return b""
        try:
            data = self._read_chunked() if self._chunked else self._read_length()
        except TimeoutError:
            raise Refused(408, "timed out reading the body", close=True) from None
        self.complete = True
        return data

    def _read_length(self) -> bytes:
        if self._left > self._limit:
            raise Refused(413, f"body of {self._left} bytes is over {self._limit}", close=True)
        data = self._rfile.read(self._left)
        self._left -= len(data)
        if self._left:
            raise Refused(400, "body is shorter than its Content-Length", close=True)
        return data

    def _read_chunked(self) -> bytes:
        data = bytearray()
        while True:
            line = self._rfile.readline(1024)
            size = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not _CHUNK_SIZE.fullmatch(size):
                raise Refused(400, "malformed chunked body", close=True)
            length = int(size, 16)
            if length == 0:
                break
            if len(data) + length > self._limit:
                raise Refused(413, f"body is over {self._limit} bytes", close=True)
            chunk = self._rfile.read(length)
            if len(chunk) < length or self._rfile.readline(3) not in (b"\r\n", b"\n"):
                raise Refused(400, "malformed chunked body", close=True)
            data += chunk
        for _ in range(64):  # trailer fields, ignored
            line = self._rfile.readline(8192)
            if line in (b"\r\n", b"\n"):
                return bytes(data)
            if not line.endswith(b"\n"):
                break
        raise Refused(400, "malformed chunked body trailer", close=True)

    def settle(self) -> bool:
        """Consume a body nobody read, if small enough; whether the connection can be reused."""
        if self.complete:
            return True
        try:
            self.read()
        except Refused:
            return False
        return True

    def linger(self, connection: socket.socket, seconds: float = 2.0) -> None:
        """Drop what the client is still sending, so the answer reaches it before we close.

        Closing a socket with unread data resets the connection, and a client
        still busy sending would see the reset instead of our 413.
        """
        if self.complete:
            return
        deadline = time.monotonic() + seconds
        left = None if self._chunked else self._left
        try:
            connection.settimeout(0.2)
            while time.monotonic() < deadline and (left is None or left > 0):
                data = self._rfile.read1(65536 if left is None else min(65536, left))
                if not data:
                    break
                if left is not None:
                    left -= len(data)
        except OSError:
            pass


def gzipped(header: str | None) -> bool:
    """Whether Content-Encoding says gzip; 415 for any encoding we don't speak."""
    value = (header or "identity").strip().lower()
    if value in ("gzip", "x-gzip"):
        return True
    if value == "identity":
        return False
    raise Refused(415, f"Content-Encoding {header!r} is not supported: send gzip, or no encoding")


def gunzip(data: bytes, limit: int) -> bytes:
    """Inflate a gzip body (members may be concatenated), never past `limit` bytes."""
    out = bytearray()
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            pending = rest
            while not inflater.eof:
                # max_length bounds each step, so memory stays within the limit.
                piece = inflater.decompress(pending, limit - len(out) + 1)
                out += piece
                if len(out) > limit:
                    raise Refused(413, f"body is over {limit} bytes once decompressed")
                pending = inflater.unconsumed_tail
                if not piece and not pending:
                    raise Refused(400, "gzip body is truncated")
            rest = inflater.unused_data
    except zlib.error as exc:
        raise Refused(400, f"body is not valid gzip: {exc}") from None
    return bytes(out)


def parse_key(header: str | None) -> tuple[str, int]:
    """The gateway id and sequence named by an Idempotency-Key header."""
    found = _KEY.fullmatch((header or "").strip())
    if found is None:
        got = f" (got {header[:80]!r})" if header else ""
        raise Refused(400, f"Idempotency-Key must be '<gateway id>:<sequence>'{got}")
    return found["gateway"], int(found["sequence"])


def parse_batch(data: bytes) -> tuple[Batch, dict[str, Any]]:
    """The validated batch, and the same JSON as plain data so records can be kept as sent."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        hint = ""
        if data[:2] == b"\x1f\x8b":
            hint = " (it looks gzip-compressed: send Content-Encoding: gzip)"
        raise Refused(400, f"body is not valid JSON: {exc}{hint}") from None
    try:
        # strict: RFC 3339 text for times, numbers for numbers; no coercion of
        # "12.5" or a Unix timestamp that would hide a bug in the sender.
        batch = Batch.model_validate_json(data, strict=True)
    except ValidationError as exc:
        raise _rejection(exc) from None
    return batch, document


def check_key(gateway: str, sequence: int, batch: Batch) -> None:
    if (gateway, sequence) != (batch.gateway.id, batch.sequence):
        raise Refused(
            400,
            f"Idempotency-Key '{gateway}:{sequence}' does not match the body"
            f" (gateway.id {batch.gateway.id!r}, sequence {batch.sequence})",
        )


def _rejection(exc: ValidationError) -> Refused:
    found = exc.errors(include_url=False)
    errors = [{"path": _path(error["loc"]), "message": _message(error)} for error in found]
    listed = f"; the first {_MAX_ERRORS} are listed" if len(errors) > _MAX_ERRORS else ""
    return Refused(
        422,
        f"batch does not match schema version {SCHEMA_VERSION}:"
        f" {len(errors)} error{'s' if len(errors) != 1 else ''}{listed}",
        errors=errors[:_MAX_ERRORS],
    )


def _path(loc: tuple[int | str, ...]) -> str:
    """('intervals', 3, 'co2_kg') -> 'intervals[3].co2_kg'; the batch itself is '$'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "$"


def _message(error: Any) -> str:
    message: str = error["msg"]
    value = error.get("input")
    if error["type"] not in ("missing", "value_error") and isinstance(
        value, str | int | float | bool | None
    ):
        shown = json.dumps(value, ensure_ascii=False)
        message += f" (got {shown[:60]}{'…' if len(shown) > 60 else ''})"
    return message
