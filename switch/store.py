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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

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
DIRECTORY_COLUMNS = "citizen_id, participant_bic, account_id, holder_name, updated_at, updated_by"
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
LISTED_COLUMNS = f"{TRANSFER_COLUMNS}, final_at, cycle_id"
MAX_DIRECTORY_CHANGES = 1_000  # read at once, by the directory API or a process catching up
# Sums of amounts, exact however large: SQLite's sum() stops with "integer overflow" past
# 2^63 (twelve rejected 18-digit amounts did it, and the admin stats answered 500 for good),
# and PostgreSQL's bigint would too. Each amount is summed in two parts, its billions and the
# rest, each part's sum holding a billion rows of the largest amount a row can hold; Python
# joins them (`joined_vnd`). Both databases truncate division towards zero and give a
# remainder the dividend's sign, so the parts add back to the amount for any sign.
AMOUNT_SPLIT = 10**9


def split_sum(column: str) -> str:
    """Two SQL sums, high part then low part, of an amount column (`joined_vnd` adds them)."""
    return (f"coalesce(sum({column} / {AMOUNT_SPLIT}), 0),"
            f" coalesce(sum({column} % {AMOUNT_SPLIT}), 0)")


def joined_vnd(high: Any, low: Any) -> int:
    """The exact sum from `split_sum`'s two parts (ints, or PostgreSQL's numeric)."""
    return int(high) * AMOUNT_SPLIT + int(low)


def joined_rows(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows ending in `split_sum`'s two parts, each with the exact sum in their place."""
    return [(*row[:-2], joined_vnd(row[-2], row[-1])) for row in rows]


class JournalFailed(Exception):
    """The journal could not write: the switch takes nothing more until restarted."""


class JournalBusy(Exception):
    """More writes are queued than the journal's limit: refuse, nothing was taken."""


class WriteRefused(Exception):
    """The database refused this write (a constraint, a value out of range); nothing of it
    was stored, and the journal goes on."""


class JournalInconsistent(Exception):
    """The journal's rows break an invariant a report rests on (a cycle whose nets do not sum
    to zero, a statement that disagrees with its net): a bug, or a journal changed by hand.
    The report is refused with this sentence and the violation logged; the switch goes on."""


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
class Decided:
    """What a journal shared by several switch processes decided otherwise than the writing
    process asked, per key (end-to-end id, or return id): `reason` is DUPL for an id another
    process took first, AM04 for a cap other processes' holds left too little of, DU05 for a
    return id taken meanwhile; `state`, `reason_code` and `reason_by` are the journal's word
    on a transfer another process made final first. `cycle_id` alone (no state, no reason):
    taken as asked, in the cycle the journal had open at its write (a transfer's settlement
    or a return), which another process's close made other than the one asked. A journal of
    one process decides nothing of the kind and returns None instead."""

    reason: str | None = None
    state: TransferState | None = None
    reason_code: str | None = None
    reason_by: str | None = None
    cycle_id: int | None = None


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
    def record_directory(self, changes: Sequence[DirectoryChange]
                         ) -> asyncio.Future[dict[str, str] | None]: ...
    async def describe(self, end_to_end_id: str) -> dict[str, Any] | None: ...
    async def transfers(self, state: str | None = None, participant: str | None = None,
                        since_s: float | None = None, limit: int = 100,
                        oldest_first: bool = False) -> tuple[list[JournalTransfer], bool]: ...
    async def directory_changes(self, citizen_id: str | None = None,
                                participant_bic: str | None = None, after_seq: int = 0,
                                limit: int = MAX_DIRECTORY_CHANGES) -> list[dict[str, Any]]: ...
    async def directory_now(self) -> tuple[list[DirectoryEntry], int]: ...
    async def totals(self) -> tuple[list[tuple[str, str, int, int]], tuple[int, int]]: ...
    async def cycle_flows(self, cycle_id: int) -> CycleFlows | None: ...
    async def statement_entries(self, cycle_id: int, bic: str, after: tuple[float, str],
                                limit: int) -> list[tuple[str, int, bool, float, str, str]]: ...
    async def open_cycle_now(self) -> tuple[int | None, int]: ...
    async def known_ids_now(self) -> set[str]: ...
    async def cycle_moves_now(self, cycle_id: int) -> list[tuple[str, str, int]]: ...
    async def returned_ids_now(self) -> set[str]: ...
    async def settings_now(self) -> list[tuple[str, int | None, bool]]: ...
    async def in_flight_now(self) -> list[Transfer]: ...
    async def notices_due_now(self) -> NoticesDue: ...
    def record_answers(self, creditor_bic: str,
                       answers: Sequence[tuple[str, TransferState, str | None]], now_s: float
                       ) -> asyncio.Future[list[Final]]: ...


class JournalReads:
    """The reads every journal makes, written once: each store gives `read` and its own
    dialect's statements (`_SQL`, by name; parameters by number, the same in each, written
    `_PLACEHOLDER` and the number)."""

    _SQL: dict[str, str]
    _PLACEHOLDER: str

    async def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def message_digest(self, sender_bic: str, msg_id: str) -> bytes | None:
        """The SHA-256 of the body the sender first sent under `msg_id`, or None."""
        rows = await self.read(self._SQL["digest"], (sender_bic, msg_id))
        return bytes(rows[0][0]) if rows else None

    async def describe(self, end_to_end_id: str) -> dict[str, Any] | None:
        """As JournalReader.describe: the transfer, its history and its return; None for an
        unknown id."""
        rows = await self.read(self._SQL["listed_one"], (end_to_end_id,))
        return described(rows[0], await self.read(self._SQL["history"], (end_to_end_id,)),
                         await self.read(self._SQL["return_of"], (end_to_end_id,))
                         ) if rows else None

    async def transfers(self, state: str | None = None, participant: str | None = None,
                        since_s: float | None = None, limit: int = 100,
                        oldest_first: bool = False) -> tuple[list[JournalTransfer], bool]:
        """As JournalReader.transfers: a listing of the journal, and whether more matched."""
        sql, params = listing(state, participant, since_s, limit, oldest_first,
                              self._PLACEHOLDER)
        return listed(await self.read(sql, params), limit, oldest_first)

    async def directory_changes(self, citizen_id: str | None = None,
                                participant_bic: str | None = None, after_seq: int = 0,
                                limit: int = MAX_DIRECTORY_CHANGES) -> list[dict[str, Any]]:
        """Journaled directory changes after `after_seq`, oldest first, of one citizen id
        and/or of one participant's entries (made by it or by the registry) when given."""
        rows = await self.read(self._SQL["directory_changes"],
                               (after_seq, citizen_id, participant_bic, limit))
        return [dict(zip(("seq", "citizen_id", "action", "participant_bic", "account_id",
                          "holder_name", "changed_by", "at"), row, strict=True)) for row in rows]

    async def totals(self) -> tuple[list[tuple[str, str, int, int]], tuple[int, int]]:
        """Transfers by (state, reason code): count and VND; and settled returns: count, VND."""
        by_state = joined_rows(await self.read(self._SQL["totals"]))
        returns = joined_rows(await self.read(self._SQL["returned_totals"]))
        return by_state, returns[0]  # type: ignore[return-value]

    async def cycle_flows(self, cycle_id: int) -> CycleFlows | None:
        """The cycle's bounds and what settled in it, or None for an unknown cycle."""
        bounds = await self.read(self._SQL["cycle"], (cycle_id,))
        if not bounds:
            return None
        transfers = joined_rows(await self.read(self._SQL["cycle_transfers"], (cycle_id,)))
        returns = joined_rows(await self.read(self._SQL["cycle_returns"], (cycle_id,)))
        return CycleFlows(bounds[0][0], bounds[0][1], transfers, returns)  # type: ignore[arg-type]

    async def statement_entries(self, cycle_id: int, bic: str, after: tuple[float, str],
                                limit: int) -> list[tuple[str, int, bool, float, str, str]]:
        """A participant's settled movements in a cycle, in (booked at, reference) order, the
        next `limit` after `after` (a page: (0.0, "") for the first): reference (end-to-end
        or return id), VND, credit?, booked at (unix s), counterparty BIC, transfer|return."""
        return [(ref, amount, bool(credit), at, other, kind) for ref, amount, credit, at, other,
                kind in await self.read(self._SQL["statement"], (cycle_id, bic, *after, limit))]

    async def open_cycle_now(self) -> tuple[int | None, int]:
        """The open cycle's id (None if none is open) and the highest id ever used."""
        rows = await self.read(self._SQL["open_cycle"])
        return rows[0][0], rows[0][1]

    async def directory_now(self) -> tuple[list[DirectoryEntry], int]:
        """Every active directory entry, and the number (seq) of the last change they hold at
        least: changes after it may be in them already (applying one again does no harm)."""
        last_seq = (await self.read(self._SQL["directory_seq"]))[0][0]
        return [DirectoryEntry(*row) for row in await self.read(self._SQL["directory"])], last_seq

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
        """A row of LISTED_COLUMNS."""
        return cls(transfer_of_row(row), row[-2], row[-1])

    def as_dict(self) -> dict[str, Any]:
        """As the admin API and `switchlab journal --json` give it: times in ISO 8601 UTC; an
        amount of None is one refused AM12 whose text was no whole number of dong (the
        journal keeps 0 for it: the switch takes no other amount of 0)."""
        t = self.transfer
        return {
            "end_to_end_id": t.wire_id, "tx_id": t.tx_id, "msg_id": t.msg_id,
            "debtor_bic": t.debtor_bic, "creditor_bic": t.creditor_bic,
            "amount_vnd": t.amount_vnd or None, "mode": "bulk" if t.bulk else "instant",
            "state": str(t.state), "reason_code": t.reason_code, "reason_by": t.reason_by,
            "received_at": iso_utc(t.received_at),
            "final_at": iso_utc(self.final_at) if self.final_at is not None else None,
            "cycle_id": self.cycle_id,
        }


def listing(state: str | None, participant: str | None, since_s: float | None, limit: int,
            oldest_first: bool, placeholder: str) -> tuple[str, list[Any]]:
    """The statement and parameters of a listing (JournalReader.transfers' arguments) in a
    dialect whose parameters are `placeholder` and a number (?1, $1); it asks for one row
    more than `limit`, to say whether more matched. Raises ValueError for a limit outside 1
    to MAX_LISTED_TRANSFERS."""
    if not 1 <= limit <= MAX_LISTED_TRANSFERS:
        raise ValueError(f"limit {limit} is not from 1 to {MAX_LISTED_TRANSFERS:,}")
    where, params = ["TRUE"], []

    def parameter(value: Any) -> str:
        params.append(value)
        return f"{placeholder}{len(params)}"

    if state is not None:
        where.append(f"state = {parameter(state)}")
    if participant is not None:
        bic = parameter(participant)
        where.append(f"(debtor_bic = {bic} OR creditor_bic = {bic})")
    if since_s is not None:
        where.append(f"received_at >= {parameter(since_s)}")
    order = "ASC" if oldest_first else "DESC"
    return (f"SELECT {LISTED_COLUMNS} FROM transfers WHERE {' AND '.join(where)}"
            f" ORDER BY received_at {order}, end_to_end_id {order}"
            f" LIMIT {parameter(limit + 1)}"), params


def listed(rows: Sequence[Sequence[Any]], limit: int, oldest_first: bool
           ) -> tuple[list[JournalTransfer], bool]:
    """A listing's rows (`listing`) as transfers in the order received, and whether more
    matched than `limit`."""
    found = [JournalTransfer.from_row(row) for row in rows[:limit]]
    if not oldest_first:
        found.reverse()
    return found, len(rows) > limit


def described(row: Sequence[Any], history: Iterable[Sequence[Any]],
              returned: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """A transfer as `describe` gives it, from its row (LISTED_COLUMNS), its transitions
    (from, to, reason code, at) and its return's row, if any (id, VND, reason, at, cycle)."""
    return JournalTransfer.from_row(row).as_dict() | {
        "history": [{"from": old, "to": new, "reason_code": reason, "at": iso_utc(at)}
                    for old, new, reason, at in history],
        "return": None if not returned else dict(zip(
            ("return_id", "amount_vnd", "reason_code", "settled_at", "cycle_id"),
            (*returned[0][:3], iso_utc(returned[0][3]), returned[0][4]), strict=True))}


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
        rows = self._rows(_SQLITE_READS["listed_one"], (end_to_end_id,))
        return described(rows[0], self._rows(_SQLITE_READS["history"], (end_to_end_id,)),
                         self._rows(_SQLITE_READS["return_of"], (end_to_end_id,))
                         ) if rows else None

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
        sql, params = listing(state, participant, since_s, limit, oldest_first, "?")
        return listed(self._rows(sql, params), limit, oldest_first)


_SQLITE_READS = {
    "digest": "SELECT body_sha256 FROM messages WHERE sender_bic=?1 AND msg_id=?2",
    "listed_one": f"SELECT {LISTED_COLUMNS} FROM transfers WHERE end_to_end_id=?1",
    "return_of": "SELECT return_id, amount_vnd, reason_code, settled_at, cycle_id FROM returns"
                 " WHERE end_to_end_id=?1",
    "directory": f"SELECT {DIRECTORY_COLUMNS} FROM directory",
    "directory_seq": "SELECT coalesce(max(seq), 0) FROM directory_changes",
    "directory_changes": (
        "SELECT seq, citizen_id, action, participant_bic, account_id, holder_name, changed_by,"
        " at FROM directory_changes WHERE seq > ?1 AND (?2 IS NULL OR citizen_id = ?2)"
        " AND (?3 IS NULL OR participant_bic = ?3) ORDER BY seq LIMIT ?4"),
    "history": "SELECT from_state, to_state, reason_code, at FROM transitions"
               " WHERE end_to_end_id=?1 ORDER BY seq",
    "totals": f"SELECT state, coalesce(reason_code, ''), count(*), {split_sum('amount_vnd')}"
              " FROM transfers GROUP BY 1, 2",
    "returned_totals": f"SELECT count(*), {split_sum('amount_vnd')} FROM returns",
    "cycle": "SELECT opened_at, closed_at FROM cycles WHERE cycle_id=?1",
    "cycle_transfers": f"SELECT debtor_bic, creditor_bic, count(*), {split_sum('amount_vnd')}"
                       " FROM transfers WHERE cycle_id=?1 GROUP BY debtor_bic, creditor_bic",
    "cycle_returns": f"SELECT creditor_bic, debtor_bic, count(*), {split_sum('amount_vnd')}"
                     " FROM returns WHERE cycle_id=?1 GROUP BY creditor_bic, debtor_bic",
    "statement": (
        "SELECT * FROM (SELECT end_to_end_id AS ref, amount_vnd, creditor_bic = ?2,"
        " final_at AS at, CASE WHEN creditor_bic = ?2 THEN debtor_bic ELSE creditor_bic END,"
        " 'transfer' FROM transfers WHERE cycle_id=?1 AND (debtor_bic=?2 OR creditor_bic=?2)"
        " UNION ALL SELECT return_id, amount_vnd, debtor_bic = ?2, settled_at,"
        " CASE WHEN debtor_bic = ?2 THEN creditor_bic ELSE debtor_bic END, 'return'"
        " FROM returns WHERE cycle_id=?1 AND (debtor_bic=?2 OR creditor_bic=?2))"
        " WHERE at > ?3 OR (at = ?3 AND ref > ?4) ORDER BY at, ref LIMIT ?5"),
    "open_cycle": "SELECT (SELECT max(cycle_id) FROM cycles WHERE closed_at IS NULL),"
                  " (SELECT coalesce(max(cycle_id), 0) FROM cycles)",
}


class Store(GroupCommit, JournalReads):
    """The switch's durable state in one SQLite file: batched durable writes, off-loop reads.
    One switch process only: its memory decides duplicates, caps and cycles."""

    shared = False
    _SQL = _SQLITE_READS
    _PLACEHOLDER = "?"

    def __init__(self, path: Path, events: SwitchEvents | None = None,
                 max_queued_writes: int = 10_000, max_batch: int = 512) -> None:
        super().__init__(events, max_queued_writes, max_batch)
        self.path = path
        if path.is_dir():
            raise NotAJournal(f"journal_path {path} is a folder; name a file in it, such as "
                              f"{path / 'switch.sqlite'}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with _connect(path) as setup:
                setup.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as error:  # a corrupt file, a folder we cannot write
            raise NotAJournal(f"journal_path {path}: cannot open it as a switch journal: "
                              f"{error}") from None
        self._writer_executor = ThreadPoolExecutor(1, thread_name_prefix="journal-writer")
        self._reader_executor = ThreadPoolExecutor(1, thread_name_prefix="journal-reader")
        self._writer_connection = _connect(path)
        self._reader_connection = _connect(path, readonly=True)
        self._read_lock = threading.Lock()
        # What an operator asks (the admin API) reads on a connection and thread of its own,
        # so that a long listing never holds up the switch's own reads.
        self._looking = JournalReader(path)
        self._looking_executor = ThreadPoolExecutor(1, thread_name_prefix="journal-looking")

    # ---- the writer ---------------------------------------------------------------------

    async def start(self) -> None:
        self._start_writer()

    async def close(self) -> None:
        """Commit what was already taken, then close."""
        await self._stop_writer()
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
        return self._enqueue(statements)

    async def write(self, statements: Statements) -> None:
        """`submit` and wait until durable."""
        await self.submit(statements)

    async def _commit(self, batch: list[QueuedWrite]) -> list[Any]:
        refusals = await asyncio.get_running_loop().run_in_executor(
            self._writer_executor, self._transaction, batch)
        return [None if refusal is None else WriteRefused(str(refusal)) for refusal in refusals]

    def _transaction(self, writes: list[QueuedWrite]) -> list[BaseException | None]:
        """One transaction, one fsync. Rows the database refuses undo their own write alone:
        then the batch is done again with a savepoint per write (the common batch pays for no
        savepoint; a refused one costs one more transaction). Any other error undoes all and
        is raised."""
        connection = self._writer_connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for write in writes:
                for sql, rows in write.payload:
                    connection.executemany(sql, rows)
        except _REFUSED:
            connection.execute("ROLLBACK")
            return self._transaction_each_alone(writes)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return [None] * len(writes)

    def _transaction_each_alone(self, writes: list[QueuedWrite]) -> list[BaseException | None]:
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

    def record_answers(self, creditor_bic: str,
                       answers: Sequence[tuple[str, TransferState, str | None]], now_s: float
                       ) -> asyncio.Future[list[Final]]:
        """Answers to transfers this process does not await: none to take, since one process
        awaits every transfer it forwarded (late, duplicate or unknown: refused 409)."""
        taken: asyncio.Future[list[Final]] = asyncio.get_running_loop().create_future()
        taken.set_result([])
        return taken

    def mark_sent(self, kind: str, keys: Iterable[str]) -> asyncio.Future[None]:
        """Notices delivered: `kind` is creditor, debtor (end-to-end ids) or return (ids)."""
        return self.submit([(_MARK_SENT[kind], [(key,) for key in keys])])

    def save_settings(self, bic: str, position_limit_vnd: int, signed_off: bool
                      ) -> asyncio.Future[None]:
        return self.submit([(_SAVE_SETTINGS, [(bic, position_limit_vnd, int(signed_off))])])

    def record_directory(self, changes: Sequence[DirectoryChange]
                         ) -> asyncio.Future[dict[str, str] | None]:
        """Directory entries linked, updated or unlinked, each with its journal line, in one
        write, as this process's memory decided them (None: nothing decided otherwise).
        Refused (WriteRefused) when it would link one account to two citizen ids."""
        kept = [(c.entry.citizen_id, c.entry.participant_bic, c.entry.account_id,
                 c.entry.holder_name, c.at, c.changed_by) for c in changes if c.action != "unlink"]
        removed = [(c.entry.citizen_id, c.entry.participant_bic, c.entry.account_id)
                   for c in changes if c.action == "unlink"]
        return self.submit([(_UNLINK, removed), (_LINK, kept), (_INSERT_DIRECTORY_CHANGE, [
            (c.entry.citizen_id, c.action, c.entry.participant_bic, c.entry.account_id,
             c.entry.holder_name, c.changed_by, c.at) for c in changes])])

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

    # ---- what an operator looks at (the admin API), on a connection of its own -----------

    async def _look(self, query: Callable[[JournalReader], T]) -> T:
        """`query` on the operators' read-only reader, off the event loop and off the
        switch's own reader (a listing may read the whole table)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._looking_executor, query, self._looking)

    async def describe(self, end_to_end_id: str) -> dict[str, Any] | None:
        return await self._look(lambda journal: journal.describe(end_to_end_id))

    async def transfers(self, state: str | None = None, participant: str | None = None,
                        since_s: float | None = None, limit: int = 100,
                        oldest_first: bool = False) -> tuple[list[JournalTransfer], bool]:
        return await self._look(lambda journal: journal.transfers(
            state, participant, since_s, limit, oldest_first))

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
        return joined_rows(await self.read(  # type: ignore[return-value]
            f"SELECT debtor_bic, creditor_bic, {split_sum('amount_vnd')} FROM transfers"
            f" WHERE cycle_id=? GROUP BY 1, 2 UNION ALL SELECT creditor_bic, debtor_bic,"
            f" {split_sum('amount_vnd')} FROM returns WHERE cycle_id=? GROUP BY 1, 2",
            (cycle_id, cycle_id)))

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
