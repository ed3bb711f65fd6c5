"""The switch's real SQLite journal (switch/store.py: schema, statements, group commit,
transactions), with its two thread hops removed so that a history is deterministic: a commit
runs on the event loop after a simulated fsync time, and reads run inline. A crash between
the queueing of a write and its commit loses it, as on a real disk."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from switch.events import SwitchEvents
from switch.group_commit import QueuedWrite
from switch.journal_errors import WriteRefused
from switch.journal_reader import JournalReader
from switch.store import SqliteJournal

T = TypeVar("T")


class SimJournal(SqliteJournal):
    def __init__(self, path: Path, events: SwitchEvents, rng: random.Random,
                 max_commit_s: float) -> None:
        super().__init__(path, events)
        self._rng = rng
        self._max_commit_s = max_commit_s
        self.commits = 0

    async def _commit(self, batch: list[QueuedWrite]) -> list[Any]:
        await asyncio.sleep(self._rng.uniform(0.0, self._max_commit_s))  # the fsync
        refusals = self._transaction(batch)
        self.commits += 1
        return [None if refusal is None else WriteRefused(str(refusal)) for refusal in refusals]

    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._read_now(sql, params)

    async def known_ids_now(self) -> set[str]:
        return self._known_ids()

    async def _look(self, query: Callable[[JournalReader], T]) -> T:
        return query(self._looking)

    def crash(self) -> None:
        """The process died: what is queued is lost; the file keeps what was committed."""
        self.failure = RuntimeError("the switch crashed (simulated)")
        self._queue.clear()
        for connection in (self._writer_connection, self._reader_connection):
            connection.close()
        self._looking.close()
        for executor in (self._writer_executor, self._reader_executor,
                         self._looking_executor):
            executor.shutdown(wait=False)
