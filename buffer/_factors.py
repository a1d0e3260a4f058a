"""The factors the interval records applied, each kept once: a record on disk names its
factor by reference, and every reader of the buffer gets the record back whole.

A record carries its CO2 factor (id, value, unit, source, year, verification) because
the platform checks or recomputes the figure with it. Stored whole in every record,
the factor was half of it (the source is the MEE notice's title, about 150 bytes of
UTF-8). On disk a record holds `"factor":{"$ref":N}` and its row the number N; the
factor's JSON is in table `factors` once. Reading puts the text back, so a batch
carries the very bytes it did before (bench/RESULTS.md has the figures).

`{"$ref":N}` cannot occur in a record otherwise: JSON escapes the quotes of any
string value that held it, and no record has a key `$ref`. A record written before
schema 3 has its factor inline and no number (NULL): it is read as it is.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _mark(ref: int) -> str:
    return f'{{"$ref":{ref}}}'


class Factors:
    """ref <-> factor JSON of one buffer file, loaded at open, grown as factors are met."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.refs: dict[str, int] = {}
        self.texts: dict[int, str] = {}
        try:
            rows = conn.execute("SELECT ref, json FROM factors").fetchall()
        except sqlite3.OperationalError:  # read-only and not migrated yet: all inline
            rows = []
        for ref, text in rows:
            self.refs[text], self.texts[ref] = ref, text

    def learn(
        self,
        bodies: Iterable[dict[str, Any]],
        conn: sqlite3.Connection,
        write: Callable[[Callable[[], list[tuple[int, str]]]], list[tuple[int, str]]],
    ) -> None:
        """The factors of `bodies` not seen before, inserted (through `write`: the store's
        transaction with room) and committed before the records that name them are."""
        fresh = {
            t for b in bodies if (f := b.get("factor")) and (t := _compact(f)) not in self.refs
        }
        if not fresh:
            return

        def insert() -> list[tuple[int, str]]:
            conn.executemany(
                "INSERT OR IGNORE INTO factors (json) VALUES (?)", [(t,) for t in fresh]
            )
            marks = ",".join("?" * len(fresh))
            return conn.execute(
                f"SELECT ref, json FROM factors WHERE json IN ({marks})", list(fresh)
            ).fetchall()

        for ref, text in write(insert):  # known only once committed
            self.refs[text], self.texts[ref] = ref, text

    def stored(self, body: dict[str, Any]) -> tuple[str, int | None]:
        """A record's text for the disk and the number of its factor (None: no factor)."""
        factor = body.get("factor")
        if not factor:
            return _compact(body), None
        ref = self.refs[_compact(factor)]  # learnt before the write
        return _compact(body | {"factor": {"$ref": ref}}), ref

    def whole(self, text: str, ref: int | None) -> str:
        """One record as it was committed."""
        return text if ref is None else text.replace(_mark(ref), self.texts[ref], 1)

    def whole_joined(self, text: bytes, refs: str | None) -> bytes:
        """Records joined by commas, `refs` their factors' numbers as SQLite's
        group_concat(DISTINCT factor) gives them ("3,7", or None): one pass per factor."""
        for ref in map(int, refs.split(",")) if refs else ():
            text = text.replace(_mark(ref).encode(), self.texts[ref].encode())
        return text
