"""Log lines for a journal nobody reads until something is wrong.

One line per event, with its level. Under systemd (stderr is the stream
`JOURNAL_STREAM` names) each line starts with a syslog priority `<N>`, so
`journalctl -p warning` works; a traceback keeps that prefix on every line.
The same warning or error again (same logger, same text: the same error from
the same device) is let through once, then counted, and a summary line says
how often it came back.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

PRIORITIES = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}
REPEAT_WINDOW = 600.0  # seconds a repeated message stays quiet before its count is logged


def under_journal() -> bool:
    """stderr is the journal's stream: JOURNAL_STREAM names its device and inode.

    The variable is inherited by children whose stderr may be a file or a
    pipe, so (as systemd documents) it counts only if it matches stderr.
    """
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):  # stderr closed or replaced
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def priority(level: str) -> str:
    """The `<N>` prefix for a line at `level` when stderr is the journal, else ''."""
    return f"<{PRIORITIES.get(level, 6)}>" if under_journal() else ""


class JournalFormatter(logging.Formatter):
    """`<3>agent.daemon: text`: journald takes the level from the prefix, adds the time."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{PRIORITIES.get(record.levelname, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


EVERY_TIME = {"summary": True}
"""`extra=` for lines that answer a technician's own action (a reload refused and why):
said each time, never held back as a repeat, as the filter's summaries are."""


class RepeatFilter(logging.Filter):
    """The first of a run of identical warnings passes; the rest are counted.

    Once REPEAT_WINDOW has passed, the next occurrence passes again with the
    count, and `flush` (called periodically by the daemon) reports the counts
    of messages that have gone quiet, so a count is never lost.
    """

    def __init__(
        self, window: float = REPEAT_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        # (logger, level, text) -> [when first shown, repeats since]; text only, so no
        # record (and no traceback's frames) is kept alive
        self.seen: dict[tuple[str, int, str], list] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or getattr(record, "summary", False):
            return True
        key = (record.name, record.levelno, record.getMessage())
        now = self.clock()
        entry = self.seen.get(key)
        if entry is None or now - entry[0] >= self.window:
            if entry and entry[1]:
                record.msg = f"{key[2]} (and {entry[1]} more like it before)"
                record.args = None
            self.seen[key] = [now, 0]
            return True
        entry[1] += 1
        return False

    def flush(self) -> list[logging.LogRecord]:
        """Summary records for the messages whose window has passed with repeats."""
        now = self.clock()
        out = []
        for key, (shown, repeats) in list(self.seen.items()):
            if now - shown < self.window:
                continue
            del self.seen[key]
            if repeats:
                name, level, text = key
                took = now - shown
                message = f"{text} (repeated {repeats} times in {took:.0f}s)"
                summary = logging.LogRecord(name, level, __file__, 0, message, None, None)
                summary.summary = True
                out.append(summary)
        return out


_repeats = RepeatFilter()


def flush_repeats() -> None:
    """Log the counts of repeated messages that have gone quiet (the daemon calls this)."""
    for record in _repeats.flush():
        logging.getLogger(record.name).handle(record)


def setup(verbose: bool, *, quiet: bool = False) -> None:
    """Log lines to stderr; `quiet` for commands whose output is their answer."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    if under_journal():
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_repeats)
    logging.basicConfig(level=level, handlers=[handler])  # a no-op if a handler exists
    for noisy in ("httpx", "httpcore", "asyncua"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # the daemon reports skipped polls and driver failures itself, once per transition
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
