"""write(): a rule's PLC flag, in the node's own data type, or an error that says why not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from asyncua import ua

from domain.errors import BadReply, DeviceRejected, Disconnected, PermanentError
from drivers.opcua.driver import OpcUaDriver
from drivers.opcua.settings import OpcUaWrite
from drivers.opcua.simulator import LoadCurve, MeterServer, node_id
from tests.fixtures.opcua import device
from tests.fixtures.peers import raw_server, silent

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(30)]
OUTPUTS = {
    "AlarmLamp": False,
    "Setpoint": 0.0,
    "Mode": ua.Variant(0, ua.VariantType.Int16),
    "Level": ua.Variant(0.0, ua.VariantType.Float),
}


def to(node: str) -> OpcUaWrite:
    """A rule's opcua_write of `node` (the value written is the driver's argument)."""
    return OpcUaWrite(device="m1", node=node, value=0)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def plc() -> AsyncIterator[MeterServer]:
    sim = MeterServer(LoadCurve(base_kw=36.0, swing_kw=0.0), outputs=OUTPUTS)
    await sim.start()
    yield sim
    await sim.close()


@pytest_asyncio.fixture(loop_scope="module")
async def driver(plc: MeterServer) -> AsyncIterator[OpcUaDriver]:
    d = OpcUaDriver(device(plc.endpoint))
    yield d
    await d.close()


async def test_a_boolean_node_gets_a_boolean(plc: MeterServer, driver: OpcUaDriver) -> None:
    """true then false, each written as a Boolean (1 and 0 too: a Boolean node's PLC flag)."""
    await driver.write(to(node_id("AlarmLamp")), True)
    assert await plc.read("AlarmLamp") == ua.Variant(True, ua.VariantType.Boolean)
    await driver.write(to(node_id("AlarmLamp")), 0)
    assert await plc.read("AlarmLamp") == ua.Variant(False, ua.VariantType.Boolean)


async def test_numbers_take_the_nodes_type(plc: MeterServer, driver: OpcUaDriver) -> None:
    """An integer from the config goes to a Double node as a Double, a Float as a Float,
    and an Int16 node gets an Int16: the server would refuse another type."""
    await driver.write(to(node_id("Setpoint")), 42)
    assert await plc.read("Setpoint") == ua.Variant(42.0, ua.VariantType.Double)
    await driver.write(to(node_id("Level")), 2.5)
    assert await plc.read("Level") == ua.Variant(2.5, ua.VariantType.Float)
    await driver.write(to(node_id("Mode")), 7.0)
    assert await plc.read("Mode") == ua.Variant(7, ua.VariantType.Int16)


async def test_a_value_the_node_cannot_hold_is_refused_before_sending(
    driver: OpcUaDriver,
) -> None:
    with pytest.raises(PermanentError, match=r"Int16 node takes -32768\.\.32767 \(got 70000\)"):
        await driver.write(to(node_id("Mode")), 70000)
    with pytest.raises(PermanentError, match=r"Boolean node takes true or false \(got 2\)"):
        await driver.write(to(node_id("AlarmLamp")), 2)


async def test_a_missing_read_only_or_text_node_is_a_clear_error(driver: OpcUaDriver) -> None:
    """Each message names the device, endpoint and node, and the server's reason."""
    with pytest.raises(DeviceRejected) as missing:
        await driver.write(to("ns=2;s=Line1.NoSuchLamp"), True)
    assert str(missing.value).startswith("m1 opc.tcp://127.0.0.1:")
    assert str(missing.value).endswith(
        "write ns=2;s=Line1.NoSuchLamp: BadNodeIdUnknown (node does not exist)"
    )
    # a read-only variable: asyncua's server says access denied, others BadNotWritable
    with pytest.raises(DeviceRejected, match=r"BadUserAccessDenied|BadNotWritable"):
        await driver.write(to(node_id("BreakerClosed")), False)
    with pytest.raises(BadReply, match="the node holds a String; a rule writes Boolean or num"):
        await driver.write(to(node_id("SerialNumber")), 1)
    with pytest.raises(PermanentError, match="not a valid node id"):
        await driver.write(to("ns=2;i=abc"), 1)


async def test_no_session_is_transient() -> None:
    """A server that never answers: Disconnected (the action retries), not a hang."""
    async with raw_server(silent) as port:
        d = OpcUaDriver(device(f"opc.tcp://127.0.0.1:{port}/", timeout="200ms"))
        try:
            with pytest.raises(Disconnected, match=r"write ns=2;s=EnergyMeter\.AlarmLamp"):
                await d.write(to(node_id("AlarmLamp")), True)
        finally:
            await d.close()
