"""What the rest of the agent knows about a kind of destination, declared in its folder.

Each `cloud_sync/<kind>/settings.py` makes one `DestinationSpec`, and
cloud_sync/registry.py collects them. The config models and checks ask the
spec; none of them names a kind. A spec holds models and plain functions
only: the destination is named "module:function" and imported when one is
configured, so declaring a kind never loads its libraries.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from config.base import Check, DestinationBase, DeviceBase, NodePath, Reporter, Strict
from domain.errors import Problem


@dataclass(frozen=True)
class DestinationSpec:
    """A kind of destination, e.g. "http"."""

    key: str  # the YAML key of its settings in a `destinations:` entry, e.g. "http"
    settings: type[Strict]  # the model under that key
    destination: type[DestinationBase]  # a `destinations:` entry of this kind
    # "module:function" making the destination (see `factory`, agent/uplinks.py); `check`
    # calls it too and closes what it made at once: it reads files, it connects to nothing
    make: str
    summary: str  # one line for the docs
    path_fields: tuple[str, ...] = ()  # settings fields where ${VAR} is expanded
    check: Check | None = None  # of its settings, at their path
    # of its settings against the rest of the file (its devices, intervals): the file's
    # parts that validated, a config.checks._parts.Parts, are the last argument
    cross_check: Callable[[Any, NodePath, Reporter, Any], Iterable[Problem]] | None = None
    # the (device, point) pairs whose per-interval average, minimum and maximum it sends
    # (agent/statistics.py), from its settings and the devices by name
    statistics: Callable[[Any, Mapping[str, DeviceBase]], Iterable[tuple[str, str]]] | None = None

    def settings_of(self, entry: DestinationBase) -> Any:
        """The entry's settings under this kind's key."""
        return getattr(entry, self.key)

    def factory(self) -> Any:
        module, _, name = self.make.partition(":")
        return getattr(importlib.import_module(module), name)
