"""The kinds of destination this agent can deliver to: one line per folder, below.

Each line names a settings module whose `SPEC` declares the kind (see
cloud_sync/spec.py); names rather than imports, as in drivers/registry.py, so
adding a kind is one line. Only settings are imported here; a destination's
own module (httpx, an MQTT client ...) is imported when one is configured.
"""

from __future__ import annotations

import importlib

from cloud_sync.spec import DestinationSpec
from config.base import DestinationBase

_SETTINGS = (
    "cloud_sync.http.settings",
    "cloud_sync.hj212.settings",
    "cloud_sync.mqtt.settings",
)


def _collect() -> dict[str, DestinationSpec]:
    kinds: dict[str, DestinationSpec] = {}
    for name in _SETTINGS:
        spec: DestinationSpec = importlib.import_module(name).SPEC
        if spec.key in kinds:
            raise ValueError(f"{name}: destination kind {spec.key} is declared twice")
        kinds[spec.key] = spec
    return kinds


KINDS: dict[str, DestinationSpec] = _collect()
"""Kind key (the YAML key of a destination's settings) -> its spec."""

_BY_MODEL = {spec.destination: spec for spec in KINDS.values()}


def kind_of(entry: DestinationBase) -> DestinationSpec:
    """The spec of a validated `destinations:` entry."""
    return _BY_MODEL[type(entry)]
