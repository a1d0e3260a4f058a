"""The JSON Schema for editors and the generated reference follow the models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from config.profiles import list_profiles
from config.schema import config_json_schema

ROOT = Path(__file__).resolve().parents[2]


def test_the_schema_is_draft_2020_12_with_a_title() -> None:
    """Editors need $schema to pick the dialect."""
    schema = config_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "edge-agent configuration (agent.yaml)"
    assert schema["required"] == ["gateway", "sync"]


def test_schema_defaults_are_written_as_in_yaml() -> None:
    """A duration default reads 1m, not 60.0, so an editor can insert it."""
    defs = config_json_schema()["$defs"]
    assert defs["HttpSettings"]["properties"]["every"]["default"] == "1m"
    assert defs["Buffer"]["properties"]["max_size"]["default"] == "2GB"
    assert defs["Emissions"]["properties"]["intervals"]["default"] == ["1m", "15m"]


def test_the_schema_offers_the_profiles_for_completion() -> None:
    """`profile:` completes to the shipped profile names."""
    device = config_json_schema()["$defs"]["ModbusTcpDevice"]
    assert device["properties"]["profile"]["examples"] == list_profiles()


def test_the_example_plant_is_valid_against_the_schema() -> None:
    """What the loader accepts, an editor using the schema accepts too."""
    jsonschema = pytest.importorskip("jsonschema")
    plant = yaml.safe_load((ROOT / "examples" / "plant.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(config_json_schema()).validate(plant)


def test_the_committed_reference_is_what_the_models_generate() -> None:
    """docs/configuration.md cannot drift: regenerate it with tools/gen_config_docs.py."""
    spec = importlib.util.spec_from_file_location(
        "gen_config_docs", ROOT / "tools" / "gen_config_docs.py"
    )
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == generator.render(), "run .venv/bin/python tools/gen_config_docs.py"
