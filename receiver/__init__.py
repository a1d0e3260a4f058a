"""The reference central endpoint: validates, stores and de-duplicates batches.

It runs in three places: inside `edge-agent demo` on a background thread,
inside tests, and from `edge-agent receiver` for integrators, who point their
own sender at it. The contract it holds is in PRODUCT.md, "The contract with
the central platform"; its routes are in receiver/app.py, served by uvicorn
(one process here, or `--workers N` through receiver._workers).

    with Receiver("central.db", token="s3cret") as receiver:
        agent_url = receiver.url + "/api/v1/batches"
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sqlite3
import ssl
import sys
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import uvicorn

from receiver._backends import AnyStore, open_store, shown
from receiver._workers import listen, serve_workers, server_config
from receiver.app import create_app

__all__ = ["Receiver", "serve"]

logger = logging.getLogger("edge_agent.receiver")


class Receiver:
    """A receiver serving on a daemon thread; `start()`, then `url`, then `stop()`.

    `tls` (a server-side SSLContext) serves HTTPS, for testing a sender's
    certificate checks and mutual TLS. fail_rate and latency make it misbehave
    on purpose, for tests and demos:
    that share of POSTs is answered 503 with Retry-After before anything is
    stored, and every answer waits `latency` seconds. After `stop()`, `start()`
    serves again on the same port, so a sender can be shown an outage.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        token: str | None,
        host: str = "127.0.0.1",
        port: int = 0,
        fail_rate: float = 0.0,
        latency: float = 0.0,
        max_body: int = 16 * 2**20,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be from 0 to 1 (got {fail_rate})")
        if latency < 0:
            raise ValueError(f"latency must not be negative (got {latency})")
        if max_body < 1:
            raise ValueError(f"max_body must be at least 1 byte (got {max_body})")
        if token is not None and not token:
            raise ValueError("token must not be empty: pass None to accept batches without one")
        self.db_path = db_path
        self.host = host
        self.port = port
        self.fail_rate = fail_rate
        self.latency = latency
        self.max_body = max_body
        self.tls = tls
        self._token = token
        self._lock = threading.Lock()
        self._running: tuple[uvicorn.Server, threading.Thread, AnyStore] | None = None

    def __repr__(self) -> str:
        return f"Receiver({self.url!r}, db_path={shown(self.db_path)!r})"  # never the token

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> None:
        """Open the store, bind the port and serve on a daemon thread."""
        with self._lock:
            if self._running is not None:
                raise RuntimeError(f"receiver already serving on {self.url}")
            store = open_store(self.db_path)
            try:
                sock = listen(self.host, self.port)
            except BaseException:
                store.close()
                raise
            self.port = sock.getsockname()[1]
            app = create_app(
                store,
                token=self._token,
                fail_rate=self.fail_rate,
                latency=self.latency,
                max_body=self.max_body,
            )
            config = server_config(app)
            config.load()
            config.ssl = self.tls  # a context of the caller's; uvicorn takes file names only
            server = uvicorn.Server(config)
            failed: list[BaseException] = []
            thread = threading.Thread(
                target=_serve_in_thread,
                args=(server, sock, failed),
                name=f"receiver:{self.port}",
                daemon=True,
            )
            thread.start()
            while not server.started and thread.is_alive():
                time.sleep(0.005)
            if not server.started:
                sock.close()
                store.close()
                raise RuntimeError(f"receiver on {self.url} did not start") from (
                    failed[0] if failed else None
                )
            self._running = (server, thread, store)
        logger.info("receiver listening on %s", self.url)

    def stop(self) -> None:
        """Stop accepting, close idle connections, finish answers in flight, close the store.

        Idempotent. A request in flight is answered (a body still arriving has
        BODY_SECONDS in receiver.app to arrive) and its connection then closed.
        """
        with self._lock:
            running, self._running = self._running, None
            if running is None:
                return
            server, thread, store = running
            server.should_exit = True
            thread.join()
            store.close()
        logger.info("receiver on %s stopped", self.url)

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _serve_in_thread(
    server: uvicorn.Server, sock: socket.socket, failed: list[BaseException]
) -> None:
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except BaseException as exc:  # handed to start(), which raises it
        failed.append(exc)
        logger.error("receiver stopped: %s", exc, exc_info=exc)


def serve(
    host: str,
    port: int,
    db_path: str | os.PathLike[str],
    token_file: str | os.PathLike[str] | None,
    fail_rate: float = 0.0,
    latency: float = 0.0,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_client_ca: str | None = None,
    workers: int = 1,
    mqtt: dict[str, Any] | None = None,
) -> int:
    """Serve until SIGINT or SIGTERM; the exit code for `edge-agent receiver`.

    With `mqtt` (receiver._mqtt.MqttIngest's url, share, topics, client_id) it
    also takes batches from a broker, in a thread beside the HTTP server.

    With `tls_cert` it serves HTTPS; with `tls_client_ca` it also requires a
    client certificate signed by that CA (mutual TLS). With `workers` over 1,
    that many processes share the port, each with its own store connection.

    The token is read from a file (a systemd credential, say), never from the
    command line, where every user of the machine could read it in `ps`.
    Without a token file, batches are accepted without authentication.
    """
    if workers < 1:
        print(f"receiver: --workers must be at least 1 (got {workers})", file=sys.stderr)
        return os.EX_USAGE
    token = None
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"receiver: cannot read the token file: {exc}", file=sys.stderr)
            return os.EX_NOINPUT
        if not token:
            print(f"receiver: {token_file}: the token file is empty", file=sys.stderr)
            return os.EX_CONFIG
    try:
        tls = _server_tls(tls_cert, tls_key, tls_client_ca)
    except (OSError, ssl.SSLError, ValueError) as exc:
        print(f"receiver: TLS: {exc}", file=sys.stderr)
        return os.EX_CONFIG
    try:
        receiver = Receiver(
            db_path, token, host, port, fail_rate=fail_rate, latency=latency, tls=tls
        )
    except ValueError as exc:
        print(f"receiver: {exc}", file=sys.stderr)
        return os.EX_USAGE
    stop = threading.Event()
    ingest: tuple[threading.Thread, AnyStore] | None = None
    if workers > 1:  # the workers serve HTTP; this process takes MQTT beside them
        try:
            ingest = _start_ingest(db_path, stop, mqtt) if mqtt else None
        except (ValueError, sqlite3.Error) as exc:
            return _ingest_refused(db_path, exc)
        try:
            return serve_workers(
                receiver,
                token_file=token_file,
                tls_files=(tls_cert, tls_key, tls_client_ca),
                workers=workers,
            )
        finally:
            stop.set()
            _stop_ingest(ingest)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            receiver.start()
        except sqlite3.Error as exc:
            print(f"receiver: {shown(db_path)}: {exc}", file=sys.stderr)
            return os.EX_CANTCREAT
        except OSError as exc:
            print(f"receiver: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
            return os.EX_UNAVAILABLE
        if token is None:
            logger.warning("no token file: batches are accepted without authentication")
        print(f"receiver listening on {receiver.url}", flush=True)
        try:
            ingest = _start_ingest(db_path, stop, mqtt) if mqtt else None
        except (ValueError, sqlite3.Error) as exc:
            return _ingest_refused(db_path, exc)
        while not stop.wait(0.5):
            pass
        return 0
    finally:
        stop.set()
        _stop_ingest(ingest)
        receiver.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_ingest(
    db_path: str | os.PathLike[str], stop: threading.Event, options: dict[str, Any]
) -> tuple[threading.Thread, AnyStore]:
    """MQTT ingest beside the HTTP server, on its own connection to the database.
    ValueError for a wrong --mqtt, sqlite3.Error for a store it cannot open."""
    from receiver._mqtt import MqttIngest

    store = open_store(db_path)
    try:
        ingest = MqttIngest(store, stop=stop, **options)
    except ValueError:
        store.close()
        raise
    thread = threading.Thread(target=ingest.run, name="receiver:mqtt", daemon=True)
    thread.start()
    print(f"receiver taking batches from {options['url']} ({', '.join(ingest.filters)})",
          flush=True)  # fmt: skip
    return thread, store


def _ingest_refused(db_path: str | os.PathLike[str], exc: Exception) -> int:
    """A wrong --mqtt (64) or a store the ingest cannot open (73), said in one line."""
    if isinstance(exc, ValueError):
        print(f"receiver: {exc}", file=sys.stderr)
        return os.EX_USAGE
    print(f"receiver: {shown(db_path)}: {exc}", file=sys.stderr)
    return os.EX_CANTCREAT


def _stop_ingest(ingest: tuple[threading.Thread, AnyStore] | None) -> None:
    if ingest is not None:
        thread, store = ingest
        thread.join(10)
        store.close()


def _server_tls(cert: str | None, key: str | None, client_ca: str | None) -> ssl.SSLContext | None:
    if cert is None:
        if key or client_ca:
            raise ValueError("--tls-key and --tls-client-ca need --tls-cert")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context
