"""`edge-agent receiver`: the reference central endpoint's options, and starting it.

Apart from agent/cli.py because the receiver is a program of its own (uvicorn,
several workers, MQTT ingest) with as many options as the rest of the CLI; it is
imported only when run, so a plant PC without the `receiver` extra is told what
to install rather than shown a traceback.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from agent import logs


def receiver_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--db", required=True, metavar="FILE|URL",
        help="SQLite file of stored batches, or a postgresql:// URL (password: PGPASSFILE)",
    )  # fmt: skip
    p.add_argument("--token-file", metavar="F", help="file with the expected bearer token")
    p.add_argument("--fail-rate", type=float, default=0.0, help="share of POSTs answered 503")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate")
    p.add_argument("--tls-key", metavar="PEM", help="its private key (if not in --tls-cert)")
    p.add_argument("--tls-client-ca", metavar="PEM", help="require client certificates from it")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="N worker processes")
    p.add_argument("--mqtt", metavar="URL", help="also take batches from this broker (mqtt://)")
    p.add_argument("--share", default="receivers", help="shared subscription group ('' for none)")
    p.add_argument("--topic", action="append", help="topic filter (repeat; default: the agent's)")
    p.add_argument("--mqtt-client-id", metavar="ID", help="stable per receiver (default by port)")
    p.add_argument(
        "--mqtt-credentials-file", metavar="F",
        help="the broker login: username on the first line, password on the second",
    )  # fmt: skip


def receiver_missing(exc: ImportError) -> int | None:
    """69 with how to install it when the receiver's extra (FastAPI, uvicorn) is missing."""
    if (exc.name or "").split(".")[0] not in ("fastapi", "starlette", "uvicorn"):
        return None
    print(
        f"edge-agent: the receiver needs {exc.name}, which is not installed;"
        " install it with: pip install 'edge-agent[receiver]'",
        file=sys.stderr,
    )
    return os.EX_UNAVAILABLE


def cmd_receiver(args: argparse.Namespace) -> int:
    logs.setup(args.verbose)
    try:
        from receiver import serve
    except ImportError as exc:
        missing = receiver_missing(exc)
        if missing is None:
            raise
        return missing

    try:
        mqtt = _mqtt_ingest(args)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"receiver: --mqtt-credentials-file: {exc}", file=sys.stderr)
        return os.EX_NOINPUT
    return serve(
        args.host,
        args.port,
        args.db,
        args.token_file,
        fail_rate=args.fail_rate,
        latency=args.latency,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        workers=args.workers,
        mqtt=mqtt,
    )


def _mqtt_ingest(args: argparse.Namespace) -> dict[str, object] | None:
    """The receiver's --mqtt options, for receiver._mqtt.MqttIngest."""
    if not args.mqtt:
        return None
    options: dict[str, object] = {"url": args.mqtt, "share": args.share or None}
    if args.topic:
        options["topics"] = args.topic
    # stable across restarts (the broker keeps what was unacknowledged for this id), one per
    # receiver: its host and HTTP port
    default = f"edge-agent-receiver-{socket.gethostname()}-{args.port}"
    options["client_id"] = args.mqtt_client_id or default
    if args.mqtt_credentials_file:  # a file (a systemd credential), never the command line
        lines = Path(args.mqtt_credentials_file).read_text(encoding="utf-8").splitlines()
        if len(lines) < 2 or not lines[0].strip():
            raise ValueError("needs the username on its first line and the password on the second")
        options["credentials"] = (lines[0].strip(), lines[1].rstrip("\r\n"))
    return options
