"""A protocol is its folder plus one registry line: a fake protocol added that way to a
copy of the source is checked, published, probed and initialised like a shipped one."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from config.base import DeviceBase
from domain.errors import DriverUnavailable
from drivers.base import Subscribes, Writes, subscribes
from drivers.registry import PROTOCOLS, make_driver
from tests.fixtures.source import ROOT, changes, copy_with, python

REGISTRY = "drivers/registry.py"
LAST_LINE = '    "drivers.dlt645.settings",\n'
FAKE_LINE = '    "drivers.fake.settings",\n'

pytestmark = pytest.mark.timeout(120)

FAKE = {
    "drivers/fake/__init__.py": '"""A fake protocol: points that always read the same."""\n',
    "drivers/fake/settings.py": '''\
"""What `fake:` holds, and the spec that makes the protocol known."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from config.base import DeviceBase, PointBase, Strict
from domain.errors import InitError
from drivers.spec import InitSpec, ProtocolSpec


class Fake(Strict):
    """A pretend meter."""

    host: str = Field(description="Where the pretend meter is.")


class FakePoint(PointBase):
    """One value that never changes."""

    value: float = Field(description="What the point always reads.")


class FakeDevice(DeviceBase):
    """A meter that always reads the same."""

    fake: Fake
    points: list[FakePoint] = Field(default=[], description="Own points; replace the profile's.")


def _fields(target: str, options: Mapping[str, Any]) -> dict[str, object]:
    if " " in target:
        raise InitError(f"--fake {target!r}: a host has no spaces")
    return {"host": target}


SPECS = (
    ProtocolSpec(
        key="fake",
        settings=Fake,
        device=FakeDevice,
        point=FakePoint,
        family="fake",
        driver="drivers.fake.driver:FakeDriver",
        summary="Fake: points that always read the same.",
        example={"host": "fake.example"},
        init=InitSpec("--fake", "HOST", "a pretend meter", _fields, "fake-meter"),
    ),
)
''',
    "drivers/fake/driver.py": '''\
"""The fake driver: every point reads its constant value (nothing foreign to translate)."""

from __future__ import annotations

import time

from domain.reading import Reading
from drivers.fake.settings import FakeDevice


class FakeDriver:
    def __init__(self, device: FakeDevice) -> None:
        self.device = device.name
        self._host = device.fake.host
        self._points = list(device.points)

    def describe(self) -> str:
        return f"{self.device}: {len(self._points)} constant points at {self._host}"

    async def read(self) -> list[Reading]:
        now = time.time()
        return [
            Reading(self.device, p.name, now, p.value * p.scale + p.offset, p.unit)
            for p in self._points
        ]

    async def close(self) -> None:
        pass
''',
    "drivers/fake/profiles/fake-meter.yaml": """\
protocol: fake
description: A pretend energy meter
source: tests/drivers/test_registry.py
points:
  - {name: import_kwh, value: 1234.5, unit: kWh, kind: counter}
  - {name: power_kw, value: 42, unit: kW}
""",
}

HEAD = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
sync: {url: "https://central.example/api/v1/batches"}
devices:
"""
GOOD = (
    HEAD
    + """\
  - name: bench
    fake: {host: lab}
    profile: fake-meter
    energy: {carrier: electricity, counter: import_kwh}
"""
)
BAD = (
    HEAD
    + """\
  - name: bench
    fake: {hots: lab}
    points: [{name: e, value: 1, unit: kWh, kind: counter}]
"""
)


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The source with the fake protocol added: its folder and its registry line."""
    top = tmp_path_factory.mktemp("src")
    return copy_with(top, FAKE, REGISTRY, LAST_LINE, LAST_LINE + FAKE_LINE)


def agent(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`edge-agent ARGS` run from the copy, in the copy's directory."""
    return python(copy, "-m", "agent", *args)


def test_the_copy_differs_only_by_the_folder_and_the_registry_line(copy: Path) -> None:
    """Adding a protocol touches nothing outside its folder but one line of the registry."""
    changed, lines = changes(copy, REGISTRY)
    assert changed == sorted([REGISTRY, *FAKE])
    assert lines == ["+ " + FAKE_LINE]


def test_check_accepts_a_fake_device_and_places_a_mistake(copy: Path) -> None:
    """`check` knows the new key, its settings and its profile; a typo is at file:line:col."""
    (copy / "good.yaml").write_text(GOOD, encoding="utf-8")
    good = agent(copy, "check", "-c", "good.yaml")
    assert (good.returncode, good.stdout) == (0, "good.yaml: ok (1 devices, 0 rules)\n")
    (copy / "bad.yaml").write_text(BAD, encoding="utf-8")
    bad = agent(copy, "check", "-c", "bad.yaml")
    assert bad.returncode == 78
    assert bad.stderr.splitlines() == [
        "bad.yaml:5:5: devices[0].fake: missing required field 'host'",
        "bad.yaml:5:12: devices[0].fake.hots: unknown key (did you mean 'host'?)",
        "bad.yaml: 2 errors",
    ]


def test_a_device_without_a_protocol_names_the_new_one(copy: Path) -> None:
    """The protocols a device may name include the new key."""
    (copy / "none.yaml").write_text(HEAD + "  - {name: bench}\n", encoding="utf-8")
    result = agent(copy, "check", "-c", "none.yaml")
    assert "a device needs exactly one of modbus_tcp, modbus_rtu, opcua, dlt645, fake" in (
        result.stderr
    )


def test_the_schema_publishes_the_fake_device(copy: Path) -> None:
    """An editor completes `fake:` and its fields."""
    result = agent(copy, "schema")
    defs = json.loads(result.stdout)["$defs"]
    assert "fake" in defs["FakeDevice"]["required"]
    assert set(defs["Fake"]["properties"]) == {"host"}
    assert "fake-meter" in defs["FakeDevice"]["properties"]["profile"]["examples"]


def test_probe_reads_the_fake_device(copy: Path) -> None:
    """`probe` makes the driver from the registry and prints its constant readings."""
    (copy / "good.yaml").write_text(GOOD, encoding="utf-8")
    result = agent(copy, "probe", "-c", "good.yaml", "bench", "--json")
    assert result.returncode == 0, result.stderr
    points = json.loads(result.stdout)["points"]
    assert points["import_kwh"] == {"value": 1234.5, "unit": "kWh", "quality": "good"}
    assert points["power_kw"]["value"] == 42
    plan = agent(copy, "probe", "-c", "good.yaml", "bench", "--plan")
    assert plan.stdout == "bench: 2 constant points at lab\n"


def test_init_writes_a_fake_starter_that_passes_check(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`init --fake HOST` exists because the spec says so, and its starter passes check
    (given its sync token, as systemd's credential gives it)."""
    result = agent(copy, "init", "-c", "starter.yaml", "--fake", "lab2")
    assert result.returncode == 0, result.stderr
    assert 'fake: {host: "lab2"}' in (copy / "starter.yaml").read_text(encoding="utf-8")
    (copy / "sync-token").write_text("t0ken", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(copy))
    monkeypatch.setenv("STATE_DIRECTORY", str(copy / "state"))
    checked = agent(copy, "check", "-c", "starter.yaml")
    assert checked.returncode == 0, checked.stderr
    refused = agent(copy, "init", "-c", "other.yaml", "--fake", "two words")
    assert refused.returncode == 78
    assert "--fake 'two words': a host has no spaces" in refused.stderr


@pytest.mark.parametrize("key", PROTOCOLS)
def test_each_shipped_driver_has_what_its_spec_promises(key: str) -> None:
    """A driver has describe, read and close; it Writes exactly when its spec serves a write."""
    spec = PROTOCOLS[key]
    module, _, name = spec.driver.partition(":")
    driver = getattr(importlib.import_module(module), name)
    assert all(callable(getattr(driver, m, None)) for m in ("describe", "read", "close"))
    assert issubclass(driver, Writes) == (spec.write is not None)
    instance = object.__new__(driver)  # the class is what `subscribes` decides on
    assert subscribes(instance) == isinstance(instance, Subscribes) == (key == "opcua")


def test_a_device_of_no_registered_protocol_has_no_driver() -> None:
    """make_driver says which protocols there are instead of failing somewhere deeper."""
    with pytest.raises(DriverUnavailable, match=r"not available in this version \(available: "):
        make_driver(DeviceBase(name="stray"))


def test_the_config_loads_no_driver_and_no_protocol_library() -> None:
    """Loading the config imports each protocol's settings, never a driver or its library."""
    code = (
        "import sys, config.models, config.loader\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('drivers')"
        " or m.split('.')[0] in ('asyncua', 'pymodbus', 'serial'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    allowed = {"drivers", "drivers.base", "drivers.registry", "drivers.spec"}
    folders = {spec.folder.name for spec in PROTOCOLS.values()}  # a new protocol: no edit here
    allowed |= {f"drivers.{folder}" for folder in folders}
    allowed |= {f"drivers.{folder}.settings" for folder in folders}
    allowed |= {"drivers.cjt188.tables"}  # the unit codes and layouts its settings check
    assert set(result.stdout.split()) == allowed


@pytest.mark.parametrize("key", list(PROTOCOLS))
def test_each_protocols_example_link_is_valid(key: str) -> None:
    """The example the docs show for a protocol's link passes its settings model."""
    spec = PROTOCOLS[key]
    assert spec.settings.model_validate(dict(spec.example), strict=True)
