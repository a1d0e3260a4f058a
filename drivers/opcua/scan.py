"""`edge-agent scan --opcua`: the server's variables that carry an energy-like
engineering unit, proposed as points.

The server is browsed as `probe --browse` does (drivers/opcua/browse.py); for each
numeric variable its EngineeringUnits property is read. That property is an
EUInformation (OPC UA Part 8, Data Access, v1.04 §5.6.3): a DisplayName such as "kWh"
and a UnitId that encodes the UN/CEFACT Recommendation 20 common code, one byte per
character ("KWH" -> 0x4B5748). Either names the unit here. Energy and volume units
(kWh, Wh, MWh, m3, GJ, MJ) are proposed as counters; power, voltage, current,
frequency and flow as gauges. Variables without such a unit are left to
`probe --browse`, which lists everything.
"""

from __future__ import annotations

from asyncua import ua

from drivers.opcua._link import call, close_client, open_client, parse_node
from drivers.opcua.browse import CHUNK, Variable, browse
from drivers.opcua.settings import OpcUa
from drivers.opcua.starter import DEPTH, NUMERIC, _name, _unique
from drivers.spec import StarterPoint

__all__ = ["UNITS", "propose", "unece"]

# the unit as the agent writes it -> (display names servers use, UN/CEFACT Rec 20 code)
UNITS: dict[str, tuple[tuple[str, ...], str]] = {
    "kWh": (("kWh", "kW·h", "kW.h", "kilowatt hour"), "KWH"),
    "Wh": (("Wh", "W·h", "watt hour"), "WHR"),
    "MWh": (("MWh", "megawatt hour"), "MWH"),
    "kvarh": (("kvarh", "kVArh"), "K3"),
    "GJ": (("GJ", "gigajoule"), "GV"),
    "MJ": (("MJ", "megajoule"), "3B"),
    "m3": (("m3", "m³", "m^3", "cubic metre", "cubic meter"), "MTQ"),
    "kW": (("kW", "kilowatt"), "KWT"),
    "W": (("W", "watt"), "WTT"),
    "MW": (("MW", "megawatt"), "MAW"),
    "kvar": (("kvar", "kVAr"), "KVR"),
    "kVA": (("kVA",), "KVA"),
    "V": (("V", "volt"), "VLT"),
    "kV": (("kV", "kilovolt"), "KVT"),
    "A": (("A", "ampere"), "AMP"),
    "Hz": (("Hz", "hertz"), "HTZ"),
    "m3/h": (("m3/h", "m³/h", "cubic metre per hour"), "MQH"),
}
COUNTERS = {"kWh", "Wh", "MWh", "kvarh", "GJ", "MJ", "m3"}
_EU = ua.QualifiedName("EngineeringUnits", 0)
_HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)  # type: ignore[arg-type]


def unece(code: str) -> int:
    """The UnitId of a Rec 20 common code: its characters' bytes, first the highest."""
    value = 0
    for char in code:
        value = (value << 8) | ord(char)
    return value


_BY_NAME = {name.lower(): unit for unit, (names, _) in UNITS.items() for name in names}
_BY_ID = {unece(code): unit for unit, (_, code) in UNITS.items()}


def unit_of(eu: object) -> str | None:
    """The agent's unit for an EUInformation, by its UnitId or its display name."""
    if not isinstance(eu, ua.EUInformation):
        return None
    by_id = _BY_ID.get(eu.UnitId) if eu.UnitId not in (None, -1) else None
    text = (eu.DisplayName.Text or "") if eu.DisplayName is not None else ""
    return by_id or _BY_NAME.get(text.strip().lower())


async def units(link: OpcUa, variables: list[Variable]) -> dict[str, str]:
    """node id -> unit, for the variables whose EngineeringUnits is energy-like."""
    where = f"scan {link.endpoint}"
    client = await open_client(link, where)
    found: dict[str, str] = {}
    try:
        for at in range(0, len(variables), CHUNK):
            chunk = variables[at : at + CHUNK]
            params = ua.BrowseParameters()
            params.NodesToBrowse = [
                ua.BrowseDescription(
                    NodeId=parse_node(v.node),
                    ReferenceTypeId=_HAS_PROPERTY,
                    IncludeSubtypes=True,
                    NodeClassMask=ua.NodeClass.Variable,
                    ResultMask=ua.BrowseResultMask.BrowseName,
                )
                for v in chunk
            ]
            results = await call(where, client.uaclient.browse(params), link.timeout)
            targets = [
                (v.node, ref.NodeId)
                for v, result in zip(chunk, results, strict=True)
                for ref in result.References or []
                if ref.BrowseName == _EU
            ]
            if not targets:
                continue
            nodes = [client.get_node(ua.NodeId(t.Identifier, t.NamespaceIndex)) for _, t in targets]
            values = await call(where, client.read_attributes(nodes), link.timeout)
            for (node, _), value in zip(targets, values, strict=True):
                unit = unit_of(value.Value.Value if value.Value is not None else None)
                if unit is not None:
                    found[node] = unit
    finally:
        await close_client(client, link.timeout)
    return found


async def propose(url: str, timeout: float = 5.0) -> list[StarterPoint]:
    """A point per numeric variable with an energy-like unit; raises domain.errors when
    the server cannot be browsed."""
    link = OpcUa.model_validate({"endpoint": url, "timeout": f"{timeout}s"})
    variables = [v for v in await browse(link, depth=DEPTH) if v.data_type in NUMERIC]
    found = await units(link, variables)
    taken: set[str] = set()
    points = []
    for variable in variables:
        unit = found.get(variable.node)
        if unit is None:
            continue
        name = _unique(_name(variable.path.rpartition("/")[2]), taken)
        taken.add(name)
        fields: dict[str, object] = {"name": name, "node": variable.node, "unit": unit}
        if unit in COUNTERS:
            fields["kind"] = "counter"
        note = f"{variable.path}, {variable.data_type}, {unit}, now {variable.value}"
        points.append(StarterPoint(fields, note))
    left = len(variables) - len(points)
    if left:
        points.append(
            StarterPoint(
                {},
                f"{left} numeric variables without an energy-like "
                "unit not written: probe --browse lists them",
            )
        )
    return points
