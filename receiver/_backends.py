"""Which store a `--db` value names: a PostgreSQL URL, or else an SQLite file.

PostgreSQL is imported only when a URL asks for it, so a receiver on SQLite
runs without psycopg installed (it comes with the `receiver` extra).
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any, TypeAlias

from domain.batch import Batch
from receiver._request import parse_batch, validate_batch
from receiver._store import Store, Stored

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


def parse_for(store: AnyStore, data: bytes) -> tuple[Batch, dict[str, Any] | None]:
    """A body validated, and parsed too where the store keeps records from the parsed JSON
    (SQLite); PostgreSQL takes them from the body itself, so one pass over it is enough."""
    if isinstance(store, Store):
        return parse_batch(data)
    return validate_batch(data), None


def put_body(
    store: AnyStore,
    key: str,
    batch: Batch,
    document: dict[str, Any] | None,
    data: bytes,
    digest: str | None = None,
) -> Stored | None:
    """Store what `parse_for` gave for `data` under `key`; None if the key is held.
    `digest`: the body's SHA-256 (hex), if the caller has it already."""
    digest = digest or hashlib.sha256(data).hexdigest()
    if isinstance(store, Store):
        assert document is not None, "parse_for parses the JSON for an SQLite store"
        return store.put(key, batch, document, digest)
    return store.put(key, batch, document, digest, body=data)
