"""Query parameters of the read endpoints, checked the way a technician needs them.

A misspelt filter is an error, not silently ignored (which would answer with
every record and look like a result), and so is a filter given twice.
"""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request

from receiver._request import Refused

MAX_LIMIT = 100_000
"""The most records one answer of /api/v1/intervals or /api/v1/events holds."""


def only(request: Request, *allowed: str) -> None:
    """400 for a parameter not in `allowed`, or one given twice."""
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name not in allowed:
            known = f"; known: {', '.join(allowed)}" if allowed else ""
            raise Refused(400, f"unknown query parameter {name!r}{known}")
        if name in seen:
            raise Refused(400, f"query parameter {name!r} given twice")
        seen.add(name)


def limit(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise Refused(400, f"limit must be a whole number from 1 to {MAX_LIMIT} (got {text!r})")
    return int(text)


def instant(name: str, text: str | None) -> datetime | None:
    """An RFC 3339 instant with its offset; a naive time would be read in the server's zone."""
    if text is None:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        found = None
    if found is None or found.tzinfo is None:
        hint = " (a '+' in a URL must be written %2B)" if " " in text else ""
        raise Refused(400, f"{name} must be RFC 3339 with an offset (got {text!r}){hint}")
    return found


def choice(name: str, value: str | None, choices: tuple[str, ...]) -> str:
    if value not in choices:
        got = f" (got {value!r})" if value is not None else ""
        raise Refused(400, f"{name} must be one of {', '.join(choices)}{got}")
    return value
