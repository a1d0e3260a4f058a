"""The JSON Schema of agent.yaml (`edge-agent schema`), for editors and the reference."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from config.models import Config
from config.profiles import list_profiles
from config.units import Duration, Size, format_duration

_DURATION = TypeAdapter(Duration).json_schema()["pattern"]
_SIZE = TypeAdapter(Size).json_schema()["pattern"]
_SIZES = (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3), ("B", 1))


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of agent.yaml (`edge-agent schema`), defaults written as in YAML."""
    schema = Config.model_json_schema(mode="validation")
    for definition in [schema, *schema["$defs"].values()]:
        for name, prop in definition.get("properties", {}).items():
            if isinstance(prop.get("default"), dict):  # a section: its fields say their defaults
                del prop["default"]
            elif isinstance(prop.get("default"), list):
                prop["default"] = [_as_written(prop["items"], v) for v in prop["default"]]
            elif "default" in prop:
                prop["default"] = _as_written(prop, prop["default"])
            if name == "profile":
                prop["examples"] = list_profiles()
    schema["title"] = "edge-agent configuration (agent.yaml)"
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _as_written(prop: dict[str, Any], value: Any) -> Any:
    """A duration or size default as YAML spells it: 60.0 -> "1m", 2e9 -> "2GB"."""
    if prop.get("pattern") == _DURATION and isinstance(value, int | float):
        return format_duration(value) if value else "0s"
    if prop.get("pattern") == _SIZE and isinstance(value, int):
        return next(f"{value // n}{unit}" for unit, n in _SIZES if value % n == 0)
    return value
