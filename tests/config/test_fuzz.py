"""Whatever the file holds, loading ends in a config or in ConfigInvalid, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.loader import LoadedConfig, load_config
from config.models import Config, Rule
from domain.errors import ConfigInvalid
from drivers.modbus.settings import ModbusPoint, ModbusWrite
from drivers.opcua.settings import OpcUa

ROOT = Path(__file__).resolve().parents[2]
PLANT = yaml.safe_load((ROOT / "examples" / "plant.yaml").read_text(encoding="utf-8"))
KEYS = sorted(
    {*Config.model_fields, *ModbusPoint.model_fields, *OpcUa.model_fields, *Rule.model_fields}
    | {"modbus_tcp", "modbus_rtu", "dlt645", "opcua", "register", "for", "<<"}
    | set(ModbusWrite.model_fields)
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["5s", "0s", "2GB", "modbus", "eastron-sdm630", "sichuan", "${X}", "0x10"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "agent.yaml"


def _outcome(path: Path) -> None:
    try:
        loaded = load_config(path, environ={})
    except ConfigInvalid as exc:
        assert exc.errors, "ConfigInvalid without an error"
        assert all(p.line >= 1 and p.col >= 1 and str(p) for p in exc.problems)
    else:
        assert isinstance(loaded, LoadedConfig)


@SETTINGS
@given(text=st.text())
def test_any_text_loads_or_is_invalid(path: Path, text: str) -> None:
    """Arbitrary text never escapes as anything but ConfigInvalid."""
    path.write_text(text, encoding="utf-8")
    _outcome(path)


@SETTINGS
@given(data=st.binary())
def test_any_bytes_load_or_are_invalid(path: Path, data: bytes) -> None:
    """Arbitrary bytes, UTF-8 or not, never escape as anything but ConfigInvalid."""
    path.write_bytes(data)
    _outcome(path)


@SETTINGS
@given(document=values)
def test_any_yaml_structure_loads_or_is_invalid(path: Path, document: Any) -> None:
    """Well-formed YAML of any shape, with config-like keys, gets a verdict, not a crash."""
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    _outcome(path)


def _mutated(document: Any, choices: list[int], value: Any) -> Any:
    """The document with the subtree reached by `choices` replaced by `value`."""
    if not choices or not isinstance(document, dict | list) or not document:
        return value
    keys = list(document) if isinstance(document, dict) else list(range(len(document)))
    key = keys[choices[0] % len(keys)]
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[key] = _mutated(document[key], choices[1:], value)
    return copy


@SETTINGS
@given(choices=st.lists(st.integers(min_value=0, max_value=50), max_size=6), value=values)
def test_the_example_with_any_part_replaced_loads_or_is_invalid(
    path: Path, choices: list[int], value: Any
) -> None:
    """Any one value of examples/plant.yaml swapped for garbage still gets a verdict."""
    document = _mutated(PLANT, choices, value)
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    _outcome(path)
