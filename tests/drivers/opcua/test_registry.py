"""The OPC UA driver is registered, and costs nothing to an agent without OPC UA devices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from drivers.opcua.driver import OpcUaDriver
from drivers.opcua.settings import OpcUaDevice
from drivers.registry import make_driver


def test_an_opcua_device_gets_the_opcua_driver() -> None:
    """make_driver picks OpcUaDriver for a device with an `opcua` transport."""
    device = OpcUaDevice(
        name="boiler_gas",
        opcua={"endpoint": "opc.tcp://10.0.0.5:4840"},
        points=[{"name": "volume_m3", "node": "ns=2;s=Boiler.GasVolume", "kind": "counter"}],
    )
    assert isinstance(make_driver(device), OpcUaDriver)


def test_importing_the_drivers_does_not_import_asyncua() -> None:
    """asyncua is loaded only when a device speaks OPC UA: not by the registry, which
    imports every protocol's settings, nor by the config models built from it."""
    code = "import sys, drivers.registry, config.models; print('asyncua' in sys.modules)"
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert result.stdout.strip() == "False"
