"""What an OPC UA device asks of its server each poll, as `probe --plan` lists it.

One Read service call carries every node (`mode: read`), or a subscription
monitors them (`mode: subscribe`); either way the plan is the node list, each
node with the points it serves (two points may read one node).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from drivers.opcua.settings import OpcUaPoint

__all__ = ["NodeRequest", "plan"]


@dataclass(frozen=True, slots=True)
class NodeRequest:
    """One node of the plan and the points it serves: `read ns=2;s=Boiler.GasVolume`."""

    verb: str  # read, monitor
    node: str
    points: tuple[OpcUaPoint, ...]

    def __str__(self) -> str:
        return f"{self.verb} {self.node}"


def plan(points: Iterable[OpcUaPoint], mode: str) -> list[NodeRequest]:
    """Each distinct node in the order the points first name it."""
    nodes: dict[str, list[OpcUaPoint]] = {}
    for point in points:
        nodes.setdefault(point.node, []).append(point)
    verb = "read" if mode == "read" else "monitor"
    return [NodeRequest(verb, node, tuple(group)) for node, group in nodes.items()]
