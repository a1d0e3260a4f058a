"""The receiver's HTTP side: routes, answers, and connections that end when asked.

ThreadingHTTPServer with HTTP/1.1 keep-alive, as an agent holds one connection
open across its batches. Every answer is JSON with a Content-Length, errors
included, so a client never has to parse an HTML error page.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import random
import socket
import socketserver
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, cast, get_args
from urllib.parse import parse_qsl, urlsplit

from domain.batch import batch_json_schema
from receiver._backends import AnyStore
from receiver._request import (
    Body,
    Refused,
    check_key,
    gunzip,
    gzipped,
    parse_batch,
    parse_key,
)
from receiver._store import GroupBy, KeyConflict, Period
from receiver._summary import summarize

logger = logging.getLogger("edge_agent.receiver")

Payload = dict[str, Any] | bytes
Route = Callable[["Handler", str], tuple[int, Payload]]

_MAX_LIMIT = 100_000


class ReceiverServer(ThreadingHTTPServer):
    """The listening socket, the shared state of handlers, and the connections to end on stop."""

    # Handler threads are joined on server_close(), so the store is never
    # closed under a request that is still writing to it.
    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        host: str,
        port: int,
        *,
        store: AnyStore,
        token: str | None,
        fail_rate: float,
        latency: float,
        max_body: int,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)
        self.store = store
        self.token = token
        self.fail_rate = fail_rate
        self.latency = latency
        self.max_body = max_body
        self.random = random.Random()
        self.schema = json.dumps(batch_json_schema(), ensure_ascii=False).encode()
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which may wait on
        # DNS; nothing here needs the name.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.socket.getsockname()[:2]

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            if self.stopping.is_set():
                _stop_reading(connection)
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def end_connections(self) -> None:
        """Make every handler's next read see end of input, so idle keep-alive threads exit.

        Answers being written still go out: only the reading side is shut.
        """
        with self._connections_lock:
            self.stopping.set()
            for connection in self._connections:
                _stop_reading(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            logger.debug("%s: connection error: %s", client_address[0], error)
        else:
            logger.error("%s: unexpected error", client_address[0], exc_info=True)


def _stop_reading(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the client closed it already
        connection.shutdown(socket.SHUT_RD)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "edge-agent-receiver"
    timeout = 30.0  # an idle keep-alive connection is closed after this long
    server: ReceiverServer
    routes: ClassVar[dict[str, dict[str, Route]]]

    _body: Body | None = None
    _started: float | None = None
    _note = ""  # what became of the request, for its log line

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._started = time.monotonic()
        self._note = ""
        status, payload, headers = self._answer()
        if not self.close_connection and self._body is not None and not self._body.settle():
            self.close_connection = True
        if self.server.latency:
            self.server.stopping.wait(self.server.latency)
        self._send(status, payload, headers)
        if self.close_connection and self._body is not None:
            self._body.linger(self.connection)

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _answer(self) -> tuple[int, Payload, dict[str, str]]:
        self._body = None
        try:
            self._body = Body(self.rfile, self.headers, self.server.max_body)
            url = urlsplit(self.path)
            methods = self.routes.get(url.path)
            if methods is None:
                raise Refused(404, f"no such path {url.path!r}")
            route = methods.get("GET" if self.command == "HEAD" else self.command)
            if route is None:
                allowed = sorted([*methods, *(["HEAD"] if "GET" in methods else [])])
                raise Refused(
                    405,
                    f"{self.command} is not allowed on {url.path}",
                    headers={"Allow": ", ".join(allowed)},
                )
            return (*route(self, url.query), {})
        except Refused as refused:
            if refused.close:
                self.close_connection = True
            self._note = refused.reason
            return refused.status, refused.payload(), refused.headers
        except (sqlite3.OperationalError, sqlite3.ProgrammingError) as exc:
            # A full disk or a store closing under us: the batch is fine,
            # the sender should try again later.
            logger.warning("store unavailable: %s", exc)
            self._note = f"store unavailable: {exc}"
            unavailable = Refused(503, "store unavailable", headers={"Retry-After": "5"})
            return unavailable.status, unavailable.payload(), unavailable.headers
        except Exception:
            logger.exception("unexpected error answering %s %s", self.command, self.path)
            self._note = "internal error"
            return 500, Refused(500, "internal error").payload(), {}

    def _send(self, status: int, payload: Payload, headers: dict[str, str]) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if self.server.stopping.is_set():
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        took = f" {(time.monotonic() - self._started) * 1000:.1f}ms" if self._started else ""
        logger.debug(
            '%s "%s %s" %d %dB%s%s',
            self.client_address[0],
            self.command or "-",
            getattr(self, "path", "-"),  # unset when the request line itself was bad
            status,
            len(body),
            took,
            f": {self._note}" if self._note else "",
        )

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by http.server itself (a malformed request line, say), as JSON too."""
        self.close_connection = True
        self._started = None
        reason = message or HTTPStatus(code).phrase
        self._note = reason
        self._send(code, Refused(code, reason).payload(), {})

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Nothing: _send logs the one line per request."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.client_address[0], format % args)

    # The routes.

    def _post_batch(self, query: str) -> tuple[int, Payload]:
        _params(query)
        server = self.server
        if server.token is not None:
            self._authorize(server.token)
        gateway, sequence = parse_key(self.headers.get("Idempotency-Key"))
        compressed = gzipped(self.headers.get("Content-Encoding"))
        body = self._body.read() if self._body is not None else b""
        if server.fail_rate and server.random.random() < server.fail_rate:
            raise Refused(503, "simulated failure (fail_rate)", headers={"Retry-After": "1"})
        data = gunzip(body, server.max_body) if compressed else body
        batch, document = parse_batch(data)
        check_key(gateway, sequence, batch)
        key = f"{gateway}:{sequence}"
        try:
            stored = server.store.put(key, batch, document, hashlib.sha256(data).hexdigest())
        except KeyConflict:
            raise Refused(409, f"{key} was already stored with a different body") from None
        if stored is None:
            self._note = f"{key} duplicate"
            return 200, {"status": "duplicate", "key": key}
        self._note = (
            f"{key} stored {stored.intervals} intervals, {stored.events} events,"
            f" {stored.samples} samples; {stored.duplicate_records} duplicate records"
        )
        return 200, {
            "status": "stored",
            "key": key,
            "intervals": stored.intervals,
            "events": stored.events,
            "samples": stored.samples,
            "duplicate_records": stored.duplicate_records,
        }

    def _authorize(self, token: str) -> None:
        scheme, _, credentials = self.headers.get("Authorization", "").strip().partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="edge-agent"'}
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Refused(401, "missing bearer token", headers=challenge)
        if not hmac.compare_digest(credentials.strip().encode(), token.encode()):
            raise Refused(401, "wrong bearer token", headers=challenge)

    def _get_schema(self, query: str) -> tuple[int, Payload]:
        _params(query)
        return 200, self.server.schema

    def _get_health(self, query: str) -> tuple[int, Payload]:
        _params(query)
        return 200, {"status": "ok"}

    def _get_intervals(self, query: str) -> tuple[int, Payload]:
        if self.server.token is not None:  # plant data: the same token as for sending
            self._authorize(self.server.token)
        params = _params(query, "gateway", "device", "from", "to", "limit")
        limit = _limit(params.get("limit", "10000"))
        records, truncated = self.server.store.intervals(
            gateway=params.get("gateway"),
            device=params.get("device"),
            start_from=_instant("from", params.get("from")),
            start_to=_instant("to", params.get("to")),
            limit=limit,
        )
        # The records are stored as JSON text: spliced in, not parsed and dumped again.
        answer = '{"intervals":[' + ",".join(records) + '],"truncated":' + json.dumps(truncated)
        return 200, (answer + "}").encode()

    def _get_summary(self, query: str) -> tuple[int, Payload]:
        if self.server.token is not None:
            self._authorize(self.server.token)
        params = _params(query, "by", "period", "date")
        by = _choice("by", params.get("by"), get_args(GroupBy))
        period = _choice("period", params.get("period"), get_args(Period))
        day = None
        if "date" in params:
            try:
                day = date.fromisoformat(params["date"])
            except ValueError:
                raise Refused(400, f"date must be YYYY-MM-DD (got {params['date']!r})") from None
        return 200, summarize(self.server.store, cast(GroupBy, by), cast(Period, period), day)


Handler.routes = {
    "/api/v1/batches": {"POST": Handler._post_batch},
    "/api/v1/schema": {"GET": Handler._get_schema},
    "/api/v1/intervals": {"GET": Handler._get_intervals},
    "/api/v1/summary": {"GET": Handler._get_summary},
    "/healthz": {"GET": Handler._get_health},
}


def _params(query: str, *allowed: str) -> dict[str, str]:
    """Query parameters, each known and given once: a misspelt filter is an error, not ignored."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            known = f"; known: {', '.join(allowed)}" if allowed else ""
            raise Refused(400, f"unknown query parameter {name!r}{known}")
        if name in params:
            raise Refused(400, f"query parameter {name!r} given twice")
        params[name] = value
    return params


def _choice(name: str, value: str | None, choices: tuple[str, ...]) -> str:
    if value not in choices:
        got = f" (got {value!r})" if value is not None else ""
        raise Refused(400, f"{name} must be one of {', '.join(choices)}{got}")
    return value


def _limit(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= _MAX_LIMIT:
        raise Refused(400, f"limit must be a whole number from 1 to {_MAX_LIMIT} (got {text!r})")
    return int(text)


def _instant(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        instant = None
    if instant is None or instant.tzinfo is None:
        hint = " (a '+' in a URL must be written %2B)" if " " in text else ""
        raise Refused(400, f"{name} must be RFC 3339 with an offset (got {text!r}){hint}")
    return instant
