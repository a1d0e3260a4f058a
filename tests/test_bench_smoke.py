"""The benchmark scripts still run (tiny sizes; the figures themselves are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _bench(script: str, *args: str, timeout: float = 100) -> str:
    """bench/<script> run to its end in its own process; its output, once it exited 0."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_polling_bench_prints_a_row_per_size() -> None:
    """bench/polling.py with 2 meters for 2 s prints its header and one row."""
    stdout = _bench("polling.py", "--meters", "2", "--seconds", "2", "--warmup", "1")
    header, row = stdout.strip().splitlines()
    assert "bytes/value" in header
    assert row.split()[0] == "2"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_startup_bench_reaches_ready_and_reads_idle_memory() -> None:
    """bench/startup.py with one device prints the time and CPU to READY=1, the idle RSS,
    and `check` of the same file against reading it with libyaml."""
    stdout = _bench("startup.py", "--devices", "1")
    rows = {line.split("|")[1].strip(): line for line in stdout.splitlines()[2:]}
    assert set(rows) == {
        "start-up to READY=1, 1 devices",
        "CPU to READY=1, 1 devices",
        "check, 1 devices written point by point",
        "idle RSS, 1 devices",
    }
    assert "(yaml.load, C loader)" in rows["check, 1 devices written point by point"]
    seconds = float(rows["start-up to READY=1, 1 devices"].split("|")[2].split()[0])
    assert 0 < seconds < 60


@pytest.mark.timeout(120)
def test_ingest_bench_measures_both_workloads_against_raw_sqlite() -> None:
    """bench/ingest.py with 5 devices: a figure per workload, each with its baseline."""
    from bench.ingest import figures

    found = figures(devices=5, boundaries=3, polls=3)
    assert [f.name.split(",")[1].strip() for f in found] == ["intervals", "raw samples"]
    assert all(f.value > 0 and f.baseline and f.baseline > 0 for f in found)


@pytest.mark.timeout(120)
def test_drain_bench_prints_the_figure_and_its_ratio() -> None:
    """bench/drain.py with 1,200 intervals drains them all through two receivers."""
    stdout = _bench("drain.py", "--intervals", "1200")
    row = stdout.strip().splitlines()[-1]
    assert row.startswith("| backlog drain, 1,200 1-min intervals")
    assert "raw httpx" in row


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_soak_bench_samples_and_fits() -> None:
    """bench/soak.py with 2 meters and one sample prints the sample and every slope."""
    stdout = _bench("soak.py", "--meters", "2", "--minutes", "0", "--warmup", "0")
    lines = stdout.splitlines()
    sample = next(line for line in lines if line.startswith("minute=0.00"))
    assert "tasks=" in sample and "fds=" in sample and "nan" not in sample
    for series in ("rss_mib", "fds", "tasks", "buffer_mib", "wal_mib"):
        assert any(line.strip().startswith(f"{series}:") for line in lines), series


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_scale_bench_prints_bare_and_agent_rows() -> None:
    """bench/scale.py with 3 meters for 3 s: a row for the bare loop, one for the agent,
    every meter read, turns counted (at most one a meter: a shared machine may stall),
    and the agent's stop: exit 0, no traceback. (No warm-up beyond the script's own wait
    for every meter read each second.)"""
    stdout = _bench("scale.py", "--sizes", "3", "--seconds", "3", "--warmup", "0", timeout=160)
    header, bare, agent, ratio, stopped = stdout.strip().splitlines()
    assert "skipped" in header and "bytes/value" in header
    assert stopped == "     3 agent stopped: exit 0, 0 tracebacks"
    for row, who in ((bare, "bare"), (agent, "agent")):
        size, name, _core, _cpu, read, skipped = row.split()[:6]
        assert (size, name) == ("3", who)
        assert 0.5 < float(read) < 1.5
        assert 0 <= int(skipped) <= 3
    assert ratio.startswith("     3 agent/bare CPU per value:")


@pytest.mark.timeout(60)
def test_import_rss_bench_accounts_for_every_mib() -> None:
    """bench/import_rss.py: the interpreter, a row per package, the rest, adding up to the total."""
    *rows, last = _bench("import_rss.py").splitlines()[1:]
    figures = {name: float(mib) for name, mib in (row.rsplit(None, 1) for row in rows)}
    total = float(last.split()[3])
    assert {"interpreter before", "(edge-agent)", "pydantic_core", "the rest"} <= set(figures)
    assert sum(figures.values()) == pytest.approx(total, abs=0.05 * len(figures))
