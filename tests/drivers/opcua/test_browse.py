"""browse(): the variables of a server, with what a technician needs to write a point."""

from __future__ import annotations

import pytest

from domain.errors import Disconnected, PermanentError
from drivers.opcua.browse import Variable, browse, table
from drivers.opcua.settings import OpcUa
from drivers.opcua.simulator import VARIABLES, MeterServer, node_id
from tests.fixtures.opcua import device

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(30)]


async def test_lists_the_meter_variables_under_objects(meter: MeterServer) -> None:
    """From the Objects folder: every variable of the meter, none of the server's own."""
    found = {v.node: v for v in await browse(device(meter.endpoint))}
    expected = {node_id(name) for name in [*VARIABLES, "BreakerClosed", "SerialNumber"]}
    assert set(found) == expected
    assert found[node_id("power_kw")] == Variable(
        node="ns=2;s=EnergyMeter.ActivePower",
        path="EnergyMeter/ActivePower",
        data_type="Double",
        value="36",
    )
    assert found[node_id("BreakerClosed")].data_type == "Boolean"
    assert found[node_id("SerialNumber")].value == "SIM-0001"


async def test_browses_from_a_given_node_and_takes_a_transport(meter: MeterServer) -> None:
    """A start node narrows the listing; an OpcUa transport works as well as a device."""
    found = await browse(OpcUa(endpoint=meter.endpoint), "ns=2;s=EnergyMeter", depth=1)
    assert [v.path for v in found][:2] == ["ImportActiveEnergy", "ExportActiveEnergy"]
    assert len(found) == len(VARIABLES) + 2


async def test_the_table_is_print_ready(meter: MeterServer) -> None:
    """Aligned columns under a header, one variable per line."""
    lines = table(await browse(device(meter.endpoint), "ns=2;s=EnergyMeter")).splitlines()
    assert lines[0].split() == ["NODE", "PATH", "TYPE", "VALUE"]
    assert lines[1].startswith("ns=2;s=EnergyMeter.ImportActiveEnergy  ImportActiveEnergy ")
    column = lines[0].index("TYPE")
    assert {line[column:].split()[0] for line in lines} == {"TYPE", "Double", "Boolean", "String"}
    assert len(lines) == 1 + len(VARIABLES) + 2


async def test_a_bad_start_node_and_an_absent_server_raise_agent_errors() -> None:
    """browse() is for the CLI: it raises, with a message naming what is wrong."""
    with pytest.raises(PermanentError, match=r"i=abc: not a valid node id"):
        await browse(OpcUa(endpoint="opc.tcp://127.0.0.1:9/"), "i=abc")
    with pytest.raises(Disconnected, match=r"browse opc.tcp://127.0.0.1:9/: connection refused"):
        await browse(OpcUa(endpoint="opc.tcp://127.0.0.1:9/", timeout="500ms"))
