"""bench/receiver_ingest.py still runs (a tiny size; the figures themselves are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.postgres import MISSING, bindir, unavailable

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_receiver_ingest_bench_prints_every_figure() -> None:
    """With 1000 intervals it prints a row for each backend and each way to insert."""
    if bindir() is None:
        unavailable(MISSING)
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "receiver_ingest.py"), "--intervals", "1000"],
        capture_output=True, text=True, timeout=220, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = {line.split("|")[1].strip() for line in run.stdout.splitlines() if line.startswith("| ")}
    assert {
        "receiver ingest HTTP, SQLite, 1 receiver (1,000 intervals, 500/batch)",
        "receiver ingest HTTP, PostgreSQL, 1 receiver (1,000 intervals, 500/batch)",
        "receiver ingest HTTP, PostgreSQL, 2 receivers (1,000 intervals, 500/batch)",
        "PostgreSQL raw executemany",
    } <= rows
