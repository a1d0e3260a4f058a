"""A buffer that is not a sound SQLite database is moved aside, never opened as is.

A power cut on a cheap SSD, a full disk during a checkpoint, or someone
copying a file over the buffer: at start the agent runs `PRAGMA quick_check`
and, if the file fails it (or is no database at all), renames it and its WAL
to `<name>.corrupt-<UTC time>` for someone to examine, and starts afresh. The
daemon keeps running; a `buffer_replaced` event tells the platform.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

_SIDE_FILES = ("-wal", "-shm")
_DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def problem(path: Path) -> str | None:
    """Why the file at `path` is not a sound database, or None (sound, or absent)."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error:
        return None  # permissions, a missing directory...: the normal open says what
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", None) in _DAMAGED:
            return f"{exc}"
        return None  # locked, busy, unreadable: not evidence of damage; never move those
    finally:
        conn.close()
    if rows == ["ok"]:
        return None
    return "quick_check: " + "; ".join(str(r) for r in rows)


def move_aside(path: Path, why: str) -> Path:
    """Rename the database (and its WAL and shared memory) out of the way."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.rename(target)
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    log.error(
        "buffer %s is damaged (%s): moved to %s; a fresh buffer is started. Counter state, "
        "unsent intervals and events in it are not delivered unless recovered from that file",
        path, why, target,
    )  # fmt: skip
    return target
