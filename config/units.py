"""Durations (`500ms`, `5s`, `2m`, `24h`) and sizes (`512MB`, `2GiB`) as written in YAML.

A bare number is refused: `poll: 5` could mean seconds or minutes, and a
technician should not have to guess which one we picked.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

HOUR, DAY = 3600, 86_400
"""Seconds: the interval lengths the config and the uplinks name (hour and day data)."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$")
_SIZE_UNITS = {
    "B": 1,
    "kB": 10**3,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}


def _described(value: Any) -> str:
    kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    return f"{value!r}, {kind.get(type(value), type(value).__name__)}"


def parse_duration(value: Any) -> float:
    """Seconds from a duration string."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    raise PydanticCustomError(
        "duration",
        "must be a duration like 500ms, 5s, 2m or 24h (got {got})",
        {"got": _described(value)},
    )


def parse_size(value: Any) -> int:
    """Bytes from a size string."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    raise PydanticCustomError(
        "size",
        "must be a size like 512MB or 2GB (got {got})",
        {"got": _described(value)},
    )


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 900 -> '15m', 0.5 -> '500ms'."""
    for unit in ("d", "h", "m", "s"):
        count = seconds / _DURATION_UNITS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{round(seconds * 1000)}ms"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern, "examples": ["5s", "2m"]}),
]
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema({"type": "string", "pattern": _SIZE.pattern, "examples": ["512MB", "2GB"]}),
]
