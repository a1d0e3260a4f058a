"""OPC UA settings: what a technician writes under `opcua:`, an OPC UA point, and a
rule's `opcua_write`. Nothing here imports asyncua: declaring the protocol costs
an agent without OPC UA devices nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import Field

from config.base import OWN_POINTS, DeviceBase, NodePath, PointBase, Reporter, Strict
from config.units import Duration
from domain.errors import Problem
from drivers.spec import InitSpec, ProtocolSpec, WriteSpec

__all__ = ["FILES", "OPCUA", "SPECS", "OpcUa", "OpcUaDevice", "OpcUaPoint", "OpcUaWrite"]

NODE_ID = r"^(ns=\d+;)?[isgb]=.+$"
FILES = ("certificate", "private_key", "server_certificate", "password_file", "certificate_dir")
"""The settings that name files: ${VAR} is expanded in them."""


class OpcUa(Strict):
    """An OPC UA server; file paths expand ${VAR}."""

    endpoint: str = Field(pattern=r"^opc\.tcp://\S+$", description="opc.tcp://host:port/path")
    security: Literal["None", "Basic256Sha256/Sign", "Basic256Sha256/SignAndEncrypt"] = Field(
        default="None", description="Security policy and message mode."
    )
    mode: Literal["read", "subscribe"] = Field(
        default="read",
        description="read: poll every `poll`; subscribe: the server reports changes.",
    )
    username: str | None = Field(default=None, description="User name, if the server wants one.")
    password_file: str | None = Field(default=None, description="File holding the password.")
    certificate: str | None = Field(default=None, description="Client certificate file.")
    private_key: str | None = Field(
        default=None, description="Private key file of the certificate."
    )
    server_certificate: str | None = Field(
        default=None, description="The server's certificate, to trust it explicitly."
    )
    timeout: Duration = Field(default=5.0, gt=0, description="Timeout of one request.")
    publishing_interval: Duration | None = Field(
        default=None,
        gt=0,
        description="subscribe: how often the server sends what changed (default: the poll).",
    )
    sampling_interval: Duration | None = Field(
        default=None,
        gt=0,
        description="subscribe: how often the server samples counters, so every change between "
        "polls is kept (default: 1s, or the publishing interval if shorter); gauges are "
        "sampled once per publishing interval.",
    )
    certificate_dir: str = Field(
        default="${STATE_DIRECTORY:-/var/lib/edge-agent}/opcua",
        description="Where the agent keeps the certificate it makes for itself when security "
        "is not None and no certificate is given; ${VAR} is expanded.",
    )


class OpcUaPoint(PointBase):
    """One OPC UA variable."""

    node: str = Field(pattern=NODE_ID, description='Node id, e.g. "ns=2;s=Tag".')


class OpcUaDevice(DeviceBase):
    """Values read from an OPC UA server."""

    opcua: OpcUa
    points: list[OpcUaPoint] = Field(default=[], description=OWN_POINTS)


class OpcUaWrite(Strict):
    """Write one OPC UA variable while the alarm is raised (a PLC flag, a stack light)."""

    device: str = Field(description="An opcua device (its endpoint and login are used).")
    node: str = Field(pattern=NODE_ID, description='Node id, e.g. "ns=2;s=Line1.Alarm".')
    value: bool | int | float = Field(
        description="true/false for a Boolean node, a number for a numeric one; "
        "written in the node's own data type."
    )

    def output(self) -> str:
        return f"node {self.node}"


def _check(device: OpcUaDevice, at: NodePath, doc: Reporter) -> Iterator[Problem]:
    """A certificate and its key go together."""
    opcua = device.opcua
    if (opcua.certificate is None) != (opcua.private_key is None):
        given, missing = (
            ("certificate", "private_key") if opcua.private_key is None
            else ("private_key", "certificate")
        )  # fmt: skip
        message = f"{given} needs its {missing} too (or neither: the agent makes its own)"
        yield doc.problem((*at, "opcua", given), message)


def _fields(target: str, options: Mapping[str, Any]) -> dict[str, object]:
    return {"endpoint": target}


OPCUA = ProtocolSpec(
    key="opcua",
    settings=OpcUa,
    device=OpcUaDevice,
    point=OpcUaPoint,
    family="opcua",
    driver="drivers.opcua.driver:OpcUaDriver",
    summary="OPC UA: a server's variables, read every poll or subscribed to.",
    example={"endpoint": "opc.tcp://10.0.0.5:4840"},
    init=InitSpec(
        "--opcua",
        "URL",
        "an OPC UA server, opc.tcp://host:4840 (browsed for its node ids)",
        _fields,
        "opcua-energy-meter",
        discover="drivers.opcua.starter:discover",
    ),
    path_fields=FILES,
    check=_check,
    write=WriteSpec("opcua_write", OpcUaWrite, "An OPC UA variable."),
)
SPECS = (OPCUA,)
