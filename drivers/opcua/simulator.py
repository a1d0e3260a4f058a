"""A simulated OPC UA energy meter: an asyncua server for the demo, the tests and probes.

Its variables follow the node-id convention of the `opcua-energy-meter`
profile (`ns=2;s=EnergyMeter.ImportActiveEnergy` ...). Power follows a
`LoadCurve` and the import counter is its exact integral, written every
`tick`, so a subscriber sees the counter step as a real meter's would.
Faults a gateway meets in the field are one call away: `restart()` (sessions
and subscriptions gone, same port) and `forget_subscriptions()` (the session
survives, its subscriptions do not: the silent-subscription failure).
`outputs` adds writable variables (a stack light, a PLC flag) for rule actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Node, Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

from drivers.modbus.simulator import LoadCurve
from drivers.opcua import security
from drivers.opcua._address_space import initialized

__all__ = ["NAMESPACE", "VARIABLES", "LoadCurve", "MeterServer", "node_id"]

logging.getLogger("asyncua.server").setLevel(logging.CRITICAL)

APPLICATION_URI = "urn:edge-agent:simulator"  # namespace 1, the server's own
NAMESPACE = "urn:edge-agent:simulator:meter"  # registered first, so its index is 2
FOLDER = "EnergyMeter"
# profile point -> browse name under the EnergyMeter object (Double unless said otherwise)
VARIABLES = {
    "import_kwh": "ImportActiveEnergy",
    "export_kwh": "ExportActiveEnergy",
    "power_kw": "ActivePower",
    "voltage_l1_v": "VoltageL1",
    "voltage_l2_v": "VoltageL2",
    "voltage_l3_v": "VoltageL3",
    "current_l1_a": "CurrentL1",
    "current_l2_a": "CurrentL2",
    "current_l3_a": "CurrentL3",
    "power_factor": "PowerFactor",
    "frequency_hz": "Frequency",
}
EXTRA = {"BreakerClosed": True, "SerialNumber": "SIM-0001"}  # a Boolean and a String
_POLICIES = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256/Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256/SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}


def node_id(name: str) -> str:
    """The node id of a profile point or an extra variable: ns=2;s=EnergyMeter.<Name>."""
    return f"ns=2;s={FOLDER}.{VARIABLES.get(name, name)}"


class _Users(UserManager):
    """Accepts exactly the configured user names and passwords."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:  # fmt: skip
        if username is not None and self._users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


class MeterServer:
    """One simulated meter on opc.tcp://host:port/; `port=0` picks a free one at start."""

    def __init__(
        self,
        curve: LoadCurve,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        security: Sequence[str] = ("None",),
        certificate_dir: Path | None = None,
        users: dict[str, str] | None = None,
        tick: float = 0.1,
        clock: Callable[[], float] = time.time,
        outputs: dict[str, Any] | None = None,
    ) -> None:
        self.curve = curve
        self.outputs = dict(outputs or {})  # browse name -> initial value (or ua.Variant)
        self.host, self.port = host, port
        self.security = tuple(security)
        self.users = users
        self.tick = tick
        self.paused = False  # a frozen meter: the variables keep their last values
        self.clock = clock
        self._certificate_dir = certificate_dir
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.certificate: Path | None = None
        self._server: Server | None = None
        self._nodes: dict[str, Node] = {}
        self._ticker: asyncio.Task[None] | None = None
        self.reads: list[int] = []  # nodes asked in each Read service call from a client

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/"

    async def start(self) -> None:
        users = _Users(self.users) if self.users else None
        server = await initialized(lambda: Server(user_manager=users))
        await server.set_application_uri(APPLICATION_URI)
        server.set_endpoint(self.endpoint)
        server.set_server_name("edge-agent simulated energy meter")
        server.disable_clock()  # its 1 s loop would make every stop wait a second
        server.set_security_policy([_POLICIES[s] for s in self.security])
        if self.users:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        if any(s != "None" for s in self.security):
            cert, key = await asyncio.to_thread(self._server_pair)
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            self.certificate = cert
        index = await server.register_namespace(NAMESPACE)
        assert index == 2, f"the meter's namespace is {index}, not 2"
        meter = await server.nodes.objects.add_object(f"ns={index};s={FOLDER}", FOLDER)
        values = self.values(self.clock())
        for name, browse in VARIABLES.items():
            initial = ua.Variant(values[name], ua.VariantType.Double)
            node = f"ns={index};s={FOLDER}.{browse}"
            self._nodes[name] = await meter.add_variable(node, browse, initial)
        for browse, value in EXTRA.items():
            await meter.add_variable(f"ns={index};s={FOLDER}.{browse}", browse, value)
        for browse, value in self.outputs.items():
            node = f"ns={index};s={FOLDER}.{browse}"
            await (await meter.add_variable(node, browse, value)).set_writable()
        server.subscribe_server_callback(CallbackType.PreRead, self._count_read)
        await server.start()
        if self.port == 0 and server.bserver is not None:
            self.port = server.bserver.port
        self._server = server
        self._ticker = asyncio.create_task(self._run(), name="opcua simulator")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down `down_for` seconds, start again on the same port."""
        await self.stop()
        await asyncio.sleep(down_for)
        await self.start()

    async def close(self) -> None:
        await self.stop()
        if self._scratch is not None:
            self._scratch.cleanup()

    async def forget_subscriptions(self) -> int:
        """Delete every subscription server-side, sessions kept; returns how many."""
        assert self._server is not None
        service = self._server.iserver.subscription_service
        ids = list(service.subscriptions)
        await service.delete_subscriptions(ids)
        return len(ids)

    async def write(
        self,
        name: str,
        value: Any,
        variant: ua.VariantType | None = None,
        *,
        source_time: float | None = None,
    ) -> None:
        """Set one variable now (the curve overwrites simulated ones at the next tick).

        `source_time` (seconds since the epoch) is the SourceTimestamp the value
        carries, as from a device whose clock is off; by default, the time now.
        """
        assert self._server is not None
        taken = time.time() if source_time is None else source_time
        # asyncua annotates its own subclasses (ua.DateTime) and no default of None, but
        # takes a plain datetime and guesses the variant type from None itself
        data = ua.DataValue(
            ua.Variant(value, variant),  # type: ignore[arg-type]
            SourceTimestamp=datetime.fromtimestamp(taken, UTC),  # type: ignore[arg-type]
        )
        await self._server.get_node(node_id(name)).write_value(data)

    async def read(self, name: str) -> ua.Variant:
        """A variable as the server holds it (an output a client wrote, with its type)."""
        assert self._server is not None
        data = await self._server.get_node(node_id(name)).read_data_value()
        assert data.Value is not None
        return data.Value

    def values(self, t: float) -> dict[str, float]:
        """Every simulated variable at `t`, in the profile's units."""
        power = self.curve.power_kw(t)
        current = power * 1000.0 / (3 * 230.0 * 0.95)
        return {
            "import_kwh": self.curve.energy_kwh(t),
            "export_kwh": 0.0,
            "power_kw": power,
            **{f"voltage_l{i}_v": 230.0 for i in (1, 2, 3)},
            **{f"current_l{i}_a": current for i in (1, 2, 3)},
            "power_factor": 0.95,
            "frequency_hz": 50.0,
        }

    def _count_read(self, event: ServerItemCallback, _: object) -> None:
        if event.is_external:
            self.reads.append(len(event.request_params.NodesToRead))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            if self.paused:
                continue
            values = self.values(self.clock())
            for name, node in self._nodes.items():
                with contextlib.suppress(ua.UaError):
                    await node.write_value(ua.Variant(values[name], ua.VariantType.Double))

    def _server_pair(self) -> tuple[Path, Path]:
        if self._certificate_dir is None:
            self._scratch = self._scratch or tempfile.TemporaryDirectory(prefix="opcua-sim-")
            self._certificate_dir = Path(self._scratch.name)
        return security.own_certificate(
            self._certificate_dir, uri=APPLICATION_URI, server=True, stem="simulator"
        )
