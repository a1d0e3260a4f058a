"""Every error the receiver answers, as JSON: its own refusals, the framework's 404, 405 and
bad parameters, a store that is unavailable, and anything unexpected.

A client, or a technician with curl, never has to read an HTML page or a
framework's own error shape: it is always receiver._request.Refused's
`{"status", "reason"}`, with `errors` on a 422.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from receiver._middleware import METHOD, note
from receiver._request import Refused

logger = logging.getLogger("edge_agent.receiver")

UNAVAILABLE: tuple[type[Exception], ...] = (sqlite3.OperationalError, sqlite3.ProgrammingError)
"""Store errors that are not the batch's fault (a full disk, a store closing under
us): 503, and the sender tries again later."""


def answer_errors_in_json(app: FastAPI) -> None:
    async def refused(request: Request, exc: Exception) -> Response:
        refusal = cast(Refused, exc)
        note(request.scope, refusal.reason)
        headers = dict(refusal.headers)
        if refusal.close:
            headers["Connection"] = "close"
        return JSONResponse(refusal.payload(), refusal.status, headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        error = cast(HTTPException, exc)
        if error.status_code == 405:
            allowed = (error.headers or {}).get("Allow", "").split(", ")
            allowed = sorted([*allowed, *(["HEAD"] if "GET" in allowed else [])])
            refusal = Refused(
                405,
                f"{request.scope.get(METHOD, request.method)} is not allowed on {request.url.path}",
                headers={"Allow": ", ".join(allowed)},
            )
        elif error.status_code == 404:
            refusal = Refused(404, f"no such path {request.url.path!r}")
        else:
            refusal = Refused(
                error.status_code, str(error.detail), headers=dict(error.headers or {})
            )
        return await refused(request, refusal)

    async def invalid(request: Request, exc: Exception) -> Response:
        errors = cast(RequestValidationError, exc).errors()
        first = errors[0] if errors else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return await refused(request, Refused(400, f"{where}: {first.get('msg', 'invalid')}"))

    async def unavailable(request: Request, exc: Exception) -> Response:
        logger.warning("store unavailable: %s", exc)
        note(request.scope, f"store unavailable: {exc}")
        refusal = Refused(503, "store unavailable", headers={"Retry-After": "5"})
        return JSONResponse(refusal.payload(), 503, refusal.headers)

    async def internal(request: Request, exc: Exception) -> Response:
        # Logged once by Frame, around everything.
        return JSONResponse(Refused(500, "internal error").payload(), 500)

    app.add_exception_handler(Exception, internal)
    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, unavailable)
