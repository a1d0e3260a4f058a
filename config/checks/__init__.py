"""The rules a config must follow that span fields, each reported at its node.

The models check each field alone; what needs two fields, the profile library
or the factor data (a counter that names a point, a grid that matches the
region) is checked here. The checks run on the parts of the file that passed
the models (each section, device and rule on its own), even when other parts
did not, so that one run reports every problem; a check that needs a part
which did not validate waits for the next run. Warnings are for what is legal
but probably not meant.

_parts (what the checks run on), _sections (gateway, sync and destinations, emissions),
_devices (points, energy, wiring, serial ports), _rules, _env (${VAR} in
path fields, expanded after the checks).
"""

from __future__ import annotations

from config.checks._devices import check_devices, check_points, check_serial_ports
from config.checks._env import expand_env
from config.checks._parts import DeviceLink, Parts, ValidDevice
from config.checks._rules import check_rules
from config.checks._sections import check_destinations, check_emissions, check_gateway
from config.errors import Document
from domain.errors import Problem

__all__ = ["DeviceLink", "Parts", "ValidDevice", "check_config", "check_points", "expand_env"]


def check_config(parts: Parts, doc: Document) -> list[Problem]:
    """Every cross-field problem among the parts that validated."""
    return [
        *check_gateway(parts, doc),
        *check_devices(parts, doc),
        *check_serial_ports(parts, doc),
        *check_emissions(parts, doc),
        *check_rules(parts, doc),
        *check_destinations(parts, doc),
    ]
