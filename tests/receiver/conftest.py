"""The receiver tests' PostgreSQL: one server per test process, a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.postgres import PostgresServer, running_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with running_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A new empty database on the session's server."""
    return postgres.create_database()
