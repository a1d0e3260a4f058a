"""Config text the tests build on (a valid head, one valid meter), and fixture types."""

from collections.abc import Callable

from config import LoadedConfig

GATEWAY = """\
gateway:
  id: gw1
  enterprise_id: 91510100MA6123456W
  region_code: "510100"
  industry_code: C3011
sync:
  url: https://central.example/api/v1/batches
"""
"""Seven lines: text appended to it starts at line 8."""

METER = """\
devices:
  - name: meter
    modbus_tcp: {host: 10.0.0.1}
    points:
      - {name: energy_kwh, address: 0, type: uint32, unit: kWh, kind: counter}
    energy: {carrier: electricity, counter: energy_kwh}
"""
"""A device section with one Modbus meter and its energy counter."""

Write = Callable[..., str]
"""The `write` fixture: text -> the path it was written to (agent.yaml in a temp dir)."""
Load = Callable[..., LoadedConfig]
"""The `load` fixture: text -> the loaded config."""
Problems = Callable[..., list[str]]
"""The `problems` fixture: text -> every problem, as `file:line:col: path: message`."""
