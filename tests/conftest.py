"""Fixtures every test folder may use: a throwaway PostgreSQL server started by the tests
themselves (skipped, saying why, where PostgreSQL or asyncpg is not installed), and a fresh
database on it per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from switch.store_postgres import postgres_missing
from switchlab import postgres

_DATABASES = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.Server]:
    why = postgres.unavailable() or postgres_missing()
    if why is not None:
        pytest.skip(f"needs PostgreSQL: {why}")
    server = postgres.start(durable=False)
    yield server
    postgres.stop(server)


@pytest.fixture
def postgres_url(postgres_server: postgres.Server) -> str:
    """A new, empty database on the session's server."""
    return postgres.create_database(postgres_server, f"test_{next(_DATABASES)}")
