"""The receiver's routes, on FastAPI: what each endpoint takes and answers.

    POST /api/v1/batches        gzip JSON, Bearer token, Idempotency-Key
    GET  /api/v1/schema         the batch JSON Schema
    GET  /api/v1/intervals      stored interval records, filtered
    GET  /api/v1/events         stored events (alarms, devices offline, ...), filtered
    GET  /api/v1/summary        kWh, tce, CO2 per group and period
    GET  /api/v1/openapi.json   this API, described
    GET  /healthz

With a token, every one of them needs it. Every answer is JSON, errors
included (receiver._request.Refused), so a client never parses an HTML page.
The batch body is not left to the framework: it is streamed through
receiver._body within the size limit, and validated with the schema's own
models (domain/batch.py), whose 422 names the path of each bad field.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, cast, get_args

import anyio
from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp

import receiver._answers as answers
import receiver._query as query
from domain.batch import SCHEMA_VERSION, Batch, batch_json_schema
from receiver._backends import AnyStore, parse_for, put_body
from receiver._body import declared_length, read_body
from receiver._errors import answer_errors_in_json
from receiver._middleware import Frame, note
from receiver._queries import GroupBy, Period
from receiver._request import Refused, check_key, gzipped, parse_key
from receiver._store import KeyConflict
from receiver._summary import summarize

logger = logging.getLogger("edge_agent.receiver")

BODY_SECONDS = 30.0
"""A body that takes longer than this to arrive is answered 408: a stalled sender
must not hold a request open for ever."""

_REFUSALS: dict[int | str, dict[str, Any]] = {
    code: {"model": answers.Refusal, "description": text}
    for code, text in {
        400: "A bad request: the reason says what",
        401: "Missing or wrong bearer token",
        503: "Store unavailable, or fail_rate; try again after Retry-After",
    }.items()
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "description": "A batch, gzip-compressed (Content-Encoding: gzip) or plain",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Batch"}}},
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "description": "'<gateway.id>:<sequence>' of the batch in the body",
            "schema": {"type": "string"},
        }
    ],
}


def create_app(
    store: AnyStore,
    *,
    token: str | None,
    fail_rate: float = 0.0,
    latency: float = 0.0,
    max_body: int = 16 * 2**20,
) -> ASGIApp:
    """The receiver as an ASGI application serving `store`."""
    app = FastAPI(
        title="edge-agent reference receiver",
        version=str(SCHEMA_VERSION),
        description="Batches of energy records from edge-agent gateways, and their read side.",
        openapi_url=None,  # served below, behind the token
        docs_url=None,
        redoc_url=None,
    )
    rng = random.Random()
    schema = json.dumps(batch_json_schema(), ensure_ascii=False).encode()

    def authorized(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    ) -> None:
        if token is None:
            return
        header = request.headers.get("Authorization", "")
        scheme, _space, credentials = header.strip().partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="edge-agent"'}
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Refused(401, "missing bearer token", headers=challenge)
        if not hmac.compare_digest(credentials.strip().encode(), token.encode()):
            raise Refused(401, "wrong bearer token", headers=challenge)

    def allowing(*names: str) -> Callable[[Request], None]:
        def check(request: Request) -> None:
            query.only(request, *names)

        return check

    guarded = [Depends(authorized)]  # first: a stranger learns nothing, not even a parameter

    @app.post(
        "/api/v1/batches",
        dependencies=[*guarded, Depends(allowing())],
        response_model=answers.StoredAnswer | answers.DuplicateAnswer,
        responses={
            **_REFUSALS,
            409: {"model": answers.Refusal, "description": "Known key, different body"},
            413: {"model": answers.Refusal, "description": "Over the size limit"},
            415: {"model": answers.Refusal, "description": "Not gzip nor plain"},
            422: {"model": answers.Refusal, "description": "Not a batch of this schema"},
        },
        openapi_extra=_BATCH_BODY,
        summary="Store a batch, once per Idempotency-Key",
    )
    async def post_batch(request: Request) -> Response:
        gateway, sequence = parse_key(request.headers.get("Idempotency-Key"))
        compressed = gzipped(request.headers.get("Content-Encoding"))
        length = declared_length(request.headers.get("Content-Length"), max_body)
        try:
            with anyio.fail_after(BODY_SECONDS):
                data = await read_body(request.stream(), length, max_body, compressed=compressed)
        except TimeoutError:
            raise Refused(408, "timed out reading the body", close=True) from None
        except ClientDisconnect:
            raise Refused(400, "the client went away while sending", close=True) from None
        if fail_rate and rng.random() < fail_rate:
            raise Refused(503, "simulated failure (fail_rate)", headers={"Retry-After": "1"})
        answer = await run_in_threadpool(_store_batch, store, gateway, sequence, data)
        if answer["status"] == "duplicate":
            note(request.scope, f"{answer['key']} duplicate")
        else:
            note(
                request.scope,
                f"{answer['key']} stored {answer['intervals']} intervals, {answer['events']}"
                f" events, {answer['samples']} samples; {answer['duplicate_records']} duplicate"
                " records",
            )
        return JSONResponse(answer)

    read = app.get  # HEAD too: Frame hands it to the routes as a GET

    @read(
        "/api/v1/schema",
        dependencies=[*guarded, Depends(allowing())],
        responses={200: {"content": {"application/json": {}}}, **_REFUSALS},
        summary="The batch JSON Schema",
    )
    def get_schema() -> Response:
        return Response(schema, media_type="application/json")

    @read(
        "/healthz",
        dependencies=[*guarded, Depends(allowing())],
        response_model=answers.HealthAnswer,
        responses=_REFUSALS,
    )
    def get_health() -> Response:
        return JSONResponse({"status": "ok"})

    @read(
        "/api/v1/intervals",
        dependencies=[*guarded, Depends(allowing("gateway", "device", "from", "to", "limit"))],
        response_model=answers.IntervalsAnswer,
        responses=_REFUSALS,
        summary="Stored interval records, ordered by gateway, device and start",
    )
    def get_intervals(
        gateway: str | None = None,
        device: str | None = None,
        start_from: Annotated[str | None, _FROM] = None,
        start_to: Annotated[str | None, _TO] = None,
        limit: Annotated[str, _LIMIT] = "10000",
    ) -> Response:
        records, truncated = store.intervals(
            gateway=gateway,
            device=device,
            start_from=query.instant("from", start_from),
            start_to=query.instant("to", start_to),
            limit=query.limit(limit),
        )
        return _records("intervals", records, truncated)

    @read(
        "/api/v1/events",
        dependencies=[
            *guarded,
            Depends(allowing("gateway", "device", "kind", "severity", "from", "to", "limit")),
        ],
        response_model=answers.EventsAnswer,
        responses=_REFUSALS,
        summary="Stored events: alarms raised and cleared, devices offline, buffer full ...",
    )
    def get_events(
        gateway: str | None = None,
        device: str | None = None,
        kind: Annotated[str | None, Query(description=_KINDS)] = None,
        severity: Annotated[str | None, Query(description="info, warning or critical")] = None,
        start_from: Annotated[str | None, _FROM] = None,
        start_to: Annotated[str | None, _TO] = None,
        limit: Annotated[str, _LIMIT] = "10000",
    ) -> Response:
        records, truncated = store.events(
            gateway=gateway,
            device=device,
            kind=kind,
            severity=severity,
            start_from=query.instant("from", start_from),
            start_to=query.instant("to", start_to),
            limit=query.limit(limit),
        )
        return _records("events", records, truncated)

    @read(
        "/api/v1/summary",
        dependencies=[*guarded, Depends(allowing("by", "period", "date"))],
        response_model=answers.SummaryAnswer,
        responses=_REFUSALS,
        summary="kWh, tce and CO2 per group and local period, with earlier periods beside",
    )
    def get_summary(
        by: Annotated[str | None, Query(description="region, industry, enterprise or gateway")],
        period: Annotated[str | None, Query(description="day or month")],
        day: Annotated[str | None, Query(alias="date", description="YYYY-MM-DD")] = None,
    ) -> Response:
        group = query.choice("by", by, get_args(GroupBy))
        length = query.choice("period", period, get_args(Period))
        wanted = None
        if day is not None:
            try:
                wanted = date.fromisoformat(day)
            except ValueError:
                raise Refused(400, f"date must be YYYY-MM-DD (got {day!r})") from None
        found = summarize(store, cast(GroupBy, group), cast(Period, length), wanted)
        return JSONResponse(found)

    document: dict[str, Any] = {}

    @read(
        "/api/v1/openapi.json",
        dependencies=[*guarded, Depends(allowing())],
        include_in_schema=False,
    )
    def get_openapi_document() -> Response:
        if not document:
            document.update(_openapi(app))
        return JSONResponse(document)

    answer_errors_in_json(app)
    return Frame(app, latency)


_BEARER = HTTPBearer(auto_error=False, description="The receiver's token (--token-file)")
_FROM = Query(alias="from", description="RFC 3339 with offset; inclusive")
_TO = Query(alias="to", description="RFC 3339 with offset; exclusive")
_LIMIT = Query(description=f"1 to {query.MAX_LIMIT}; default 10000")
_KINDS = (
    "e.g. alarm_raised, alarm_cleared, device_offline, device_online, buffer_full,"
    " counter_reset, action_failed"
)


def _store_batch(store: AnyStore, gateway: str, sequence: int, data: bytes) -> dict[str, Any]:
    """Validate and store a body (in a worker thread: both take CPU or wait on the disk)."""
    batch, document = parse_for(store, data)
    check_key(gateway, sequence, batch)
    key = f"{gateway}:{sequence}"
    try:
        stored = put_body(store, key, batch, document, data)
    except KeyConflict:
        raise Refused(409, f"{key} was already stored with a different body") from None
    if stored is None:
        return {"status": "duplicate", "key": key}
    return {
        "status": "stored",
        "key": key,
        "intervals": stored.intervals,
        "events": stored.events,
        "samples": stored.samples,
        "duplicate_records": stored.duplicate_records,
    }


def _records(name: str, records: list[str], truncated: bool) -> Response:
    # The records are stored as JSON text: spliced in, not parsed and dumped again.
    body = '{"' + name + '":[' + ",".join(records) + '],"truncated":' + json.dumps(truncated)
    return Response((body + "}").encode(), media_type="application/json")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The framework's document, with the batch schema it cannot see (the body is read by
    hand) under components."""
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    batch = Batch.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(batch.pop("$defs", {}))
    schemas["Batch"] = batch
    return document
