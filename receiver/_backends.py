"""Which store a `--db` value names: a PostgreSQL URL, or else an SQLite file.

PostgreSQL is imported only when a URL asks for it, so a receiver on SQLite
runs without psycopg installed (it comes with the `receiver` extra).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypeAlias

from receiver._store import Store

if TYPE_CHECKING:
    from receiver._postgres import PostgresStore

AnyStore: TypeAlias = "Store | PostgresStore"

_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(database: str | os.PathLike[str]) -> bool:
    """Whether `database` is a libpq URL (postgresql:// or postgres://)."""
    return isinstance(database, str) and database.lower().startswith(_SCHEMES)


def open_store(database: str | os.PathLike[str]) -> Store | PostgresStore:
    """A PostgresStore for a postgresql:// or postgres:// URL, an SQLite Store for anything else."""
    if is_postgres(database):
        from receiver._postgres import PostgresStore

        return PostgresStore(os.fspath(database))
    return Store(database)


def shown(database: str | os.PathLike[str]) -> str:
    """`database` fit for a log line or an error: a URL's password, if one was given, hidden."""
    text = os.fspath(database)
    if not is_postgres(text):
        return text
    scheme, _, rest = text.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}://{credentials}{at}{host}"
