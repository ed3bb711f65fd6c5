"""Fixtures every test folder may use: a throwaway PostgreSQL server started by the tests
themselves (skipped, saying why, where PostgreSQL or asyncpg is not installed), and a fresh
database on it per test."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from lab import postgres

_DATABASES = itertools.count(1)


def _throwaway_server(durable: bool) -> Iterator[postgres.Server]:
    why = postgres.unavailable()
    if why is not None:
        pytest.skip(f"needs PostgreSQL: {why}")
    server = postgres.start(durable=durable)
    yield server
    postgres.stop(server)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.Server]:
    yield from _throwaway_server(durable=False)


@pytest.fixture
def own_postgres_server() -> Iterator[postgres.Server]:
    """A server of the test's own, which it may stop and start again; durable (fsync and
    synchronous_commit on): an immediate stop must lose nothing acknowledged."""
    yield from _throwaway_server(durable=True)


@pytest.fixture
def postgres_url(postgres_server: postgres.Server) -> str:
    """A new, empty database on the session's server."""
    return new_database(postgres_server)


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest) -> dict[str, str]:
    """The switch's settings for each journal in turn: none for the embedded SQLite one, a new
    database's `journal_url` for PostgreSQL (skipped, saying why, where there is none)."""
    if request.param == "sqlite":
        return {}
    return {"journal_url": request.getfixturevalue("postgres_url")}


def new_database(server: postgres.Server) -> str:
    """A new, empty database on the server; its URL. Made in a thread of its own, so that
    fixtures may ask for one inside a running event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, postgres.create_database(
            server.url, f"test_{next(_DATABASES)}")).result()
