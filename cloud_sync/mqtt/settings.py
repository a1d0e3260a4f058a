"""The settings of an MQTT destination, and its spec.

A broker (mosquitto, an EMQX cluster, ThingsBoard) takes the batches at QoS 1
on a persistent session. The TLS files are the HTTP destination's settings
(their descriptions are taken from there, so both read alike); the username
and password come from a credential file, never from the YAML.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from cloud_sync.http.settings import HttpSettings, loopback
from cloud_sync.spec import DestinationSpec
from config.base import DestinationBase, NodePath, Reporter, Strict
from config.units import Duration
from domain.errors import Problem

_TLS = HttpSettings.model_fields
TOPIC_FIELDS = {"gateway", "device", "kind"}
"""What a topic template may name: the gateway id, a device, the kind of records."""
THINGSBOARD_TOPIC = "v1/gateway/telemetry"
"""ThingsBoard's gateway telemetry topic (thingsboard.io/docs/reference/gateway-api/telemetry/)."""
# seconds: the Session Expiry Interval is a four-byte integer (MQTT 5.0, 3.1.2.11.2)
MAX_EXPIRY = 4_294_967_295


class MqttSettings(Strict):
    """Batches published to an MQTT broker, QoS 1 on a persistent session."""

    url: str = Field(
        pattern=r"^mqtts?://[^\s/:]+(:[0-9]{1,5})?/?$",
        description="The broker: mqtt://host:1883, or mqtts://host:8883 for TLS.",
    )
    protocol: Literal[5, "3.1.1"] = Field(
        default=5,
        description="The MQTT version: 5, or 3.1.1 for a broker that speaks only that "
        "(no user properties then: the key is in the payload alone).",
    )
    format: Literal["batch", "thingsboard"] = Field(
        default="batch",
        description="batch: the HTTP batch document (JSON, the same records and key); "
        "thingsboard: ThingsBoard's gateway telemetry ({device: [{ts, values}]}).",
    )
    topic: str | None = Field(
        default=None,
        min_length=1,
        description="Where each batch goes, a template of {gateway} and {kind} (intervals "
        "or events); {device} too with format thingsboard. Default: "
        "edge-agent/{gateway}/{kind} (batch), v1/gateway/telemetry (thingsboard).",
    )
    status_topic: str = Field(
        default="edge-agent/{gateway}/status",
        min_length=1,
        description="Retained birth and last-will messages (online/offline with the "
        "agent's version, JSON); a template of {gateway}.",
    )
    gzip: bool = Field(
        default=False,
        description="gzip the batch document (format batch); the content type says so.",
    )
    client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The MQTT client id; default edge-agent-<gateway id>-<destination name>, "
        "stable so the broker keeps the session across restarts.",
    )
    credentials_file: str | None = Field(
        default=None,
        description="File holding the username on its first line and the password on the "
        "second (a systemd credential); ${VAR} is expanded. For ThingsBoard: the gateway's "
        "access token alone.",
    )
    session_expiry: Duration = Field(
        default=86_400.0,
        ge=0,
        le=MAX_EXPIRY,
        description="How long the broker keeps the session (and what it queued) while the "
        "agent is away (MQTT 5).",
    )
    require_subscriber: bool = Field(
        default=True,
        description='A batch the broker answers with "No matching subscribers" (MQTT 5 '
        "PUBACK 0x10) is not delivered: it stays buffered and is published again (a "
        "restarted mosquitto comes back without shared subscriptions until the receivers "
        "subscribe again, and drops what arrives meanwhile). Set it false only for a broker "
        "whose rule engine takes the messages without a subscriber.",
    )
    keepalive: Duration = Field(default=60.0, ge=5, le=65_535, description="MQTT keep-alive.")
    every: Duration = Field(default=60.0, gt=0, description="How often to publish the backlog.")
    max_batch: int = Field(default=5000, ge=1, le=100_000, description="Records per message.")
    in_flight: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="Batches published and waiting for their PUBACK at once (never more "
        "messages than the broker's Receive Maximum): the next batches are read from the "
        "buffer while the broker answers. 1: one batch at a time.",
    )
    timeout: Duration = Field(
        default=30.0, gt=0, description="How long to wait for the broker: CONNACK, PUBACK."
    )
    ca_file: str | None = Field(default=None, description=_TLS["ca_file"].description)
    client_cert: str | None = Field(default=None, description=_TLS["client_cert"].description)
    client_key: str | None = Field(default=None, description=_TLS["client_key"].description)

    @field_validator("protocol", mode="before")
    @classmethod
    def _five_as_number(cls, value: object) -> object:
        """`protocol: 5` is a number in YAML, `protocol: "5"` the same; `3.1.1` is text."""
        return 5 if value == "5" else value

    @property
    def topic_template(self) -> str:
        if self.topic is not None:
            return self.topic
        return THINGSBOARD_TOPIC if self.format == "thingsboard" else "edge-agent/{gateway}/{kind}"

    @property
    def tls(self) -> bool:
        return self.url.startswith("mqtts://") or bool(self.ca_file or self.client_cert)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.url.startswith("mqtts://") else 1883)


class MqttDestination(DestinationBase):
    """Batches to an MQTT broker."""

    mqtt: MqttSettings = Field(description="The broker, the topics and the payload format.")


def placeholders(template: str) -> list[str]:
    """The {names} of a topic template; ValueError if its braces do not pair."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def _check(settings: MqttSettings, at: NodePath, doc: Reporter) -> Iterator[Problem]:
    """Topics that name what the format can fill, wildcards nowhere, and no password in
    clear text beyond this machine."""
    allowed = TOPIC_FIELDS if settings.format == "thingsboard" else {"gateway", "kind"}
    for field, template, may in (
        ("topic", settings.topic, allowed),
        ("status_topic", settings.status_topic, {"gateway"}),
    ):
        if template is None:
            continue
        try:
            names = placeholders(template)
        except ValueError as exc:
            yield doc.problem((*at, field), f"{template!r}: {exc}; write {{gateway}}")
            continue
        for name in names:
            if name not in may:
                why = (
                    " (a batch holds many devices; {device} needs format: thingsboard)"
                    if name == "device"
                    else ""
                )
                known = ", ".join(f"{{{n}}}" for n in sorted(may))
                yield doc.problem(
                    (*at, field), f"{{{name}}} cannot be filled here{why}; use {known}"
                )
        if re.search(r"[#+]", template) or "\0" in template:
            yield doc.problem((*at, field), "a topic to publish to has no wildcards (+, #)")
    if "require_subscriber" in settings.model_fields_set and settings.protocol == "3.1.1":
        message = (
            "MQTT 3.1.1 has no PUBACK reason codes: a batch nobody subscribed to cannot be told"
        )
        yield doc.problem((*at, "require_subscriber"), message, severity="warning")
    if settings.format == "thingsboard" and settings.gzip:
        yield doc.problem((*at, "gzip"), "ThingsBoard reads JSON text: gzip is for format batch")
    if settings.credentials_file and not settings.tls and not loopback(settings.host):
        message = (
            f"mqtt:// to {settings.host}: the password would travel in clear text; "
            "use mqtts:// (and ca_file for a private CA)"
        )
        yield doc.problem((*at, "url"), message, severity="warning")


SPEC = DestinationSpec(
    key="mqtt",
    settings=MqttSettings,
    destination=MqttDestination,
    make="cloud_sync.mqtt.publisher:make",
    summary="batches published to an MQTT broker (QoS 1, persistent session, idempotent "
    "keys; ThingsBoard's gateway API as an option)",
    path_fields=("credentials_file", "ca_file", "client_cert", "client_key"),
    check=_check,
)
