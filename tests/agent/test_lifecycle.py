"""The progress check behind the watchdog, and where the status file goes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.lifecycle import Progress, find_snapshot, snapshot_path, write_snapshot


def test_a_job_is_stalled_only_past_its_allowance() -> None:
    """A job that ran within its allowance is fine; one silent past it is named."""
    progress = Progress()
    progress.expect("poll every 5s", 25.0, now=100.0)
    progress.expect("sync", 150.0, now=100.0)
    assert progress.stalled(124.0) == []
    progress.ran("poll every 5s", 120.0)
    progress.ran("not watched", 120.0)
    assert progress.stalled(140.0) == []
    assert progress.stalled(146.0) == [
        "job 'poll every 5s' has not run for 26s (expected every 25s at most)"
    ]
    progress.forget("poll every 5s")
    assert progress.stalled(146.0) == []


def test_under_systemd_the_status_file_goes_to_the_runtime_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RUNTIME_DIRECTORY (tmpfs) when systemd sets it, else next to the buffer."""
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    assert snapshot_path(tmp_path / "buffer.db") == tmp_path / "status.json"
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/edge-agent")
    assert snapshot_path(tmp_path / "buffer.db") == Path("/run/edge-agent/status.json")


def test_status_reads_only_the_file_of_its_own_buffer(tmp_path: Path) -> None:
    """A status file naming another buffer is not taken for this daemon's."""
    buffer = str(tmp_path / "buffer.db")
    write_snapshot(tmp_path / "status.json", {"written": time.time(), "buffer": "/other.db"})
    assert find_snapshot(buffer) is None
    write_snapshot(tmp_path / "status.json", {"written": 1.0, "buffer": buffer})
    assert find_snapshot(buffer) == {"written": 1.0, "buffer": buffer}
