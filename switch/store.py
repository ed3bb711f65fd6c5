"""The journal: every SQL statement of the switch, the schema, and group commit, in SQLite;
and what every journal offers the switch (`Journal`, group commit, the shapes of its records),
which the PostgreSQL journal (`switch/store_postgres.py`) offers too.

Cost sketch: a commit with fsync costs ~0.2 ms on this machine whatever its size, a row ~2 µs.
One commit per transfer would cap the switch near 6,000 state changes a second; so writers
queue their rows and one writer thread commits whatever has queued while the previous commit
ran (group commit). Each writer awaits its own commit: nothing is acknowledged before it is
durable, and a busy switch makes bigger, cheaper batches.

Writes are taken in order, synchronously (`submit` returns a future): the order in which the
switch decides things is the order in which the journal holds them, whatever the awaits after.
One write that the database refuses (a constraint, a value it cannot store) is refused alone:
the batch is retried write by write, and only that caller sees `WriteRefused`. The journal
stops (fail-stop) only for a storage failure: a disk that cannot write, a corrupt file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from switch.events import SwitchEvents
from switch.states import TransferState
from switch.transfer import Transfer

SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    end_to_end_id TEXT PRIMARY KEY,
    tx_id TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    debtor_bic TEXT NOT NULL,
    creditor_bic TEXT NOT NULL,
    amount_vnd INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason_code TEXT,
    reason_by TEXT,
    bulk INTEGER NOT NULL,
    received_at REAL NOT NULL,
    final_at REAL,
    cycle_id INTEGER,
    creditor_notice INTEGER NOT NULL DEFAULT 0,
    debtor_notice INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS transfers_by_state ON transfers(state);
CREATE INDEX IF NOT EXISTS transfers_by_cycle ON transfers(cycle_id);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY,
    end_to_end_id TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason_code TEXT,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS returns (
    return_id TEXT NOT NULL,
    end_to_end_id TEXT NOT NULL UNIQUE,
    creditor_bic TEXT NOT NULL,
    debtor_bic TEXT NOT NULL,
    amount_vnd INTEGER NOT NULL,
    reason_code TEXT NOT NULL,
    settled_at REAL NOT NULL,
    cycle_id INTEGER NOT NULL,
    debtor_notice INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (creditor_bic, return_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    sender_bic TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    body_sha256 BLOB NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (sender_bic, msg_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cycles (
    cycle_id INTEGER PRIMARY KEY,
    opened_at REAL NOT NULL,
    closed_at REAL
);
CREATE TABLE IF NOT EXISTS participant_settings (
    bic TEXT PRIMARY KEY,
    position_limit_vnd INTEGER,
    signed_off INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
"""

# Notice flags on a transfer or a return: whether a participant still has to be told.
NOTICE_NONE = 0
NOTICE_DUE = 1
NOTICE_SENT = 2

TRANSFER_COLUMNS = ("end_to_end_id, tx_id, msg_id, debtor_bic, creditor_bic, amount_vnd, bulk,"
                     " received_at, state, reason_code, reason_by")
INSERT_TRANSFER = (
    "INSERT INTO transfers (end_to_end_id, tx_id, msg_id, debtor_bic, creditor_bic, amount_vnd,"
    " state, reason_code, reason_by, bulk, received_at, final_at, cycle_id, creditor_notice,"
    " debtor_notice) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_MESSAGE = (
    "INSERT INTO messages (sender_bic, msg_id, body_sha256, received_at) VALUES (?,?,?,?)"
)
_FINISH_TRANSFER = (
    "UPDATE transfers SET state=?, reason_code=?, reason_by=?, final_at=?, cycle_id=?,"
    " creditor_notice=?, debtor_notice=? WHERE end_to_end_id=? AND state='PENDING'"
)
_RETURN_TRANSFER = (
    "UPDATE transfers SET state='RETURNED', reason_code=? WHERE end_to_end_id=? AND"
    " state='SETTLED'"
)
_INSERT_RETURN = (
    "INSERT INTO returns (return_id, end_to_end_id, creditor_bic, debtor_bic, amount_vnd,"
    " reason_code, settled_at, cycle_id) VALUES (?,?,?,?,?,?,?,?)"
)
_INSERT_TRANSITION = (
    "INSERT INTO transitions (end_to_end_id, from_state, to_state, reason_code, at)"
    " VALUES (?,?,?,?,?)"
)
_MARK_SENT = {
    "creditor": f"UPDATE transfers SET creditor_notice={NOTICE_SENT} WHERE end_to_end_id=?",
    "debtor": f"UPDATE transfers SET debtor_notice={NOTICE_SENT} WHERE end_to_end_id=?",
    "return": f"UPDATE returns SET debtor_notice={NOTICE_SENT} WHERE return_id=?",
}
_SAVE_SETTINGS = (
    "INSERT INTO participant_settings (bic, position_limit_vnd, signed_off) VALUES (?,?,?)"
    " ON CONFLICT(bic) DO UPDATE SET position_limit_vnd=excluded.position_limit_vnd,"
    " signed_off=excluded.signed_off"
)
_OPEN_CYCLE = "INSERT INTO cycles (cycle_id, opened_at) VALUES (?, ?)"
_CLOSE_CYCLE = "UPDATE cycles SET closed_at=? WHERE cycle_id=?"
MAX_IDS_PER_QUERY = 500  # under SQLite's limit on bound parameters
# A value the database refuses is that write's fault, never the storage's.
_REFUSED = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError,
            sqlite3.ProgrammingError, OverflowError,
            ValueError, TypeError)

Statements = Sequence[tuple[str, Sequence[Sequence[Any]]]]


class JournalFailed(Exception):
    """The journal could not write: the switch takes nothing more until restarted."""


class JournalBusy(Exception):
    """More writes are queued than the journal's limit: refuse, nothing was taken."""


class WriteRefused(Exception):
    """The database refused this write (a constraint, a value out of range); nothing of it
    was stored, and the journal goes on."""


@dataclass(frozen=True, slots=True)
class Final:
    """A transfer's final state as it is to be journaled, before memory knows it."""

    transfer: Transfer
    state: TransferState
    reason_code: str | None
    reason_by: str | None  # the BIC that gave the reason: the creditor, or the switch
    cycle_id: int | None  # the cycle it settles in; None when rejected
    tell_creditor: bool  # the creditor may be holding it: confirm or reject to it


@dataclass(frozen=True, slots=True)
class SettledReturn:
    """A pacs.004 item the switch settles: funds of a settled transfer going back."""

    return_id: str
    original: Transfer
    amount_vnd: int
    reason_code: str


@dataclass(frozen=True, slots=True)
class NoticesDue:
    """What the journal says participants still have to be told, after a restart."""

    to_creditors: list[Transfer]
    to_debtors: list[Transfer]
    returns: list[SettledReturn]


@dataclass(frozen=True, slots=True)
class CycleFlows:
    """A cycle's bounds and its settled flows (payer, payee, count, VND) for reports."""

    opened_at: float
    closed_at: float | None
    transfers: list[tuple[str, str, int, int]]
    returns: list[tuple[str, str, int, int]]


@dataclass(frozen=True, slots=True)
class Decided:
    """What a journal shared by several switch processes decided otherwise than the writing
    process asked, per key (end-to-end id, or return id): `reason` is DUPL for an id another
    process took first, AM04 for a cap other processes' holds left too little of, DU05 for a
    return id taken meanwhile; `state`, `reason_code` and `reason_by` are the journal's word
    on a transfer another process made final first. A journal of one process decides nothing
    of the kind and returns None instead."""

    reason: str | None = None
    state: TransferState | None = None
    reason_code: str | None = None
    reason_by: str | None = None


@dataclass(slots=True)
class QueuedWrite:
    payload: Any  # what the journal's own transaction code makes of it
    future: asyncio.Future[Any]


class Journal(Protocol):
    """What the switch asks of its journal, whichever database holds it.

    Writes return futures that are done once durable (WriteRefused when the database refused
    that write alone; JournalFailed, JournalBusy raised at once when nothing was taken).
    `shared` says whether other switch processes write the same journal: then the journal,
    not this process's memory, decides duplicates, caps, which answer finalizes a transfer
    and which cycle closes, and the writes return what it decided (`Decided` per key).
    """

    shared: bool
    failure: BaseException | None

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def fail(self, error: BaseException) -> None: ...
    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A query in the database's own dialect (diagnostics and tests)."""
    def record_new(self, sender_bic: str, msg_id: str, body_sha256: bytes,
                   transfers: Sequence[Transfer], now_s: float
                   ) -> asyncio.Future[dict[str, Decided] | None]: ...
    def record_final(self, finals: Sequence[Final], now_s: float
                     ) -> asyncio.Future[dict[str, Decided] | None]: ...
    def record_returns(self, returns: Sequence[SettledReturn], creditor_bic: str,
                       cycle_id: int, now_s: float
                       ) -> asyncio.Future[dict[str, Decided] | None]: ...
    def mark_sent(self, kind: str, keys: Iterable[str]) -> asyncio.Future[None]: ...
    def save_settings(self, bic: str, position_limit_vnd: int, signed_off: bool
                      ) -> asyncio.Future[None]: ...
    def open_cycle(self, cycle_id: int, now_s: float) -> asyncio.Future[None]: ...
    def close_cycle(self, closed_id: int, now_s: float, min_age_s: float | None = None
                    ) -> asyncio.Future[int | None]: ...
    async def lookup(self, end_to_end_ids: Sequence[str]) -> dict[str, Transfer]: ...
    async def message_digest(self, sender_bic: str, msg_id: str) -> bytes | None: ...
    async def returns_by_id(self, creditor_bic: str, return_ids: Sequence[str]
                            ) -> dict[str, tuple[str, int]]: ...
    async def history(self, end_to_end_id: str) -> list[dict[str, Any]]: ...
    async def totals(self) -> tuple[list[tuple[str, str, int, int]], tuple[int, int]]: ...
    async def cycle_flows(self, cycle_id: int) -> CycleFlows | None: ...
    async def statement_entries(self, cycle_id: int, bic: str
                                ) -> list[tuple[str, int, bool, float, str, str]]: ...
    async def open_cycle_now(self) -> tuple[int | None, int]: ...
    async def known_ids_now(self) -> set[str]: ...
    async def cycle_moves_now(self, cycle_id: int) -> list[tuple[str, str, int]]: ...
    async def returned_ids_now(self) -> set[str]: ...
    async def settings_now(self) -> list[tuple[str, int | None, bool]]: ...
    async def in_flight_now(self) -> list[Transfer]: ...
    async def notices_due_now(self) -> NoticesDue: ...


class SharedJournal(Journal, Protocol):
    """A journal several switch processes write at once (`store_postgres.py`): on top, the
    answers posted to a process that did not forward their transfers."""

    def record_answers(self, creditor_bic: str,
                       answers: Sequence[tuple[str, TransferState, str | None]], now_s: float
                       ) -> asyncio.Future[list[Final]]: ...


class JournalReads:
    """The reads every journal makes, written once: each store gives `read` and its own
    dialect's statements (`_SQL`, by name; parameters by number, the same in each)."""

    _SQL: dict[str, str]

    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def message_digest(self, sender_bic: str, msg_id: str) -> bytes | None:
        """The SHA-256 of the body the sender first sent under `msg_id`, or None."""
        rows = await self.read(self._SQL["digest"], (sender_bic, msg_id))
        return bytes(rows[0][0]) if rows else None

    async def history(self, end_to_end_id: str) -> list[dict[str, Any]]:
        """A transfer's transitions in order: from, to, reason code, at (unix s)."""
        rows = await self.read(self._SQL["history"], (end_to_end_id,))
        return [dict(zip(("from", "to", "reason_code", "at"), row, strict=True)) for row in rows]

    async def totals(self) -> tuple[list[tuple[str, str, int, int]], tuple[int, int]]:
        """Transfers by (state, reason code): count and VND; and settled returns: count, VND."""
        by_state = await self.read(self._SQL["totals"])
        returns = await self.read(self._SQL["returned_totals"])
        return by_state, returns[0]  # type: ignore[return-value]

    async def cycle_flows(self, cycle_id: int) -> CycleFlows | None:
        """The cycle's bounds and what settled in it, or None for an unknown cycle."""
        bounds = await self.read(self._SQL["cycle"], (cycle_id,))
        if not bounds:
            return None
        transfers = await self.read(self._SQL["cycle_transfers"], (cycle_id,))
        returns = await self.read(self._SQL["cycle_returns"], (cycle_id,))
        return CycleFlows(bounds[0][0], bounds[0][1], transfers, returns)  # type: ignore[arg-type]

    async def statement_entries(self, cycle_id: int, bic: str
                                ) -> list[tuple[str, int, bool, float, str, str]]:
        """A participant's settled movements in a cycle, in time order: reference (end-to-end
        or return id), VND, credit?, booked at (unix s), counterparty BIC, transfer|return."""
        return [(ref, amount, bool(credit), at, other, kind) for ref, amount, credit, at, other,
                kind in await self.read(self._SQL["statement"], (cycle_id, bic))]

    async def open_cycle_now(self) -> tuple[int | None, int]:
        """The open cycle's id (None if none is open) and the highest id ever used."""
        rows = await self.read(self._SQL["open_cycle"])
        return rows[0][0], rows[0][1]

    async def returned_ids_now(self) -> set[str]:
        return {row[0] for row in await self.read("SELECT end_to_end_id FROM returns")}

    async def settings_now(self) -> list[tuple[str, int | None, bool]]:
        """(BIC, position limit in VND or None, signed off) as the operator last set them."""
        return [(bic, limit, bool(signed_off)) for bic, limit, signed_off in await self.read(
            "SELECT bic, position_limit_vnd, signed_off FROM participant_settings")]


class GroupCommit:
    """Writes queued and committed together, in the order taken, by one writer task; each
    store supplies `_commit`, which runs one batch in one transaction and returns, per write,
    its result or the WriteRefused that refused it alone."""

    def __init__(self, events: SwitchEvents | None, max_queued_writes: int, max_batch: int
                 ) -> None:
        self.events = events or SwitchEvents()
        self._max_batch = max_batch
        self._max_queued = max_queued_writes
        self._queue: deque[QueuedWrite] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._writer_task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None

    def _start_writer(self) -> None:
        self._writer_task = asyncio.get_running_loop().create_task(self._write_loop())

    async def _stop_writer(self) -> None:
        """Commit what was already taken, then stop the writer."""
        if self._writer_task is not None:
            self._closing = True
            self._wake.set()
            await asyncio.gather(self._writer_task, return_exceptions=True)
            self._writer_task = None

    def _enqueue(self, payload: Any) -> asyncio.Future[Any]:
        """Take a write to commit with others queued; its future is done once durable.
        Raises JournalFailed after a storage failure and JournalBusy when the queue is full
        (nothing taken in either case)."""
        if self.failure is not None:
            raise JournalFailed(f"the journal stopped after a storage failure: {self.failure}")
        if len(self._queue) >= self._max_queued:
            raise JournalBusy(f"{len(self._queue):,} journal writes queued; the limit is "
                              f"{self._max_queued:,}")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(QueuedWrite(payload, future))
        self._wake.set()
        return future

    def fail(self, error: BaseException) -> None:
        """Stop taking writes (fail-stop): `error` is why, for every later caller."""
        if self.failure is not None:
            return
        self.failure = error
        failed = JournalFailed(f"the journal stopped after a storage failure: {error}")
        for write in self._queue:
            if not write.future.done():
                write.future.set_exception(failed)
        self._queue.clear()
        self.events.journal_failed.fire(error=error)

    async def _commit(self, batch: list[QueuedWrite]) -> list[Any]:
        raise NotImplementedError

    async def _write_loop(self) -> None:
        queue = self._queue
        while self.failure is None:
            if not queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [queue.popleft() for _ in range(min(len(queue), self._max_batch))]
            started_s = time.perf_counter()
            try:
                outcomes = await self._commit(batch)
            except Exception as error:  # the storage itself failed: stop taking anything
                failed = JournalFailed(f"the journal stopped after a storage failure: {error}")
                for write in batch:
                    if not write.future.done():
                        write.future.set_exception(failed)
                self.fail(error)
                return
            for write, outcome in zip(batch, outcomes, strict=True):
                if write.future.done():
                    continue
                if isinstance(outcome, WriteRefused):
                    write.future.set_exception(outcome)
                else:
                    write.future.set_result(outcome)
            self.events.journal_committed.fire(writes=len(batch),
                                               seconds=time.perf_counter() - started_s)


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=5000")
    if readonly:
        connection.execute("PRAGMA query_only=1")
    return connection


def transfer_of_row(row: Sequence[Any]) -> Transfer:
    """A journal row (the columns of TRANSFER_COLUMNS) as a Transfer: written once here."""
    return Transfer(
        end_to_end_id=row[0], tx_id=row[1], msg_id=row[2], debtor_bic=row[3],
        creditor_bic=row[4], amount_vnd=row[5], bulk=bool(row[6]), received_at=row[7],
        state=TransferState(row[8]), reason_code=row[9], reason_by=row[10],
    )


_SQLITE_READS = {
    "digest": "SELECT body_sha256 FROM messages WHERE sender_bic=?1 AND msg_id=?2",
    "history": "SELECT from_state, to_state, reason_code, at FROM transitions"
               " WHERE end_to_end_id=?1 ORDER BY seq",
    "totals": "SELECT state, coalesce(reason_code, ''), count(*), sum(amount_vnd)"
              " FROM transfers GROUP BY 1, 2",
    "returned_totals": "SELECT count(*), coalesce(sum(amount_vnd), 0) FROM returns",
    "cycle": "SELECT opened_at, closed_at FROM cycles WHERE cycle_id=?1",
    "cycle_transfers": "SELECT debtor_bic, creditor_bic, count(*), sum(amount_vnd)"
                       " FROM transfers WHERE cycle_id=?1 GROUP BY debtor_bic, creditor_bic",
    "cycle_returns": "SELECT creditor_bic, debtor_bic, count(*), sum(amount_vnd) FROM returns"
                     " WHERE cycle_id=?1 GROUP BY creditor_bic, debtor_bic",
    "statement": (
        "SELECT end_to_end_id, amount_vnd, creditor_bic = ?2, final_at,"
        " CASE WHEN creditor_bic = ?2 THEN debtor_bic ELSE creditor_bic END, 'transfer'"
        " FROM transfers WHERE cycle_id=?1 AND (debtor_bic=?2 OR creditor_bic=?2)"
        " UNION ALL SELECT return_id, amount_vnd, debtor_bic = ?2, settled_at,"
        " CASE WHEN debtor_bic = ?2 THEN creditor_bic ELSE debtor_bic END, 'return'"
        " FROM returns WHERE cycle_id=?1 AND (debtor_bic=?2 OR creditor_bic=?2) ORDER BY 4"),
    "open_cycle": "SELECT (SELECT max(cycle_id) FROM cycles WHERE closed_at IS NULL),"
                  " (SELECT coalesce(max(cycle_id), 0) FROM cycles)",
}


class Store(GroupCommit, JournalReads):
    """The switch's durable state in one SQLite file: batched durable writes, off-loop reads.
    One switch process only: its memory decides duplicates, caps and cycles."""

    shared = False
    _SQL = _SQLITE_READS

    def __init__(self, path: Path, events: SwitchEvents | None = None,
                 max_queued_writes: int = 10_000, max_batch: int = 512) -> None:
        super().__init__(events, max_queued_writes, max_batch)
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with _connect(path) as setup:
            setup.executescript(SCHEMA)
        self._writer_executor = ThreadPoolExecutor(1, thread_name_prefix="journal-writer")
        self._reader_executor = ThreadPoolExecutor(1, thread_name_prefix="journal-reader")
        self._writer_connection = _connect(path)
        self._reader_connection = _connect(path, readonly=True)
        self._read_lock = threading.Lock()

    # ---- the writer ---------------------------------------------------------------------

    async def start(self) -> None:
        self._start_writer()

    async def close(self) -> None:
        """Commit what was already taken, then close."""
        await self._stop_writer()
        self._writer_executor.shutdown(wait=True)
        self._reader_executor.shutdown(wait=True)
        self._writer_connection.close()
        self._reader_connection.close()

    def submit(self, statements: Statements) -> asyncio.Future[None]:
        """Take (sql, rows) pairs to commit in one transaction with others queued; the future
        is done once they are durable. Raises JournalFailed after a storage failure and
        JournalBusy when the queue is full (nothing taken in either case); the future raises
        WriteRefused when the database refuses these rows."""
        return self._enqueue(statements)

    async def write(self, statements: Statements) -> None:
        """`submit` and wait until durable."""
        await self.submit(statements)

    async def _commit(self, batch: list[QueuedWrite]) -> list[Any]:
        refusals = await asyncio.get_running_loop().run_in_executor(
            self._writer_executor, self._transaction, batch)
        return [None if refusal is None else WriteRefused(str(refusal)) for refusal in refusals]

    def _transaction(self, writes: list[QueuedWrite]) -> list[BaseException | None]:
        """One transaction, one fsync; each write in a savepoint of its own, so that rows the
        database refuses undo that write alone. Any other error undoes all and is raised."""
        connection = self._writer_connection
        refusals: list[BaseException | None] = []
        connection.execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                connection.execute("SAVEPOINT write")
                try:
                    for sql, rows in write.payload:
                        connection.executemany(sql, rows)
                except _REFUSED as error:
                    connection.execute("ROLLBACK TO write")
                    refusals.append(error)
                else:
                    refusals.append(None)
                connection.execute("RELEASE write")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return refusals

    # ---- what the switch writes ---------------------------------------------------------

    def record_new(self, sender_bic: str, msg_id: str, body_sha256: bytes,
                   transfers: Sequence[Transfer], now_s: float
                   ) -> asyncio.Future[dict[str, Decided] | None]:
        """A message and the transfers it brought: PENDING (about to be forwarded) or
        REJECTED at intake. Refused (WriteRefused) when the sender used the MsgId before."""
        rows = []
        transitions = []
        for t in transfers:
            rejected = t.state is TransferState.REJECTED
            rows.append((
                t.end_to_end_id, t.tx_id, t.msg_id, t.debtor_bic, t.creditor_bic, t.amount_vnd,
                t.state, t.reason_code, t.reason_by, int(t.bulk), now_s,
                now_s if rejected else None, None, NOTICE_NONE,
                NOTICE_DUE if rejected and t.bulk else NOTICE_NONE,
            ))
            transitions.append((t.end_to_end_id, None, t.state, t.reason_code, now_s))
        return self.submit([(_INSERT_MESSAGE, [(sender_bic, msg_id, body_sha256, now_s)]),
                            (INSERT_TRANSFER, rows), (_INSERT_TRANSITION, transitions)])

    def record_final(self, finals: Sequence[Final], now_s: float
                     ) -> asyncio.Future[dict[str, Decided] | None]:
        """PENDING transfers made final, with the notices now due (durable flags)."""
        rows = []
        transitions = []
        for f in finals:
            t = f.transfer
            rows.append((
                f.state, f.reason_code, f.reason_by, now_s, f.cycle_id,
                NOTICE_DUE if f.tell_creditor else NOTICE_NONE,
                NOTICE_DUE if t.bulk else NOTICE_NONE, t.end_to_end_id,
            ))
            transitions.append((t.end_to_end_id, TransferState.PENDING, f.state, f.reason_code,
                                now_s))
        return self.submit([(_FINISH_TRANSFER, rows), (_INSERT_TRANSITION, transitions)])

    def record_returns(self, returns: Sequence[SettledReturn], creditor_bic: str, cycle_id: int,
                       now_s: float) -> asyncio.Future[dict[str, Decided] | None]:
        """Settled returns, each owed to its debtor as a notice."""
        return self.submit([
            (_RETURN_TRANSFER, [(r.reason_code, r.original.end_to_end_id) for r in returns]),
            (_INSERT_RETURN, [(r.return_id, r.original.end_to_end_id, creditor_bic,
                               r.original.debtor_bic, r.amount_vnd, r.reason_code, now_s,
                               cycle_id) for r in returns]),
            (_INSERT_TRANSITION, [(r.original.end_to_end_id, TransferState.SETTLED,
                                   TransferState.RETURNED, r.reason_code, now_s)
                                  for r in returns]),
        ])

    def mark_sent(self, kind: str, keys: Iterable[str]) -> asyncio.Future[None]:
        """Notices delivered: `kind` is creditor, debtor (end-to-end ids) or return (ids)."""
        return self.submit([(_MARK_SENT[kind], [(key,) for key in keys])])

    def save_settings(self, bic: str, position_limit_vnd: int, signed_off: bool
                      ) -> asyncio.Future[None]:
        return self.submit([(_SAVE_SETTINGS, [(bic, position_limit_vnd, int(signed_off))])])

    def open_cycle(self, cycle_id: int, now_s: float) -> asyncio.Future[None]:
        return self.submit([(_OPEN_CYCLE, [(cycle_id, now_s)])])

    def close_cycle(self, closed_id: int, now_s: float, min_age_s: float | None = None
                    ) -> asyncio.Future[int | None]:
        """Close `closed_id` and open the next in one write. `min_age_s` is for a journal
        shared by several processes, each with its timer; here this process alone closes."""
        return self.submit([(_CLOSE_CYCLE, [(now_s, closed_id)]),
                            (_OPEN_CYCLE, [(closed_id + 1, now_s)])])

    # ---- what the switch reads while serving ----------------------------------------------

    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A query on the reader connection, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader_executor, self._read_now, sql, params)

    def _read_now(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            return self._reader_connection.execute(sql, params).fetchall()

    async def lookup(self, end_to_end_ids: Sequence[str]) -> dict[str, Transfer]:
        """Journaled transfers by end-to-end id; ids the journal does not hold are absent."""
        found: dict[str, Transfer] = {}
        for start in range(0, len(end_to_end_ids), MAX_IDS_PER_QUERY):
            chunk = end_to_end_ids[start:start + MAX_IDS_PER_QUERY]
            rows = await self.read(
                f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE end_to_end_id IN"
                f" ({','.join('?' * len(chunk))})", chunk)
            found.update((row[0], transfer_of_row(row)) for row in rows)
        return found

    async def returns_by_id(self, creditor_bic: str, return_ids: Sequence[str]
                            ) -> dict[str, tuple[str, int]]:
        """Returns the creditor already made under these RtrIds: id -> (end-to-end id, VND)."""
        found: dict[str, tuple[str, int]] = {}
        for start in range(0, len(return_ids), MAX_IDS_PER_QUERY):
            chunk = return_ids[start:start + MAX_IDS_PER_QUERY]
            rows = await self.read(
                "SELECT return_id, end_to_end_id, amount_vnd FROM returns WHERE creditor_bic=?"
                f" AND return_id IN ({','.join('?' * len(chunk))})", [creditor_bic, *chunk])
            found.update((row[0], (row[1], row[2])) for row in rows)
        return found

    # ---- what a restarted switch reads, before it serves anyone ----------------------------

    async def known_ids_now(self) -> set[str]:
        """Every end-to-end id the journal holds (millions after a payout day)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._reader_executor, self._known_ids)

    def _known_ids(self) -> set[str]:
        with self._read_lock:
            return {end_to_end_id for (end_to_end_id,) in self._reader_connection.execute(
                "SELECT end_to_end_id FROM transfers")}

    async def cycle_moves_now(self, cycle_id: int) -> list[tuple[str, str, int]]:
        """(payer, payee, VND) settled in the cycle: transfers, then returns."""
        return await self.read(  # type: ignore[return-value]
            "SELECT debtor_bic, creditor_bic, sum(amount_vnd) FROM transfers WHERE cycle_id=?"
            " GROUP BY 1, 2 UNION ALL SELECT creditor_bic, debtor_bic, sum(amount_vnd)"
            " FROM returns WHERE cycle_id=? GROUP BY 1, 2", (cycle_id, cycle_id))

    async def in_flight_now(self) -> list[Transfer]:
        return [transfer_of_row(row) for row in await self.read(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE state='PENDING'")]

    async def notices_due_now(self) -> NoticesDue:
        to_creditors = [transfer_of_row(row) for row in await self.read(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE creditor_notice={NOTICE_DUE}")]
        to_debtors = [transfer_of_row(row) for row in await self.read(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers WHERE debtor_notice={NOTICE_DUE}")]
        prefixed = ", ".join(f"t.{column}" for column in TRANSFER_COLUMNS.split(", "))
        returns = [SettledReturn(return_id=row[0], original=transfer_of_row(row[4:]),
                                 amount_vnd=row[1], reason_code=row[2])
                   for row in await self.read(
                       f"SELECT r.return_id, r.amount_vnd, r.reason_code, r.debtor_bic,"
                       f" {prefixed} FROM returns r JOIN transfers t USING (end_to_end_id)"
                       f" WHERE r.debtor_notice={NOTICE_DUE}")]
        return NoticesDue(to_creditors, to_debtors, returns)
