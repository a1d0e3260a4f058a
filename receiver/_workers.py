"""uvicorn's settings for the receiver, and `--workers N`: N processes on one port.

The parent binds the port once and hands the socket to each worker (uvicorn's
Multiprocess supervisor: spawned processes, restarted if one dies, SIGTERM to
each on stop). A worker builds its app with `worker_app` below, so the
settings travel in the environment and every process opens its own store.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import sqlite3
import ssl
import sys
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.supervisors import Multiprocess

from receiver._backends import AnyStore, open_store, shown
from receiver.app import create_app

if TYPE_CHECKING:
    from receiver import Receiver

logger = logging.getLogger("edge_agent.receiver")

WORKER_SETTINGS = "EDGE_AGENT_RECEIVER_SETTINGS"
"""The environment variable `edge-agent receiver --workers N` hands its settings to
each worker process in (JSON; the token stays in its file)."""

GRACE_SECONDS = 35
"""How long a stop waits for requests in flight; past the 30 s a body may take to arrive."""


def listen(host: str, port: int) -> socket.socket:
    """The listening socket; SO_REUSEADDR so a receiver restarts on the port it just left."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def server_config(app: Any, **settings: Any) -> uvicorn.Config:
    """uvicorn as the receiver runs it: plain asyncio and h11 (no compiled extras to
    install), no websockets, no lifespan unless asked, no access log (the receiver logs
    each request at DEBUG itself), and keep-alive long enough for an agent's next batch."""
    verbose = logging.getLogger("edge_agent.receiver").isEnabledFor(logging.DEBUG)
    defaults: dict[str, Any] = {
        "http": "h11",
        "loop": "asyncio",
        "ws": "none",
        "lifespan": "off",
        "log_config": None,
        "log_level": logging.INFO if verbose else logging.WARNING,
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,
        "timeout_keep_alive": 30,
        "timeout_graceful_shutdown": GRACE_SECONDS,
    }
    return uvicorn.Config(app, **(defaults | settings))


def serve_workers(
    receiver: Receiver,
    *,
    token_file: str | os.PathLike[str] | None,
    tls_files: tuple[str | None, str | None, str | None],
    workers: int,
) -> int:
    """Serve `receiver`'s settings from `workers` processes until SIGINT or SIGTERM."""
    try:  # here, once: the schema is created before workers race to do it
        open_store(receiver.db_path).close()
    except sqlite3.Error as exc:
        print(f"receiver: {shown(receiver.db_path)}: {exc}", file=sys.stderr)
        return os.EX_CANTCREAT
    try:
        sock = listen(receiver.host, receiver.port)
    except OSError as exc:
        print(f"receiver: cannot listen on {receiver.host}:{receiver.port}: {exc}", file=sys.stderr)
        return os.EX_UNAVAILABLE
    receiver.port = sock.getsockname()[1]
    os.environ[WORKER_SETTINGS] = json.dumps(
        {
            "database": os.fspath(receiver.db_path),
            "token_file": None if token_file is None else os.path.abspath(token_file),
            "fail_rate": receiver.fail_rate,
            "latency": receiver.latency,
            "max_body": receiver.max_body,
            "log_level": logging.getLogger().getEffectiveLevel(),
        }
    )
    cert, key, client_ca = tls_files
    config = server_config(
        "receiver._workers:worker_app",
        factory=True,
        workers=workers,
        lifespan="on",  # a worker closes its store on the way out (ClosingStore)
        ssl_certfile=cert,
        ssl_keyfile=key,
        ssl_ca_certs=client_ca,
        ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca else ssl.CERT_NONE,
    )
    if token_file is None:
        logger.warning("no token file: batches are accepted without authentication")
    try:
        supervisor = Multiprocess(config, sockets=[sock])
        print(f"receiver listening on {receiver.url} ({workers} workers)", flush=True)
        supervisor.run()
    finally:
        sock.close()
    return 0


def worker_app() -> ASGIApp:
    """The app of one `--workers` process: its settings from the environment, its own store.

    Each process opens the store itself (a SQLite connection or a pool cannot
    cross a fork), and reads the token from its file, never from the environment.
    """
    _end_with_parent()
    settings = json.loads(os.environ[WORKER_SETTINGS])
    token = None
    if settings["token_file"] is not None:
        with open(settings["token_file"], encoding="utf-8") as file:
            token = file.read().strip()
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=settings["log_level"], format="%(levelname)s %(name)s: %(message)s"
        )
    store = open_store(settings["database"])
    app = create_app(
        store,
        token=token,
        fail_rate=settings["fail_rate"],
        latency=settings["latency"],
        max_body=settings["max_body"],
    )
    return ClosingStore(app, store)


class ClosingStore:
    """A worker's app that closes its store when uvicorn stops the worker (ASGI lifespan),
    so the database sees a clean end, not a process gone mid-connection."""

    def __init__(self, app: ASGIApp, store: AnyStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.store.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _end_with_parent() -> None:
    """Ask Linux for SIGTERM when the supervising process dies, even by SIGKILL: an orphaned
    worker would go on serving the port with nobody to stop it (prctl(2), PR_SET_PDEATHSIG)."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the parent was gone before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
