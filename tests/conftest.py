"""Fixtures every test folder may use: a throwaway PostgreSQL server started by the tests
themselves (skipped, saying why, where PostgreSQL or asyncpg is not installed), and a fresh
database on it per test."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from switchlab import postgres

_DATABASES = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.Server]:
    why = postgres.unavailable()
    if why is not None:
        pytest.skip(f"needs PostgreSQL: {why}")
    server = postgres.start(durable=False)
    yield server
    postgres.stop(server)


@pytest.fixture
def postgres_url(postgres_server: postgres.Server) -> str:
    """A new, empty database on the session's server."""
    return new_database(postgres_server)


def new_database(server: postgres.Server) -> str:
    """A new, empty database on the server; its URL. Made in a thread of its own, so that
    fixtures may ask for one inside a running event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, postgres.create_database(
            server.url, f"test_{next(_DATABASES)}")).result()
