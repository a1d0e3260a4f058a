"""bench/mqtt_drain.py still runs (a tiny backlog; the figures themselves are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.mosquitto import need_mosquitto

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_mqtt_drain_bench_prints_its_row() -> None:
    need_mosquitto()
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "mqtt_drain.py"), "--intervals", "2000"],
        capture_output=True, text=True, timeout=100, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (row,) = [line for line in run.stdout.splitlines() if "MQTT backlog drain" in line]
    assert "2,000 1-min intervals" in row and "bare paho client" in row
    assert run.stderr == ""  # no stray log line from the clients
