"""The switch's journal: writes are durable when they return, grouped, taken in order; a write
the database refuses is refused alone; only a storage failure stops the journal."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from switch.events import SwitchEvents
from switch.store import JournalBusy, JournalFailed, Store, WriteRefused

INSERT_CYCLE = "INSERT INTO cycles (cycle_id, opened_at) VALUES (?, ?)"


async def cycles_after_reopening(path: Path) -> int:
    """What a restarted switch would find in the journal file."""
    reopened = Store(path)
    try:
        return int((await reopened.read("SELECT count(*) FROM cycles"))[0][0])
    finally:
        await reopened.close()


async def test_concurrent_writes_are_grouped_and_all_durable_on_return(tmp_path: Path) -> None:
    events = SwitchEvents()
    commits: list[int] = []
    events.journal_committed.add_listener(lambda writes, seconds: commits.append(writes))
    store = Store(tmp_path / "journal.sqlite", events, max_queued_writes=500, max_batch=16)
    store.start()
    try:
        await asyncio.gather(*(store.write([(INSERT_CYCLE, [(n, float(n))])])
                               for n in range(200)))
        assert await store.read("SELECT count(*), sum(cycle_id) FROM cycles") == [
            (200, sum(range(200)))]
        assert sum(commits) == 200
        assert len(commits) < 200  # writes that queued together shared a commit
        assert max(commits) <= 16
    finally:
        await store.close()
    assert await cycles_after_reopening(tmp_path / "journal.sqlite") == 200


async def test_a_refused_write_is_refused_alone_and_the_journal_goes_on(tmp_path: Path) -> None:
    store = Store(tmp_path / "journal.sqlite")
    store.start()
    try:
        await store.write([(INSERT_CYCLE, [(1, 0.0)])])
        same_batch = [store.submit([(INSERT_CYCLE, [(n, 0.0)])]) for n in (2, 1, 3)]
        results = await asyncio.gather(*same_batch, return_exceptions=True)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], WriteRefused) and "UNIQUE" in str(results[1])
        await store.write([(INSERT_CYCLE, [(4, 0.0)])])
        assert await store.read("SELECT cycle_id FROM cycles ORDER BY 1") == [
            (1,), (2,), (3,), (4,)]
    finally:
        await store.close()


async def test_a_storage_failure_stops_the_journal(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    events = SwitchEvents()
    failures: list[BaseException] = []
    events.journal_failed.add_listener(lambda error: failures.append(error))
    store = Store(tmp_path / "journal.sqlite", events)
    store.start()
    try:
        await store.write([(INSERT_CYCLE, [(1, 0.0)])])

        def disk_gone(writes: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(store, "_transaction", disk_gone)
        with pytest.raises(JournalFailed, match="disk I/O error"):
            await store.write([(INSERT_CYCLE, [(2, 0.0)])])
        with pytest.raises(JournalFailed, match="stopped after a storage failure"):
            store.submit([(INSERT_CYCLE, [(3, 0.0)])])
        assert [str(error) for error in failures] == ["disk I/O error"]
        assert await store.read("SELECT cycle_id FROM cycles") == [(1,)]
    finally:
        await store.close()


async def test_a_full_queue_refuses_without_taking(tmp_path: Path) -> None:
    store = Store(tmp_path / "journal.sqlite", max_queued_writes=3)  # writer not started
    taken = [store.submit([(INSERT_CYCLE, [(n, 0.0)])]) for n in range(3)]
    with pytest.raises(JournalBusy, match="the limit is 3"):
        store.submit([(INSERT_CYCLE, [(99, 0.0)])])
    store.start()
    await asyncio.gather(*taken)
    await store.close()
    assert await cycles_after_reopening(tmp_path / "journal.sqlite") == 3


async def test_close_waits_for_writes_already_taken(tmp_path: Path) -> None:
    store = Store(tmp_path / "journal.sqlite")
    store.start()
    writes = [store.submit([(INSERT_CYCLE, [(n, 0.0)])]) for n in range(100)]
    await store.close()
    assert all(write.done() and write.exception() is None for write in writes)
    assert await cycles_after_reopening(tmp_path / "journal.sqlite") == 100
