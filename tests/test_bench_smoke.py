"""The benchmark scripts still run (tiny sizes; the figures themselves are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
def test_polling_bench_prints_a_row_per_size() -> None:
    """bench/polling.py with 2 meters for 2 s prints its header and one row."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "polling.py"), "--meters", "2",
         "--seconds", "2", "--warmup", "1"],
        capture_output=True, text=True, timeout=100, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    header, row = run.stdout.strip().splitlines()
    assert "bytes/value" in header
    assert row.split()[0] == "2"
