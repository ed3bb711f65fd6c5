"""The SQLite journal: the schema and every SQL statement of the switch for SQLite, written
with group commit (switch/group_commit.py) by one writer thread, read off the event loop.
One switch process only: its memory decides duplicates, caps and cycles. What every journal
offers is switch/journal.py; the PostgreSQL journal, shared by several processes, is
switch/store_postgres.py.

Writes are taken in order, synchronously (`submit` returns a future): the order in which the
switch decides things is the order in which the journal holds them, whatever the awaits after.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from switch.events import SwitchEvents
from switch.group_commit import GroupCommit, QueuedWrite
from switch.journal import (
    AMOUNT_SPLIT,
    ANSWER_ADMIN_CHANGE,
    FORWARD_SECRET_TABLE,
    INSERT_ADMIN_CHANGE,
    MAKE_FORWARD_SECRET,
    NOTICE_DUE,
    NOTICE_NONE,
    NOTICE_SENT,
    READ_FORWARD_SECRET,
    SELECT_ADMIN_CHANGE,
    SQLITE_KEYS_OF_JSON,
    TRANSFER_COLUMNS,
    JournalReads,
    JournalTransfer,
    joined_rows,
    new_forward_secret,
    reads_for,
    split_sum,
    transfer_of_row,
)
from switch.journal_errors import NotAJournal, WriteRefused
from switch.journal_reader import JournalReader
from switch.records import (
    AdminAnswer,
    AdminChange,
    Decided,
    DirectoryChange,
    Final,
    NoticesDue,
    SettledReturn,
)
from switch.states import TransferState
from switch.transfer import ForwardIds, Transfer

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
-- A business day's transfers found without reading the others (retention, switch/retention.py;
-- listings since a time), and a transfer's history without reading every transition.
CREATE INDEX IF NOT EXISTS transfers_by_received ON transfers(received_at);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY,
    end_to_end_id TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason_code TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_by_transfer ON transitions(end_to_end_id);
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
CREATE TABLE IF NOT EXISTS admin_changes (
    idempotency_key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    at REAL NOT NULL,
    status INTEGER,
    answer TEXT
) WITHOUT ROWID;
-- Totals kept as counters (issue #24): `GET /v1/admin/stats` read every transfer ever
-- journaled. The writer adds each write's changes to them, one upsert per (state, reason) the
-- write touched, in the write's own transaction (`Counts`); a delete changes none, so that
-- dropping an archived day (`switchlab journal archive`) leaves the all-time totals as they
-- were. Amounts in two parts (exact past 2^63). `slot` is always 0 here: one writer
-- (PostgreSQL's journal has a slot per writer connection).
CREATE TABLE IF NOT EXISTS transfer_totals (
    slot INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    count INTEGER NOT NULL,
    amount_high INTEGER NOT NULL,
    amount_low INTEGER NOT NULL,
    PRIMARY KEY (slot, state, reason_code)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS return_totals (
    slot INTEGER PRIMARY KEY,
    count INTEGER NOT NULL,
    amount_high INTEGER NOT NULL,
    amount_low INTEGER NOT NULL
);
-- Per-row triggers kept them at first (+8 µs of writer CPU a bulk transfer): gone.
DROP TRIGGER IF EXISTS transfers_counted;
DROP TRIGGER IF EXISTS transfers_recounted;
DROP TRIGGER IF EXISTS returns_counted;
"""
# A journal made before the counters: counted once, from its rows, when they are added.
COUNT_ONCE = (
    "INSERT INTO transfer_totals SELECT 0, state, coalesce(reason_code, ''), count(*),"
    " coalesce(sum(amount_vnd / 1000000000), 0), coalesce(sum(amount_vnd % 1000000000), 0)"
    " FROM transfers WHERE NOT EXISTS (SELECT 1 FROM transfer_totals) GROUP BY 2, 3",
    "INSERT INTO return_totals SELECT 0, count(*), coalesce(sum(amount_vnd / 1000000000), 0),"
    " coalesce(sum(amount_vnd % 1000000000), 0) FROM returns"
    " WHERE NOT EXISTS (SELECT 1 FROM return_totals) HAVING count(*) > 0",
)
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
    "both": f"UPDATE transfers SET creditor_notice={NOTICE_SENT}, debtor_notice={NOTICE_SENT}"
            " WHERE end_to_end_id=?",
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
_COUNT_TRANSFERS = (
    "INSERT INTO transfer_totals VALUES (0, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET"
    " count = count + excluded.count, amount_high = amount_high + excluded.amount_high,"
    " amount_low = amount_low + excluded.amount_low"
)
_COUNT_RETURNS = (
    "INSERT INTO return_totals VALUES (0, ?, ?, ?) ON CONFLICT DO UPDATE SET"
    " count = count + excluded.count, amount_high = amount_high + excluded.amount_high,"
    " amount_low = amount_low + excluded.amount_low"
)
_OPEN_CYCLE = "INSERT INTO cycles (cycle_id, opened_at) VALUES (?, ?)"
_CLOSE_CYCLE = "UPDATE cycles SET closed_at=? WHERE cycle_id=?"
MAX_IDS_PER_QUERY = 500  # under SQLite's limit on bound parameters
# A value the database refuses is that write's fault, never the storage's.
_REFUSED = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError,
            sqlite3.ProgrammingError, OverflowError,
            ValueError, TypeError)

Statements = Sequence[tuple[str, Sequence[Sequence[Any]]]]
T = TypeVar("T")


class Counts:
    """One write's changes to the totals: per (state, reason code) a count and VND (as a
    billions part and a rest, `AMOUNT_SPLIT`), as the upsert's rows. The rows it counts are
    the ones the write changes: the journal is written before memory changes, so a transfer's
    state and reason in memory are its row's until the write is durable. Per transfer only a
    count and an exact sum (a Python int); each key's sum is split once, in `statement`
    (the readers add the parts back, `joined_vnd`, so any split of the sum reads the same)."""

    def __init__(self) -> None:
        self._moves: dict[tuple[str, str], list[int]] = {}

    def add(self, state: str, reason_code: str | None, amount_vnd: int, sign: int = 1) -> None:
        key = (state, reason_code or "")
        move = self._moves.get(key)
        if move is None:
            move = self._moves[key] = [0, 0]
        move[0] += sign
        move[1] += sign * amount_vnd

    def moved(self, transfer: Transfer, state: str, reason_code: str | None) -> None:
        """`transfer` moves from its state and reason (in memory, as its row holds them) to
        these."""
        assert transfer.state is not None
        self.add(transfer.state, transfer.reason_code, transfer.amount_vnd, -1)
        self.add(state, reason_code, transfer.amount_vnd)

    def statement(self) -> tuple[str, list[tuple[Any, ...]]]:
        return _COUNT_TRANSFERS, [(state, reason, count, *divmod(vnd, AMOUNT_SPLIT))
                                  for (state, reason), (count, vnd) in self._moves.items()
                                  if count or vnd]


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=5000")
    if readonly:
        connection.execute("PRAGMA query_only=1")
    return connection


class SqliteJournal(GroupCommit, JournalReads):
    """The switch's durable state in one SQLite file: batched durable writes, off-loop reads.
    One switch process only: its memory decides duplicates, caps and cycles."""

    shared = False
    _SQL = reads_for(SQLITE_KEYS_OF_JSON)
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
                setup.execute(FORWARD_SECRET_TABLE)
                setup.execute("BEGIN IMMEDIATE")
                for statement in COUNT_ONCE:
                    setup.execute(statement)
                setup.execute(MAKE_FORWARD_SECRET.format("?"), (new_forward_secret(),))
                setup.execute("COMMIT")
                secret, legacy_until_s = setup.execute(READ_FORWARD_SECRET).fetchone()
                self.forward_ids = ForwardIds(bytes(secret), legacy_until_s)
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
        counts = Counts()
        for t in transfers:
            assert t.state is not None
            counts.add(t.state, t.reason_code, t.amount_vnd)
            rejected = t.state is TransferState.REJECTED
            rows.append((
                t.end_to_end_id, t.tx_id, t.msg_id, t.debtor_bic, t.creditor_bic, t.amount_vnd,
                t.state, t.reason_code, t.reason_by, int(t.bulk), now_s,
                now_s if rejected else None, None, NOTICE_NONE,
                NOTICE_DUE if rejected and t.bulk else NOTICE_NONE,
            ))
            transitions.append((t.end_to_end_id, None, t.state, t.reason_code, now_s))
        return self.submit([(_INSERT_MESSAGE, [(sender_bic, msg_id, body_sha256, now_s)]),
                            (INSERT_TRANSFER, rows), (_INSERT_TRANSITION, transitions),
                            counts.statement()])

    def record_final(self, finals: Sequence[Final], now_s: float
                     ) -> asyncio.Future[dict[str, Decided] | None]:
        """PENDING transfers made final, with the notices now due (durable flags)."""
        rows = []
        transitions = []
        counts = Counts()
        for f in finals:
            t = f.transfer
            counts.moved(t, f.state, f.reason_code)
            rows.append((
                f.state, f.reason_code, f.reason_by, now_s, f.cycle_id,
                NOTICE_DUE if f.tell_creditor else NOTICE_NONE,
                NOTICE_DUE if t.bulk else NOTICE_NONE, t.end_to_end_id,
            ))
            transitions.append((t.end_to_end_id, TransferState.PENDING, f.state, f.reason_code,
                                now_s))
        return self.submit([(_FINISH_TRANSFER, rows), (_INSERT_TRANSITION, transitions),
                            counts.statement()])

    def record_returns(self, returns: Sequence[SettledReturn], creditor_bic: str, cycle_id: int,
                       now_s: float) -> asyncio.Future[dict[str, Decided] | None]:
        """Settled returns, each owed to its debtor as a notice."""
        counts = Counts()
        for r in returns:
            counts.moved(r.original, TransferState.RETURNED, r.reason_code)
        parts = [divmod(r.amount_vnd, AMOUNT_SPLIT) for r in returns]
        return self.submit([
            counts.statement(),
            (_COUNT_RETURNS, [(len(returns), sum(high for high, _ in parts),
                               sum(low for _, low in parts))] if returns else []),
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
        """Notices delivered: `kind` is creditor, debtor, both (end-to-end ids) or return
        (ids)."""
        return self.submit([(_MARK_SENT[kind], [(key,) for key in keys])])

    def save_settings(self, bic: str, position_limit_vnd: int, signed_off: bool,
                      change: AdminChange | None = None) -> asyncio.Future[None]:
        """The operator's limit and sign-off, with the admin change that asked (one write:
        WriteRefused when its Idempotency-Key is journaled already)."""
        return self.submit([(_SAVE_SETTINGS, [(bic, position_limit_vnd, int(signed_off))]),
                            *_admin_change(change)])

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

    def close_cycle(self, closed_id: int, now_s: float, min_age_s: float | None = None,
                    change: AdminChange | None = None) -> asyncio.Future[int | None]:
        """Close `closed_id` and open the next in one write, with the admin change that asked.
        `min_age_s` is for a journal shared by several processes, each with its timer; here
        this process alone closes."""
        return self.submit([(_CLOSE_CYCLE, [(now_s, closed_id)]),
                            (_OPEN_CYCLE, [(closed_id + 1, now_s)]), *_admin_change(change)])

    def answer_admin_change(self, change: AdminChange, status: int, answer: str
                            ) -> asyncio.Future[None]:
        """The answer given to an admin change (journaled with it, unless idempotent)."""
        return self.submit([(ANSWER_ADMIN_CHANGE, [
            (change.key, change.request, change.at_s, status, answer)])])

    async def admin_change(self, key: str) -> AdminAnswer | None:
        """The admin change journaled under an Idempotency-Key, or None."""
        rows = await self.read(SELECT_ADMIN_CHANGE, (key,))
        return AdminAnswer(*rows[0]) if rows else None

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


def _admin_change(change: AdminChange | None) -> Statements:
    return [] if change is None else [
        (INSERT_ADMIN_CHANGE, [(change.key, change.request, change.at_s)])]
