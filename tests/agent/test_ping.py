"""`edge-agent ping NAME`: a technician tries an HJ 212 platform's link before the daemon
runs; the independent test platform (tests/fixtures/hj212.py) answers or is away."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.fixtures.config import GATEWAY
from tests.fixtures.hj212 import MN, Platform

DESTINATION = """\
devices:
  - name: incomer
    modbus_tcp: {host: 127.0.0.1}
    points:
      - {name: energy_kwh, address: 0, type: uint32, unit: kWh, kind: counter}
    energy: {carrier: electricity, counter: energy_kwh}
destinations:
  - name: epb
    hj212:
      host: 127.0.0.1
      port: %d
      pw: "123456"
      st: "32"
      overtime: 500ms
      monitoring_points: [{mn: "%s", devices: [incomer]}]
      codes: {energy_kwh: {code: e10101, as: Cou}}
"""


async def ping(tmp_path: Path, port: int, name: str = "epb") -> tuple[int, str]:
    config = tmp_path / "agent.yaml"
    config.write_text(GATEWAY + DESTINATION % (port, MN))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "ping", name, "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return await proc.wait(), out.decode()


async def test_ping_shows_the_exchange_and_the_platform_takes_it(tmp_path: Path) -> None:
    async with Platform() as platform:
        code, out = await ping(tmp_path, platform.port)
        assert code == 0, out
        lines = out.splitlines()
        assert lines[0] == f"connected to 127.0.0.1:{platform.port}"
        assert lines[1].startswith("sent:     QN=") and f";CN=1013;PW=123456;MN={MN};" in lines[1]
        assert lines[2].startswith("answered: CN=9013 QN=") and f"MN={MN}" in lines[2]
        assert [f.cn for f in platform.received] == ["1013"] and platform.errors == []


async def test_ping_says_what_is_wrong(tmp_path: Path) -> None:
    async with Platform(answering=False) as silent:
        code, out = await ping(tmp_path, silent.port)
        assert code == 69 and "no answer within 0.5s for MN" in out
        assert "check the MN, PW and ST" in out
        port = silent.port
    code, out = await ping(tmp_path, port)
    assert code == 69 and "cannot reach the platform: cannot connect to 127.0.0.1" in out
    code, out = await ping(tmp_path, port, "sync")
    assert code == 2 and "sync (http) has no ping" in out
    code, out = await ping(tmp_path, port, "nowhere")
    assert code == 2 and "no destination named 'nowhere'; configured: sync, epb" in out
