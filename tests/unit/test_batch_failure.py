"""Issue #24, healing: what a failed batch of the PostgreSQL journal meets. A connection
closed, cut or ended by the server is the journal lost (the process heals on new
connections), never a refused write run again on the same dead connection; a value refused
by the database or the driver is that write's alone; a deadlock runs again."""

from __future__ import annotations

import pytest

asyncpg = pytest.importorskip("asyncpg")

from switch.store_postgres import TakenOver, batch_failure  # noqa: E402

exceptions = asyncpg.exceptions


def _server(sqlstate: str, message: str) -> Exception:
    """The exception asyncpg raises for an error the server sent with this SQLSTATE."""
    return exceptions.PostgresError.new({"C": sqlstate, "M": message})


@pytest.mark.parametrize("error", [
    exceptions.InterfaceError("connection is closed"),  # CI: a writer idle when it died
    exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    _server("57P01", "terminating connection due to administrator command"),
    _server("57P02", "terminating connection due to crash of another server process"),
    _server("57P03", "the database system is starting up"),
    _server("08006", "connection failure"),
    ConnectionResetError(104, "Connection reset by peer"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
], ids=type)
def test_issue_24_a_lost_connection_is_the_journal_lost(error: Exception) -> None:
    assert batch_failure(error) == "lost"


@pytest.mark.parametrize("error", [
    asyncpg.exceptions._base.DataError(  # the driver's own: an InterfaceError, a ValueError
        "invalid input for query argument $6: 10**20 (value out of int64 range)"),
    _server("22021", 'invalid byte sequence for encoding "UTF8": 0x00'),
    _server("23505", "duplicate key value violates unique constraint"),
    OverflowError("int too big to convert"),
], ids=type)
def test_issue_24_a_value_refused_is_the_write_s_alone(error: Exception) -> None:
    assert batch_failure(error) == "refused"


def test_issue_24_deadlocks_run_again_and_a_process_found_dead_ends() -> None:
    assert batch_failure(_server("40P01", "deadlock detected")) == "transient"
    assert batch_failure(_server("40001", "could not serialize access")) == "transient"
    assert batch_failure(_server("SW001", "switch process sw1 was found dead")) == "taken_over"
    assert batch_failure(TakenOver("taken over")) == "taken_over"
