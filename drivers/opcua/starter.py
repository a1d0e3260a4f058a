"""`edge-agent init --opcua`: the points of a starter config, from the server itself.

Servers name their variables their own way, so a profile's node ids match no
real server. The server is browsed (as `probe --browse` does) and every
numeric variable found becomes a point with its real node id. One whose name
is a point of the generic profile (its browse name is the profile's, e.g.
`ImportActiveEnergy`, or the point's, e.g. `import_kwh`) takes that point's
name, unit and kind; any other gets a name from its browse name and a CHANGE
mark, for the technician to name it, give its unit, and say whether it is a
counter. Nothing is guessed into the energy counter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from config.base import PointBase
from drivers.opcua.browse import Variable, browse
from drivers.opcua.settings import OpcUa, OpcUaPoint
from drivers.spec import StarterPoint

__all__ = ["discover", "propose"]

DEPTH = 6  # levels below Objects: a PLC may keep a meter in a folder of a folder
MOST = 50  # points written; the rest are counted in a note (probe --browse lists them)
NUMERIC = {"Double", "Float", "Int16", "Int32", "Int64", "UInt16", "UInt32", "UInt64",
           "Byte", "SByte"}  # fmt: skip


async def discover(
    target: str, options: Mapping[str, Any], known: Sequence[PointBase]
) -> list[StarterPoint]:
    """The points found on the server at `target`; domain.errors when it cannot be browsed."""
    variables = await browse(OpcUa(endpoint=target), depth=DEPTH)
    return propose(variables, [p for p in known if isinstance(p, OpcUaPoint)])


def propose(variables: Sequence[Variable], known: Sequence[OpcUaPoint]) -> list[StarterPoint]:
    """A point per numeric variable: a known one by its name, the others marked CHANGE."""
    by_key: dict[str, OpcUaPoint] = {}
    for point in known:
        by_key.setdefault(_key(point.node.rpartition(".")[2].rpartition("=")[2]), point)
        by_key.setdefault(_key(point.name), point)
    numeric = [v for v in variables if v.data_type in NUMERIC]
    taken: set[str] = set()
    points = []
    for variable in numeric[:MOST]:
        seen = f"{variable.path}, {variable.data_type}, now {variable.value}"
        match = by_key.get(_key(variable.path.rpartition("/")[2]))
        if match is not None and match.name not in taken:
            taken.add(match.name)
            fields = {"name": match.name, "node": variable.node, "unit": match.unit}
            if match.kind == "counter":
                fields["kind"] = "counter"
            points.append(StarterPoint({k: v for k, v in fields.items() if v}, seen))
            continue
        name = _unique(_name(variable.path.rpartition("/")[2]), taken)
        taken.add(name)
        note = f"name, unit (and kind: counter for a total) to check; {seen}"
        points.append(StarterPoint({"name": name, "node": variable.node}, note, change=True))
    if len(numeric) > MOST:
        more = len(numeric) - MOST
        note = f"{more} more numeric variables not written: edge-agent probe --browse lists them"
        points.append(StarterPoint({}, note))
    return points


def _key(name: str) -> str:
    """A name as compared: ImportActiveEnergy, import-active-energy -> importactiveenergy."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _name(browse_name: str) -> str:
    """A point name from a browse name: `P total (kW)` -> p_total_kw."""
    words = re.sub(r"([a-z0-9])([A-Z][a-z])", r"\1_\2", browse_name)  # camelCase, not kW
    name = re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_") or "value"
    return (name if name[0].isalpha() else f"v_{name}")[:60]


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"
