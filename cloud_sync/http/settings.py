"""The settings of an HTTP batch destination, and its spec.

The `sync:` section of agent.yaml is one of these (the destination named
"sync"); a `destinations:` entry with `http:` is another, for a second
platform.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from urllib.parse import urlsplit

from pydantic import Field

from cloud_sync.spec import DestinationSpec
from config.base import DestinationBase, NodePath, Reporter, Strict
from config.units import Duration
from domain.errors import Problem


class HttpSettings(Strict):
    """Batches over HTTPS to a platform's endpoint: the central one under sync:, others
    under a destination's http:."""

    url: str = Field(
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="The platform's batch endpoint, e.g. https://host/api/v1/batches.",
    )
    token_file: str | None = Field(
        default=None,
        description="File holding the bearer token (systemd credential); ${VAR} is expanded.",
    )
    every: Duration = Field(default=60.0, gt=0, description="How often to send a batch.")
    max_batch: int = Field(default=5000, ge=1, le=100_000, description="Records per batch.")
    timeout: Duration = Field(default=30.0, gt=0, description="HTTP timeout of one request.")
    ca_file: str | None = Field(
        default=None,
        description="PEM file of the CA that signed the platform's certificate (a private "
        "CA); default: the system's trusted CAs. Verification is always on.",
    )
    client_cert: str | None = Field(
        default=None,
        description="PEM client certificate for mutual TLS (with client_key).",
    )
    client_key: str | None = Field(
        default=None,
        description="PEM private key of client_cert; a systemd credential path works here.",
    )


class HttpDestination(DestinationBase):
    """Batches to another platform's HTTP endpoint, as to the central one."""

    http: HttpSettings = Field(description="The platform's endpoint, as for sync:.")


def _check(settings: HttpSettings, at: NodePath, doc: Reporter) -> Iterator[Problem]:
    """The token must not travel in clear text beyond this machine."""
    url = settings.url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        host = url
    if url.startswith("http://") and not loopback(host):
        message = f"plain http to {host}: the token would travel in clear text; use https://"
        yield doc.problem((*at, "url"), message, severity="warning")


def loopback(host: str) -> bool:
    """Whether `host` is this machine: the one place a secret may go without TLS (the
    mqtt destination's check uses it too)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SPEC = DestinationSpec(
    key="http",
    settings=HttpSettings,
    destination=HttpDestination,
    make="cloud_sync.http.uploader:make",
    summary="gzip JSON batches over HTTPS, idempotent (the central platform's contract)",
    path_fields=("token_file", "ca_file", "client_cert", "client_key"),
    check=_check,
)
