"""What every request gets, around the routes: one log line, latency, 500s in JSON, and a
polite close after a refused body.

A plain ASGI middleware rather than the framework's, as it must see the raw
`send` and `receive`: to hold an answer back (`latency`), to count its bytes
for the log line, and to keep reading a body it refused for a moment before
the connection closes. Closing a socket with unread data resets it, and a
sender still busy sending would see the reset instead of our 413 (RFC 9112,
section 9.6, "tear-down": a server should read for a while before it closes).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("edge_agent.receiver")

NOTE = "edge_agent.note"
"""The scope key of a one-item list: what became of the request, for its log line."""

METHOD = "edge_agent.method"
"""The scope key of the method the client sent: HEAD goes to the routes as GET."""

LINGER_SECONDS = 2.0
LINGER_BYTES = 16 * 2**20
"""At most this long and this much is read of a refused body before its connection closes."""


def note(scope: Scope, text: str) -> None:
    holder = scope.get(NOTE)
    if holder is not None:
        holder[0] = text


class Frame:
    """The receiver's outermost layer of its own; HEAD is answered as GET without its body."""

    def __init__(self, app: ASGIApp, latency: float) -> None:
        self.app = app
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.monotonic()
        scope[NOTE] = [""]
        scope[METHOD] = method = scope["method"]
        if method == "HEAD":
            # a copy: the server reads its own scope's method to send no body (RFC 9110, 9.3.2)
            scope = {**scope, "method": "GET"}
        request_done = False
        status = 0
        size = 0
        closing = False
        started = False

        async def receive_tracked() -> Message:
            nonlocal request_done
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body", False):
                request_done = True
            return message

        async def send_framed(message: Message) -> None:
            nonlocal status, size, closing, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                closing = any(
                    name.lower() == b"connection" and value.lower() == b"close"
                    for name, value in message.get("headers", [])
                )
                if self.latency:
                    await anyio.sleep(self.latency)
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
                if closing and not request_done and not message.get("more_body", False):
                    await send({**message, "more_body": True})
                    await self._linger(receive_tracked, lambda: request_done)
                    message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(scope, receive_tracked, send_framed)
        except Exception:
            logger.exception("unexpected error answering %s %s", method, scope["path"])
            note(scope, "internal error")
            if not started:
                body = json.dumps({"status": "error", "reason": "internal error"}).encode()
                await send_framed(_start(500, len(body)))
                await send_framed({"type": "http.response.body", "body": body})
        took = (time.monotonic() - began) * 1000
        text = scope[NOTE][0]
        query = scope.get("query_string", b"").decode("latin-1")
        logger.debug(
            '%s "%s %s" %d %dB %.1fms%s',
            (scope.get("client") or ("-",))[0],
            method,
            scope["path"] + (f"?{query}" if query else ""),
            status,
            size,
            took,
            f": {text}" if text else "",
        )

    @staticmethod
    async def _linger(receive: Receive, done: Any) -> None:
        """Read and drop what the sender is still sending, within LINGER_SECONDS and _BYTES."""
        dropped = 0
        with anyio.move_on_after(LINGER_SECONDS):
            while not done() and dropped < LINGER_BYTES:
                dropped += len((await receive()).get("body", b""))


def _start(status: int, length: int) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(length).encode()),
        ],
    }
