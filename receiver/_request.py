"""From an HTTP request to a validated batch, or to the reason it will never be one.

The body itself is read, within the receiver's limit, by receiver._body; here
are the headers that frame it and the checks of what it says.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from domain.batch import SCHEMA_VERSION, Batch

_MAX_ERRORS = 100
_KEY = re.compile(r"(?P<gateway>.+):(?P<sequence>[0-9]{1,19})")


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


def gzipped(header: str | None) -> bool:
    """Whether Content-Encoding says gzip; 415 for any encoding we don't speak."""
    value = (header or "identity").strip().lower()
    if value in ("gzip", "x-gzip"):
        return True
    if value == "identity":
        return False
    raise Refused(415, f"Content-Encoding {header!r} is not supported: send gzip, or no encoding")


def parse_key(header: str | None) -> tuple[str, int]:
    """The gateway id and sequence named by an Idempotency-Key header."""
    found = _KEY.fullmatch((header or "").strip())
    if found is None:
        got = f" (got {header[:80]!r})" if header else ""
        raise Refused(400, f"Idempotency-Key must be '<gateway id>:<sequence>'{got}")
    return found["gateway"], int(found["sequence"])


def parse_batch(data: bytes) -> tuple[Batch, dict[str, Any]]:
    """The validated batch, and the same JSON as plain data so records can be kept as sent."""
    document = _json_document(data)
    return validate_batch(data, parsed=True), document


def validate_batch(data: bytes, *, parsed: bool = False) -> Batch:
    """The batch, validated in one pass over the JSON: a store that keeps the records'
    text from the body itself (receiver._postgres) needs nothing more. `parsed`: the
    body is known to be JSON to Python's parser."""
    try:
        # strict: RFC 3339 text for times, numbers for numbers; no coercion of
        # "12.5" or a Unix timestamp that would hide a bug in the sender.
        return Batch.model_validate_json(data, strict=True)
    except ValidationError as exc:
        if not parsed and exc.errors(include_url=False)[0]["type"] == "json_invalid":
            _json_document(data)  # 400 in Python's words (line and column), as before
        raise _rejection(exc) from None


def _json_document(data: bytes) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(data)
        return document
    except (ValueError, RecursionError) as exc:
        hint = ""
        if data[:2] == b"\x1f\x8b":
            hint = " (it looks gzip-compressed: send Content-Encoding: gzip)"
        raise Refused(400, f"body is not valid JSON: {exc}{hint}") from None


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
