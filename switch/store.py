"""The journal: every SQL statement of the switch, the schema, and group commit, in SQLite.

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
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

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
CREATE TABLE IF NOT EXISTS directory (
    citizen_id TEXT PRIMARY KEY,
    participant_bic TEXT NOT NULL,
    account_id TEXT NOT NULL,
    holder_name TEXT NOT NULL,
    updated_at REAL NOT NULL,
    updated_by TEXT NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS directory_by_account ON directory(participant_bic, account_id);
CREATE TABLE IF NOT EXISTS directory_changes (
    seq INTEGER PRIMARY KEY,
    citizen_id TEXT NOT NULL,
    action TEXT NOT NULL,
    participant_bic TEXT NOT NULL,
    account_id TEXT NOT NULL,
    holder_name TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS directory_changes_by_citizen ON directory_changes(citizen_id);
"""

# Notice flags on a transfer or a return: whether a participant still has to be told.
NOTICE_NONE = 0
NOTICE_DUE = 1
NOTICE_SENT = 2

_TRANSFER_COLUMNS = ("end_to_end_id, tx_id, msg_id, debtor_bic, creditor_bic, amount_vnd, bulk,"
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
_LINK = (
    "INSERT INTO directory (citizen_id, participant_bic, account_id, holder_name, updated_at,"
    " updated_by) VALUES (?,?,?,?,?,?) ON CONFLICT(citizen_id) DO UPDATE SET"
    " participant_bic=excluded.participant_bic, account_id=excluded.account_id,"
    " holder_name=excluded.holder_name, updated_at=excluded.updated_at,"
    " updated_by=excluded.updated_by"
)
_UNLINK = "DELETE FROM directory WHERE citizen_id=? AND participant_bic=? AND account_id=?"
_INSERT_DIRECTORY_CHANGE = (
    "INSERT INTO directory_changes (citizen_id, action, participant_bic, account_id,"
    " holder_name, changed_by, at) VALUES (?,?,?,?,?,?,?)"
)
_DIRECTORY_COLUMNS = "citizen_id, participant_bic, account_id, holder_name, updated_at, updated_by"
_OPEN_CYCLE = "INSERT INTO cycles (cycle_id, opened_at) VALUES (?, ?)"
_CLOSE_CYCLE = "UPDATE cycles SET closed_at=? WHERE cycle_id=?"
MAX_IDS_PER_QUERY = 500  # under SQLite's limit on bound parameters
# A value the database refuses is that write's fault, never the storage's.
_REFUSED = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError,
            sqlite3.ProgrammingError, OverflowError,
            ValueError, TypeError)

Statements = Sequence[tuple[str, Sequence[Sequence[Any]]]]
T = TypeVar("T")
MAX_LISTED_TRANSFERS = 1_000  # a listing of the journal, for a person or a tool looking in
_JOURNAL_COLUMNS = frozenset({"end_to_end_id", "tx_id", "msg_id", "debtor_bic", "creditor_bic",
                              "amount_vnd", "state", "reason_code", "reason_by", "bulk",
                              "received_at", "final_at", "cycle_id"})
_LISTED_COLUMNS = (f"{_TRANSFER_COLUMNS}, final_at, cycle_id")


class JournalFailed(Exception):
    """The journal could not write: the switch takes nothing more until restarted."""


class JournalBusy(Exception):
    """More writes are queued than the journal's limit: refuse, nothing was taken."""


class WriteRefused(Exception):
    """The database refused this write (a constraint, a value out of range); nothing of it
    was stored, and the journal goes on."""


class NotAJournal(Exception):
    """The file is missing, unreadable, or not a switch journal; the message says which."""


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
class DirectoryEntry:
    """One active link: the citizen id's payout account, as the directory holds it."""

    citizen_id: str
    participant_bic: str
    account_id: str
    holder_name: str
    updated_at: float = 0.0  # unix s
    updated_by: str = ""  # the participant's BIC, or "registry" for the operator's import

    def as_dict(self) -> dict[str, object]:
        return {"citizen_id": self.citizen_id, "participant_bic": self.participant_bic,
                "account_id": self.account_id, "holder_name": self.holder_name,
                "updated_at": self.updated_at, "updated_by": self.updated_by}


@dataclass(frozen=True, slots=True)
class DirectoryChange:
    """A change to the directory as it is journaled: link, update or unlink, by whom, when."""

    action: str
    entry: DirectoryEntry
    changed_by: str
    at: float  # unix s


@dataclass(slots=True)
class _Write:
    statements: Statements
    future: asyncio.Future[None]


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=5000")
    if readonly:
        connection.execute("PRAGMA query_only=1")
    return connection


def _transfer(row: Sequence[Any]) -> Transfer:
    """A journal row (the columns of _TRANSFER_COLUMNS) as a Transfer: written once here."""
    return Transfer(
        end_to_end_id=row[0], tx_id=row[1], msg_id=row[2], debtor_bic=row[3],
        creditor_bic=row[4], amount_vnd=row[5], bulk=bool(row[6]), received_at=row[7],
        state=TransferState(row[8]), reason_code=row[9], reason_by=row[10],
    )


def iso_utc(timestamp_s: float) -> str:
    """Unix time as ISO 8601 in UTC, to the millisecond: 2026-11-20T08:30:15.123Z."""
    return datetime.fromtimestamp(timestamp_s, UTC).isoformat(timespec="milliseconds"
                                                              ).replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class JournalTransfer:
    """A transfer as the journal holds it, with when it became final (unix s) and the
    settlement cycle it settled in, for whoever looks into the journal."""

    transfer: Transfer
    final_at: float | None
    cycle_id: int | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> JournalTransfer:
        """A row of _LISTED_COLUMNS."""
        return cls(_transfer(row), row[-2], row[-1])

    def as_dict(self) -> dict[str, Any]:
        """As the admin API and `switchlab journal --json` give it: times in ISO 8601 UTC."""
        t = self.transfer
        return {
            "end_to_end_id": t.end_to_end_id, "tx_id": t.tx_id, "msg_id": t.msg_id,
            "debtor_bic": t.debtor_bic, "creditor_bic": t.creditor_bic,
            "amount_vnd": t.amount_vnd, "mode": "bulk" if t.bulk else "instant",
            "state": str(t.state), "reason_code": t.reason_code, "reason_by": t.reason_by,
            "received_at": iso_utc(t.received_at),
            "final_at": iso_utc(self.final_at) if self.final_at is not None else None,
            "cycle_id": self.cycle_id,
        }


class JournalReader:
    """A journal opened read-only, to look into it: a transfer's history, what is in flight,
    a participant's transfers. It never creates, migrates or writes the file, and reads
    beside a running switch (WAL: a reader sees the last commit and blocks no writer).

    Raises NotAJournal, with a sentence naming the file, when the file is missing, is not
    a SQLite database, or has no journal tables.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            raise NotAJournal(f"{path}: no such file")
        if not path.is_file():
            raise NotAJournal(f"{path} is not a file")
        try:
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                       check_same_thread=False)
        except sqlite3.Error as error:
            raise NotAJournal(f"{path}: cannot open it read-only: {error}") from None
        try:
            self._db.execute("PRAGMA query_only=1")
            self._db.execute("PRAGMA busy_timeout=5000")
            tables = {name for (name,) in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(transfers)")}
        except sqlite3.Error as error:
            self._db.close()
            raise NotAJournal(f"{path} is not a switch journal: {error}") from None
        missing = ({"transfers", "transitions", "returns"} - tables) or (
            _JOURNAL_COLUMNS - columns)
        if missing:
            self._db.close()
            raise NotAJournal(f"{path} is a SQLite database but not a switch journal "
                              f"(no {', '.join(sorted(missing))})")

    def close(self) -> None:
        self._db.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise NotAJournal(f"{self.path}: cannot read it: {error}") from None

    def describe(self, end_to_end_id: str) -> dict[str, Any] | None:
        """The transfer (JournalTransfer.as_dict), its transitions in order (`history`: from,
        to, reason_code, at) and its return (`return`, or None); None for an unknown id."""
        rows = self._rows(f"SELECT {_LISTED_COLUMNS} FROM transfers WHERE end_to_end_id=?",
                          (end_to_end_id,))
        if not rows:
            return None
        history = [{"from": old, "to": new, "reason_code": reason, "at": iso_utc(at)}
                   for old, new, reason, at in self._rows(
                       "SELECT from_state, to_state, reason_code, at FROM transitions"
                       " WHERE end_to_end_id=? ORDER BY seq", (end_to_end_id,))]
        returned = [{"return_id": return_id, "amount_vnd": amount, "reason_code": reason,
                     "settled_at": iso_utc(at), "cycle_id": cycle}
                    for return_id, amount, reason, at, cycle in self._rows(
                        "SELECT return_id, amount_vnd, reason_code, settled_at, cycle_id"
                        " FROM returns WHERE end_to_end_id=?", (end_to_end_id,))]
        return JournalTransfer.from_row(rows[0]).as_dict() | {
            "history": history, "return": returned[0] if returned else None}

    def transfers(self, state: str | None = None, participant: str | None = None,
                  since_s: float | None = None, limit: int = 100, oldest_first: bool = False
                  ) -> tuple[list[JournalTransfer], bool]:
        """Transfers received at or after `since_s` (unix s), in `state`, with `participant`
        as debtor or creditor (each None: any): the `limit` newest, or oldest, in the order
        received; and whether more matched. Raises ValueError for a limit outside 1 to
        MAX_LISTED_TRANSFERS.

        Cost: by state (PENDING is what is in flight) an index finds them; by participant or
        time alone the whole table is read: on this project's machine 0.5 s per million
        transfers for a participant, 2.3 s to sort a million without any filter.
        """
        if not 1 <= limit <= MAX_LISTED_TRANSFERS:
            raise ValueError(f"limit {limit} is not from 1 to {MAX_LISTED_TRANSFERS:,}")
        where, params = ["1"], []
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if participant is not None:
            where.append("(debtor_bic = ? OR creditor_bic = ?)")
            params += [participant, participant]
        if since_s is not None:
            where.append("received_at >= ?")
            params.append(since_s)
        order = "ASC" if oldest_first else "DESC"
        rows = self._rows(
            f"SELECT {_LISTED_COLUMNS} FROM transfers WHERE {' AND '.join(where)}"
            f" ORDER BY received_at {order}, end_to_end_id {order} LIMIT ?",
            [*params, limit + 1])
        found = [JournalTransfer.from_row(row) for row in rows[:limit]]
        if not oldest_first:
            found.reverse()
        return found, len(rows) > limit


class Store:
    """The switch's durable state: batched durable writes, off-loop reads."""

    def __init__(self, path: Path, events: SwitchEvents | None = None,
                 max_queued_writes: int = 10_000, max_batch: int = 512) -> None:
        self.path = path
        self.events = events or SwitchEvents()
        path.parent.mkdir(parents=True, exist_ok=True)
        with _connect(path) as setup:
            setup.executescript(SCHEMA)
        self._max_batch = max_batch
        self._max_queued = max_queued_writes
        self._queue: deque[_Write] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._writer_executor = ThreadPoolExecutor(1, thread_name_prefix="journal-writer")
        self._reader_executor = ThreadPoolExecutor(1, thread_name_prefix="journal-reader")
        self._writer_connection = _connect(path)
        self._reader_connection = _connect(path, readonly=True)
        self._read_lock = threading.Lock()
        # What an operator asks (the admin API) reads on a connection and thread of its own,
        # so that a long listing never holds up the switch's own reads.
        self._looking = JournalReader(path)
        self._looking_executor = ThreadPoolExecutor(1, thread_name_prefix="journal-looking")
        self._writer_task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None

    # ---- the writer ---------------------------------------------------------------------

    def start(self) -> None:
        self._writer_task = asyncio.get_running_loop().create_task(self._write_loop())

    async def close(self) -> None:
        """Commit what was already taken, then close."""
        if self._writer_task is not None:
            self._closing = True
            self._wake.set()
            await asyncio.gather(self._writer_task, return_exceptions=True)
            self._writer_task = None
        self._writer_executor.shutdown(wait=True)
        self._reader_executor.shutdown(wait=True)
        self._looking_executor.shutdown(wait=True)
        self._writer_connection.close()
        self._reader_connection.close()
        self._looking.close()

    def submit(self, statements: Statements) -> asyncio.Future[None]:
        """Take (sql, rows) pairs to commit in one transaction with others queued; the future
        is done once they are durable. Raises JournalFailed after a storage failure and
        JournalBusy when the queue is full (nothing taken in either case); the future raises
        WriteRefused when the database refuses these rows."""
        if self.failure is not None:
            raise JournalFailed(f"the journal stopped after a storage failure: {self.failure}")
        if len(self._queue) >= self._max_queued:
            raise JournalBusy(f"{len(self._queue):,} journal writes queued; the limit is "
                              f"{self._max_queued:,}")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(statements, future))
        self._wake.set()
        return future

    async def write(self, statements: Statements) -> None:
        """`submit` and wait until durable."""
        await self.submit(statements)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            if not queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [queue.popleft() for _ in range(min(len(queue), self._max_batch))]
            started_s = time.perf_counter()
            try:
                refusals = await loop.run_in_executor(self._writer_executor, self._transaction,
                                                      batch)
            except Exception as error:  # the storage itself failed: stop taking anything
                self.failure = error
                failed = JournalFailed(f"the journal stopped after a storage failure: {error}")
                for write in [*batch, *queue]:
                    if not write.future.done():
                        write.future.set_exception(failed)
                queue.clear()
                self.events.journal_failed.fire(error=error)
                return
            for write, refusal in zip(batch, refusals, strict=True):
                if write.future.done():
                    continue
                if refusal is None:
                    write.future.set_result(None)
                else:
                    write.future.set_exception(WriteRefused(str(refusal)))
            self.events.journal_committed.fire(writes=len(batch),
                                               seconds=time.perf_counter() - started_s)

    def _transaction(self, writes: list[_Write]) -> list[BaseException | None]:
        """One transaction, one fsync. Rows the database refuses undo their own write alone:
        then the batch is done again with a savepoint per write (the common batch pays for no
        savepoint; a refused one costs one more transaction). Any other error undoes all and
        is raised."""
        connection = self._writer_connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                for sql, rows in write.statements:
                    connection.executemany(sql, rows)
        except _REFUSED:
            connection.execute("ROLLBACK")
            return self._transaction_each_alone(writes)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return [None] * len(writes)

    def _transaction_each_alone(self, writes: list[_Write]) -> list[BaseException | None]:
        connection = self._writer_connection
        refusals: list[BaseException | None] = []
        connection.execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                connection.execute("SAVEPOINT write")
                try:
                    for sql, rows in write.statements:
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
                   transfers: Sequence[Transfer], now_s: float) -> asyncio.Future[None]:
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

    def record_final(self, finals: Sequence[Final], now_s: float) -> asyncio.Future[None]:
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
                       now_s: float) -> asyncio.Future[None]:
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

    def record_directory(self, changes: Sequence[DirectoryChange]) -> asyncio.Future[None]:
        """Directory entries linked, updated or unlinked, each with its journal line, in one
        write. Refused (WriteRefused) when it would link one account to two citizen ids."""
        kept = [(c.entry.citizen_id, c.entry.participant_bic, c.entry.account_id,
                 c.entry.holder_name, c.at, c.changed_by) for c in changes if c.action != "unlink"]
        removed = [(c.entry.citizen_id, c.entry.participant_bic, c.entry.account_id)
                   for c in changes if c.action == "unlink"]
        return self.submit([(_UNLINK, removed), (_LINK, kept), (_INSERT_DIRECTORY_CHANGE, [
            (c.entry.citizen_id, c.action, c.entry.participant_bic, c.entry.account_id,
             c.entry.holder_name, c.changed_by, c.at) for c in changes])])

    def open_cycle(self, cycle_id: int, now_s: float) -> asyncio.Future[None]:
        return self.submit([(_OPEN_CYCLE, [(cycle_id, now_s)])])

    def close_cycle(self, closed_id: int, now_s: float) -> asyncio.Future[None]:
        """Close `closed_id` and open the next in one write."""
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
                f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE end_to_end_id IN"
                f" ({','.join('?' * len(chunk))})", chunk)
            found.update((row[0], _transfer(row)) for row in rows)
        return found

    async def message_digest(self, sender_bic: str, msg_id: str) -> bytes | None:
        """The SHA-256 of the body the sender first sent under `msg_id`, or None."""
        rows = await self.read("SELECT body_sha256 FROM messages WHERE sender_bic=? AND"
                               " msg_id=?", (sender_bic, msg_id))
        return bytes(rows[0][0]) if rows else None

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

    async def look(self, query: Callable[[JournalReader], T]) -> T:
        """`query` on the operators' read-only reader, off the event loop and off the
        switch's own reader (a listing may read the whole table)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._looking_executor, query, self._looking)

    async def totals(self) -> tuple[list[tuple[str, str, int, int]], tuple[int, int]]:
        """Transfers by (state, reason code): count and VND; and settled returns: count, VND."""
        by_state = await self.read(
            "SELECT state, coalesce(reason_code, ''), count(*), sum(amount_vnd) FROM transfers"
            " GROUP BY 1, 2")
        returns = await self.read("SELECT count(*), coalesce(sum(amount_vnd), 0) FROM returns")
        return by_state, returns[0]  # type: ignore[return-value]

    async def cycle_flows(self, cycle_id: int) -> CycleFlows | None:
        """The cycle's bounds and what settled in it, or None for an unknown cycle."""
        bounds = await self.read("SELECT opened_at, closed_at FROM cycles WHERE cycle_id=?",
                                 (cycle_id,))
        if not bounds:
            return None
        transfers = await self.read(
            "SELECT debtor_bic, creditor_bic, count(*), sum(amount_vnd) FROM transfers"
            " WHERE cycle_id=? GROUP BY debtor_bic, creditor_bic", (cycle_id,))
        returns = await self.read(
            "SELECT creditor_bic, debtor_bic, count(*), sum(amount_vnd) FROM returns"
            " WHERE cycle_id=? GROUP BY creditor_bic, debtor_bic", (cycle_id,))
        return CycleFlows(bounds[0][0], bounds[0][1], transfers, returns)  # type: ignore[arg-type]

    async def statement_entries(self, cycle_id: int, bic: str
                                ) -> list[tuple[str, int, bool, float, str, str]]:
        """A participant's settled movements in a cycle, in time order: reference (end-to-end
        or return id), VND, credit?, booked at (unix s), counterparty BIC, transfer|return."""
        rows = await self.read(
            "SELECT end_to_end_id, amount_vnd, creditor_bic = ?, final_at,"
            " CASE WHEN creditor_bic = ? THEN debtor_bic ELSE creditor_bic END, 'transfer'"
            " FROM transfers WHERE cycle_id=? AND (debtor_bic=? OR creditor_bic=?)"
            " UNION ALL SELECT return_id, amount_vnd, debtor_bic = ?, settled_at,"
            " CASE WHEN debtor_bic = ? THEN creditor_bic ELSE debtor_bic END, 'return'"
            " FROM returns WHERE cycle_id=? AND (debtor_bic=? OR creditor_bic=?) ORDER BY 4",
            (bic, bic, cycle_id, bic, bic, bic, bic, cycle_id, bic, bic))
        return [(ref, amount, bool(credit), at, other, kind)
                for ref, amount, credit, at, other, kind in rows]

    async def directory_changes(self, citizen_id: str | None = None,
                                participant_bic: str | None = None, after_seq: int = 0,
                                limit: int = 1_000) -> list[dict[str, Any]]:
        """Journaled directory changes after `after_seq`, oldest first, of one citizen id
        and/or of one participant's entries (made by it or by the registry) when given."""
        rows = await self.read(
            "SELECT seq, citizen_id, action, participant_bic, account_id, holder_name,"
            " changed_by, at FROM directory_changes WHERE seq > ?"
            " AND (? IS NULL OR citizen_id = ?) AND (? IS NULL OR participant_bic = ?)"
            " ORDER BY seq LIMIT ?",
            (after_seq, citizen_id, citizen_id, participant_bic, participant_bic, limit))
        keys = ("seq", "citizen_id", "action", "participant_bic", "account_id", "holder_name",
                "changed_by", "at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # ---- what a restarted switch reads, before it serves anyone ----------------------------

    def directory_now(self) -> Iterator[DirectoryEntry]:
        """Every active directory entry, streamed."""
        with self._read_lock:
            for row in self._reader_connection.execute(
                    f"SELECT {_DIRECTORY_COLUMNS} FROM directory"):
                yield DirectoryEntry(*row)

    def open_cycle_now(self) -> tuple[int | None, int]:
        """The open cycle's id (None if none is open) and the highest id ever used."""
        open_id = self._read_now("SELECT max(cycle_id) FROM cycles WHERE closed_at IS NULL")
        last_id = self._read_now("SELECT coalesce(max(cycle_id), 0) FROM cycles")
        return open_id[0][0], last_id[0][0]

    def known_ids_now(self) -> Iterator[str]:
        """Every end-to-end id the journal holds, streamed (millions after a payout day)."""
        with self._read_lock:
            for (end_to_end_id,) in self._reader_connection.execute(
                    "SELECT end_to_end_id FROM transfers"):
                yield end_to_end_id

    def cycle_moves_now(self, cycle_id: int) -> list[tuple[str, str, int]]:
        """(payer, payee, VND) settled in the cycle: transfers, then returns."""
        return self._read_now(  # type: ignore[return-value]
            "SELECT debtor_bic, creditor_bic, sum(amount_vnd) FROM transfers WHERE cycle_id=?"
            " GROUP BY 1, 2 UNION ALL SELECT creditor_bic, debtor_bic, sum(amount_vnd)"
            " FROM returns WHERE cycle_id=? GROUP BY 1, 2", (cycle_id, cycle_id))

    def returned_ids_now(self) -> set[str]:
        return {row[0] for row in self._read_now("SELECT end_to_end_id FROM returns")}

    def settings_now(self) -> list[tuple[str, int | None, bool]]:
        """(BIC, position limit in VND or None, signed off) as the operator last set them."""
        return [(bic, limit, bool(signed_off)) for bic, limit, signed_off in self._read_now(
            "SELECT bic, position_limit_vnd, signed_off FROM participant_settings")]

    def in_flight_now(self) -> list[Transfer]:
        return [_transfer(row) for row in self._read_now(
            f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE state='PENDING'")]

    def notices_due_now(self) -> NoticesDue:
        to_creditors = [_transfer(row) for row in self._read_now(
            f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE creditor_notice={NOTICE_DUE}")]
        to_debtors = [_transfer(row) for row in self._read_now(
            f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE debtor_notice={NOTICE_DUE}")]
        prefixed = ", ".join(f"t.{column}" for column in _TRANSFER_COLUMNS.split(", "))
        returns = [SettledReturn(return_id=row[0], original=_transfer(row[4:]),
                                 amount_vnd=row[1], reason_code=row[2])
                   for row in self._read_now(
                       f"SELECT r.return_id, r.amount_vnd, r.reason_code, r.debtor_bic,"
                       f" {prefixed} FROM returns r JOIN transfers t USING (end_to_end_id)"
                       f" WHERE r.debtor_notice={NOTICE_DUE}")]
        return NoticesDue(to_creditors, to_debtors, returns)
