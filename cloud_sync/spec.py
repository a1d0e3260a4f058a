"""What the rest of the agent knows about a kind of destination, declared in its folder.

Each `cloud_sync/<kind>/settings.py` makes one `DestinationSpec`, and
cloud_sync/registry.py collects them. The config models and checks ask the
spec; none of them names a kind. A spec holds models and plain functions
only: the destination is named "module:function" and imported when one is
configured, so declaring a kind never loads its libraries.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from config.base import Check, DestinationBase, Strict


@dataclass(frozen=True)
class DestinationSpec:
    """A kind of destination, e.g. "http"."""

    key: str  # the YAML key of its settings in a `destinations:` entry, e.g. "http"
    settings: type[Strict]  # the model under that key
    destination: type[DestinationBase]  # a `destinations:` entry of this kind
    make: str  # "module:function" making the destination (see `factory`, agent/uplinks.py)
    summary: str  # one line for the docs
    path_fields: tuple[str, ...] = ()  # settings fields where ${VAR} is expanded
    check: Check | None = None  # of its settings, at their path

    def settings_of(self, entry: DestinationBase) -> Any:
        """The entry's settings under this kind's key."""
        return getattr(entry, self.key)

    def factory(self) -> Any:
        module, _, name = self.make.partition(":")
        return getattr(importlib.import_module(module), name)
