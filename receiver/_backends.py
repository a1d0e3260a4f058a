"""Which store a receiver opens for the database it is given.

One place to choose, so the in-process Receiver, `edge-agent receiver` and
each of its worker processes open the same kind of store. Only SQLite here.
"""

from __future__ import annotations

import os

from receiver._store import Store


def open_store(database: str | os.PathLike[str]) -> Store:
    """The store for `database`: a SQLite file path."""
    return Store(database)
