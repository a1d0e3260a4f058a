"""Log lines: journal priorities, and the same error from the same device only once."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from agent.cli import main
from agent.logs import EVERY_TIME, JournalFormatter, RepeatFilter, priority, under_journal


def record(msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("drivers.modbus", level, __file__, 1, msg, args, None)


def test_journal_lines_carry_the_syslog_priority_on_every_line() -> None:
    """<4> for a warning, <3> for an error, and a traceback keeps the prefix on each line."""
    fmt = JournalFormatter()
    assert fmt.format(record("meter %s down", "m1")) == "<4>drivers.modbus: meter m1 down"
    assert fmt.format(record("x", level=logging.INFO)).startswith("<6>")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("agent", logging.ERROR, __file__, 1, "poll", (), sys.exc_info())
    lines = fmt.format(failed).splitlines()
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)


def test_a_repeated_error_is_shown_once_then_counted() -> None:
    """The first occurrence passes; repeats are counted and summarised once the window ends;
    another device's error and an INFO line are not held back."""
    now = [0.0]
    f = RepeatFilter(window=600, clock=lambda: now[0])
    shown = [f.filter(record("%s: no reply within 2s", "m1")) for _ in range(5)]
    assert shown == [True, False, False, False, False]
    assert f.filter(record("%s: no reply within 2s", "m2"))
    assert f.filter(record("recovered", level=logging.INFO))
    assert f.flush() == []  # the window is still open
    now[0] = 601.0
    summaries = [r.getMessage() for r in f.flush()]
    assert summaries == ["m1: no reply within 2s (repeated 4 times in 601s)"]
    assert f.filter(record("%s: no reply within 2s", "m1"))  # a fresh run shows again


def test_a_repeat_after_the_window_carries_the_count() -> None:
    """A message back after its window passes, and says how many were held back."""
    now = [0.0]
    f = RepeatFilter(window=10, clock=lambda: now[0])
    for _ in range(3):
        f.filter(record("sync failed"))
    now[0] = 11.0
    again = record("sync failed")
    assert f.filter(again)
    assert again.getMessage() == "sync failed (and 2 more like it before)"


def test_journal_stream_counts_only_when_it_is_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inherited JOURNAL_STREAM naming another file gives plain lines, not <N> prefixes."""
    out = tmp_path / "stderr"
    with out.open("w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        st = out.stat()
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert under_journal() and priority("ERROR") == "<3>"
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert not under_journal() and priority("ERROR") == ""
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not under_journal()


def test_config_problems_at_start_carry_the_error_priority_in_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad file's problems, printed into the journal (as `run` does at start), are <3>."""
    config = tmp_path / "agent.yaml"
    config.write_text("gateway: {id: gw}\n")
    out = tmp_path / "stderr"
    with out.open("w") as stream:
        monkeypatch.setattr(sys, "stderr", stream)
        st = out.stat()
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert main(["check", "-c", str(config)]) == 78
    lines = out.read_text().splitlines()
    assert lines and all(line.startswith("<3>") for line in lines), lines


def test_a_refused_reload_is_said_every_time() -> None:
    """The same bad file reloaded twice within the window: both refusals pass the filter
    (the real-systemd tier found the second one silent)."""
    f = RepeatFilter(window=600, clock=lambda: 0.0)

    def refused() -> logging.LogRecord:
        record = logging.LogRecord("agent.service", logging.ERROR, __file__, 0,
                                   "reload refused: %s", ("agent.yaml",), None)  # fmt: skip
        record.__dict__.update(EVERY_TIME)
        return record

    assert f.filter(refused()) and f.filter(refused())
