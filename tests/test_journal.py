"""The switch's journal: writes are durable when they return, grouped, and fail-stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from switch.journal import Journal, JournalFailed

INSERT_CYCLE = "INSERT INTO cycles (cycle_id, opened_at) VALUES (?, ?)"


async def cycles_after_reopening(path: Path) -> int:
    """What a restarted switch would find in the journal file."""
    reopened = Journal(path)
    try:
        return int(reopened.read_now("SELECT count(*) FROM cycles")[0][0])
    finally:
        await reopened.close()


async def test_concurrent_writes_are_grouped_and_all_durable_on_return(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite", max_queued_writes=50, max_batch=16)
    journal.start()
    try:
        await asyncio.gather(*(journal.write([(INSERT_CYCLE, [(n, float(n))])])
                               for n in range(200)))
        assert journal.read_now("SELECT count(*), sum(cycle_id) FROM cycles") == [
            (200, sum(range(200)))]
        assert journal.rows_written == 200
        assert journal.commits < 200  # writes that queued together shared a commit
    finally:
        await journal.close()
    assert await cycles_after_reopening(tmp_path / "journal.sqlite") == 200


async def test_a_write_that_fails_stops_the_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.start()
    try:
        await journal.write([(INSERT_CYCLE, [(1, 0.0)])])
        with pytest.raises(JournalFailed, match="UNIQUE"):
            await journal.write([(INSERT_CYCLE, [(1, 0.0)])])  # the same cycle twice
        with pytest.raises(JournalFailed, match="stopped after an error"):
            await journal.write([(INSERT_CYCLE, [(2, 0.0)])])
        assert journal.read_now("SELECT cycle_id FROM cycles") == [(1,)]
    finally:
        await journal.close()


async def test_close_waits_for_writes_already_taken(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.start()
    writes = [asyncio.ensure_future(journal.write([(INSERT_CYCLE, [(n, 0.0)])]))
              for n in range(100)]
    await asyncio.sleep(0)  # every write is queued, none yet durable
    await journal.close()
    assert all(write.done() and write.exception() is None for write in writes)
    assert await cycles_after_reopening(tmp_path / "journal.sqlite") == 100
