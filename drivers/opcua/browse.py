"""Browse a server for the node ids a device's points need (`edge-agent probe --browse`).

Lists the variables under a node (default: the Objects folder) down to a
few levels, each with the node id to copy into a point, its path of browse
names, its data type and its current value. Properties (EngineeringUnits,
EURange ...) are left out, and from the Objects folder so is namespace 0 (the
server's own diagnostics), which would bury the meter under hundreds of lines.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from asyncua import Client, ua

from domain.errors import DecodeError, PermanentError
from drivers.opcua._link import call, close_client, open_client, parse_node
from drivers.opcua.codec import explain
from drivers.opcua.settings import OpcUa, OpcUaDevice

__all__ = ["Variable", "browse", "table"]

CHUNK = 200  # nodes per Browse or Read request: within what servers commonly accept
# asyncua annotates identifiers as its own int subclass (ua.Int32) but takes a plain int
_OBJECTS = ua.NodeId(ua.ObjectIds.ObjectsFolder)  # type: ignore[arg-type]
_HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)  # type: ignore[arg-type]
_HIERARCHICAL = ua.NodeId(ua.ObjectIds.HierarchicalReferences)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Variable:
    """One variable found on the server, ready to print or to copy into a point."""

    node: str  # ns=2;s=EnergyMeter.ImportActiveEnergy
    path: str  # EnergyMeter/ImportActiveEnergy, browse names from the starting node
    data_type: str  # Double
    value: str  # 1234.5, or the status the server gave instead

    def __str__(self) -> str:
        return f"{self.node}  {self.path}  {self.data_type}  {self.value}"


def table(variables: list[Variable]) -> str:
    """The variables as aligned columns under a header, one per line."""
    rows = [("NODE", "PATH", "TYPE", "VALUE")]
    rows += [(v.node, v.path, v.data_type, v.value) for v in variables]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    )


async def browse(
    target: OpcUaDevice | OpcUa, node: str | None = None, *, depth: int = 4, limit: int = 1000
) -> list[Variable]:
    """The variables under `node` (default: Objects), `depth` levels deep, at most `limit`.

    Raises domain.errors (Disconnected, DeviceRejected, PermanentError ...) when
    the server cannot be reached or refuses the session: their message says why.
    """
    link = target.opcua if isinstance(target, OpcUaDevice) else target
    name = target.name if isinstance(target, OpcUaDevice) else "browse"
    where = f"{name} {link.endpoint}"
    try:
        start = parse_node(node) if node else _OBJECTS
    except DecodeError as exc:
        raise PermanentError(f"{where}: {node}: {exc}") from exc
    client = await open_client(link, where)
    try:
        found = await _walk(client, start, depth, limit, where, link.timeout)
        return await _describe(client, found, where, link.timeout)
    finally:
        await close_client(client, link.timeout)


async def _walk(
    client: Client, start: ua.NodeId, depth: int, limit: int, where: str, timeout: float
) -> list[tuple[ua.NodeId, str]]:
    """(node id, path) of the variables under `start`, level by level, one Browse per level."""
    found: list[tuple[ua.NodeId, str]] = []
    seen = {start}
    level = [(start, "")]
    for _ in range(depth):
        children: list[tuple[ua.NodeId, str]] = []
        for at in range(0, len(level), CHUNK):
            chunk = level[at : at + CHUNK]
            results = await _browse(client, [n for n, _ in chunk], where, timeout)
            for (parent, path), references in zip(chunk, results, strict=True):
                for ref in references:
                    child = ua.NodeId(ref.NodeId.Identifier, ref.NodeId.NamespaceIndex)
                    if child in seen or (parent == _OBJECTS and child.NamespaceIndex == 0):
                        continue
                    seen.add(child)
                    here = f"{path}/{ref.BrowseName.Name}" if path else ref.BrowseName.Name
                    children.append((child, here))
                    if ref.NodeClass == ua.NodeClass.Variable:
                        found.append((child, here))
                        if len(found) >= limit:
                            return found
        level = children
    return found


async def _browse(
    client: Client, nodes: list[ua.NodeId], where: str, timeout: float
) -> list[list[ua.ReferenceDescription]]:
    """The hierarchical children (objects and variables, no properties) of each node."""
    params = ua.BrowseParameters()
    params.NodesToBrowse = [
        ua.BrowseDescription(
            NodeId=n,
            ReferenceTypeId=_HIERARCHICAL,
            IncludeSubtypes=True,
            NodeClassMask=ua.NodeClass.Object | ua.NodeClass.Variable,
            ResultMask=ua.BrowseResultMask.All,
        )
        for n in nodes
    ]
    results = await call(where, client.uaclient.browse(params), timeout)
    out = []
    for result in results:
        references = list(result.References or [])
        point = result.ContinuationPoint
        while point:  # the server split a long answer
            more = ua.BrowseNextParameters(ReleaseContinuationPoints=False)
            more.ContinuationPoints = [point]
            (next_result,) = await call(where, client.uaclient.browse_next(more), timeout)
            references += next_result.References or []
            point = next_result.ContinuationPoint
        out.append([r for r in references if r.ReferenceTypeId != _HAS_PROPERTY])
    return out


async def _describe(
    client: Client, found: list[tuple[ua.NodeId, str]], where: str, timeout: float
) -> list[Variable]:
    """Data type and current value of each variable: two Reads per chunk, one for type names."""
    values: list[ua.DataValue] = []
    types: list[ua.DataValue] = []
    for at in range(0, len(found), CHUNK):
        nodes = [client.get_node(n) for n, _ in found[at : at + CHUNK]]
        values += await call(where, client.read_attributes(nodes), timeout)
        types += await call(where, client.read_attributes(nodes, ua.AttributeIds.DataType), timeout)
    type_ids = {t.Value.Value for t in types if t.Value is not None and t.Value.Value is not None}
    names = await _type_names(client, type_ids, where, timeout)
    return [
        Variable(node.to_string(), path, _type_name(kind, names), _shown(value))
        for (node, path), value, kind in zip(found, values, types, strict=True)
    ]


async def _type_names(
    client: Client, type_ids: set[ua.NodeId], where: str, timeout: float
) -> dict[ua.NodeId, str]:
    """Standard types by their names; the server's own types by their browse names."""
    names = {t: name for t in type_ids if (name := _standard_name(t)) is not None}
    custom = [t for t in type_ids if t not in names]
    if custom:
        nodes = [client.get_node(t) for t in custom]
        read = await call(where, client.read_attributes(nodes, ua.AttributeIds.BrowseName), timeout)
        for type_id, answer in zip(custom, read, strict=True):
            qualified = answer.Value.Value if answer.Value is not None else None
            names[type_id] = qualified.Name if qualified is not None else type_id.to_string()
    return names


def _standard_name(type_id: ua.NodeId) -> str | None:
    """The name of a standard type (namespace 0); None for the server's own types."""
    if type_id.NamespaceIndex != 0 or not isinstance(type_id.Identifier, int):
        return None
    return ua.ObjectIdNames.get(type_id.Identifier)


def _type_name(answer: ua.DataValue, names: dict[ua.NodeId, str]) -> str:
    """The name of the data type a Read of DataType answered, '?' without one."""
    type_id = answer.Value.Value if answer.Value is not None else None
    return "?" if type_id is None else names.get(type_id, "?")


def _shown(answer: ua.DataValue) -> str:
    """The value as a technician reads it; the status when the server gave no value."""
    if answer.StatusCode is not None and not answer.StatusCode.is_good():
        return explain(answer.StatusCode)
    value = answer.Value.Value if answer.Value is not None else None
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return f"[{len(value)} values]"
    if value is not None and not isinstance(value, bool | int | str | datetime.datetime):
        return f"<{type(value).__name__}>"  # a structure: its type says more than its fields
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
