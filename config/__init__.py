"""agent.yaml: loaded with positions, validated once, resolved; or every problem in it.

`load_config(path)` returns a LoadedConfig or raises ConfigInvalid, whose
`problems` read `file:line:col: field: message`.

The names below are imported on first use, not with the package: config.base,
the vocabulary every protocol's settings are written in, must be importable
without the models, which are built from those settings (drivers.registry).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.factors import Factor, FactorSet, UnknownFactorSet, load_factor_set, province_for
    from config.loader import (
        LoadedConfig,
        LoadedProfile,
        load_config,
        load_config_apart,
        load_profile,
    )
    from config.profiles import list_profiles
    from config.schema import config_json_schema

_FROM = {
    "Factor": "config.factors",
    "FactorSet": "config.factors",
    "UnknownFactorSet": "config.factors",
    "load_factor_set": "config.factors",
    "province_for": "config.factors",
    "LoadedConfig": "config.loader",
    "LoadedProfile": "config.loader",
    "config_json_schema": "config.schema",
    "load_config": "config.loader",
    "load_config_apart": "config.loader",
    "load_profile": "config.loader",
    "list_profiles": "config.profiles",
}

__all__ = [
    "Factor",
    "FactorSet",
    "LoadedConfig",
    "LoadedProfile",
    "UnknownFactorSet",
    "config_json_schema",
    "list_profiles",
    "load_config",
    "load_config_apart",
    "load_factor_set",
    "load_profile",
    "province_for",
]


def __getattr__(name: str) -> Any:
    module = _FROM.get(name)
    if module is None:
        raise AttributeError(f"module 'config' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
