"""agent.yaml: loaded with positions, validated once, resolved; or every problem in it.

`load_config(path)` returns a LoadedConfig or raises ConfigInvalid, whose
`problems` read `file:line:col: field: message`.
"""

from config.factors import Factor, FactorSet, UnknownFactorSet, load_factor_set, province_for
from config.loader import (
    LoadedConfig,
    LoadedProfile,
    config_json_schema,
    load_config,
    load_config_apart,
    load_profile,
)
from config.profiles import list_profiles

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
