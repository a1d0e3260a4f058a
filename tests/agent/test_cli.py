"""The command line around every command: what happens when its reader goes away."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
buffer: {path: BUFFER}
sync: {url: "https://central.example/api/v1/batches"}
devices:
  - {name: m1, profile: eastron-sdm630, modbus_tcp: {host: 127.0.0.1}}
"""


def _into_a_closed_pipe(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`edge-agent ARGS | head -0`: its stdout a pipe whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "agent", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args",
    [
        ["profiles"],  # a few lines: they only leave the buffer at the end
        ["schema"],  # more than a pipe's buffer: written while it runs
        ["status", "-c", "agent.yaml"],
    ],
    ids=["profiles", "schema", "status"],
)
def test_a_reader_that_leaves_early_ends_the_command_quietly(
    args: list[str], tmp_path: Path
) -> None:
    """Piped into `head`, a command stops without a BrokenPipeError traceback on stderr."""
    config = CONFIG.replace("BUFFER", str(tmp_path / "buffer.db"))
    (tmp_path / "agent.yaml").write_text(config)
    result = _into_a_closed_pipe(args, tmp_path)
    assert (result.stderr, result.returncode) == ("", 1)
