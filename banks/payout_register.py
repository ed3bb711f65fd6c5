"""A treasury's payout register: what every run of it paid, listed for cash or is paying, per
beneficiary, programme, period and arrears, so that no later run pays the same twice.

One SQLite file per treasury, beside the runs and never inside one run's folder (a corrected
table goes into a new folder, and must still know what the first one paid). A run *claims*
each of its rows' keys before it sends anything, in one transaction: a key claimed by another
run is not paid by this one, whatever end-to-end id its table gives it, so a run killed with
`kill -9` and a corrected table started beside it cannot both pay a row. The run that claimed
a key settles it at its end (paid, on the cash list, reported deceased); until then the key
stays claimed by that run, which the same command (the same output folder) finishes.

A cash entry is the post office's to pay: the key is not paid by account afterwards until the
entry is cancelled with a reason (`cancel_cash`, `switchlab payout-register cancel-cash`), as
the post office confirms it did not pay; the cancellation is kept.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from banks.payment_table import Payment

MAX_REASON_CHARS = 500
LOCK_TIMEOUT_S = 60.0  # another run's claim or settlement holds the write lock this long
ENTRY_COLUMNS = ("citizen_id", "programme", "period", "arrears", "state", "run_id", "line",
                 "end_to_end_id", "amount_vnd", "full_name", "reason_code", "updated_at",
                 "creditor_bic", "account_id")
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, folder TEXT NOT NULL,
    table_path TEXT NOT NULL, table_sha256 TEXT NOT NULL, started_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (citizen_id TEXT NOT NULL, programme TEXT NOT NULL,
    period TEXT NOT NULL, arrears TEXT NOT NULL, state TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs, line INTEGER NOT NULL, end_to_end_id TEXT NOT NULL,
    amount_vnd INTEGER NOT NULL, full_name TEXT NOT NULL, reason_code TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL, creditor_bic TEXT NOT NULL DEFAULT '',
    account_id TEXT NOT NULL DEFAULT '', PRIMARY KEY (citizen_id, programme, period, arrears));
CREATE TABLE IF NOT EXISTS cancellations (citizen_id TEXT NOT NULL, programme TEXT NOT NULL,
    period TEXT NOT NULL, arrears TEXT NOT NULL, run_id TEXT NOT NULL,
    amount_vnd INTEGER NOT NULL, reason TEXT NOT NULL, cancelled_at TEXT NOT NULL,
    cancelled_by TEXT NOT NULL DEFAULT '');
"""
# A register made before cancellations said who cancelled gets the column (empty: unknown).
CANCELLED_BY = "ALTER TABLE cancellations ADD COLUMN cancelled_by TEXT NOT NULL DEFAULT ''"
MAX_NAME_CHARS = 100  # who cancelled: a person's name or login

Key = tuple[str, str, str, str]


class EntryState(StrEnum):
    """Where a key stands in the register."""

    CLAIMED = "claimed"  # a run is paying it (or was killed while paying it)
    PAID = "paid"  # settled into the beneficiary's account
    CASH = "cash"  # on a run's cash list: the post office pays it
    DECEASED = "deceased"  # reported deceased: back to the ministry, paid by no one


# Where a run's key ended: (key, state, reason code, bank BIC, account).
Settled = tuple[Key, "EntryState", str, str, str]


class RegisterError(Exception):
    """A register command that cannot be done; the sentence says why."""


def key_of(citizen_id: str, programme: str, period: str, arrears: str) -> Key:
    """Who is paid for what, the texts in any case as the table's own repeat check reads
    them (LUONG_HUU is luong_huu): the register's key."""
    return (citizen_id, programme.casefold(), period.casefold(), arrears.casefold())


def register_key(payment: Payment) -> Key:
    return key_of(payment.citizen_id, payment.programme, payment.period, payment.arrears)


@dataclass(frozen=True)
class Entry:
    """A key as another run left it: what it did and where that run's folder is."""

    state: EntryState
    run_id: str
    folder: str
    line: int
    end_to_end_id: str
    amount_vnd: int
    reason_code: str
    updated_at: str
    creditor_bic: str = ""  # the account that run paid (found by citizen id or not)
    account_id: str = ""

    def sentence(self) -> str:
        """Why this run does not pay the key, for results.csv and the terminal."""
        where = f"run {self.run_id} ({self.folder}, line {self.line}, {self.amount_vnd:,} VND)"
        if self.state == EntryState.PAID:
            return f"paid by {where} on {self.updated_at[:10]}"
        if self.state == EntryState.CASH:
            return (f"on the cash list of {where}: to pay it by account, cancel that entry "
                    "first (switchlab payout-register cancel-cash)")
        if self.state == EntryState.DECEASED:
            return f"reported deceased ({self.reason_code}) in {where}"
        return f"being paid by the unfinished {where}: run that command again to finish it"


class PayoutRegister:
    """The register's SQLite file (WAL, synchronous=FULL); one writer transaction at a time,
    so two runs claiming at once each get the keys the other did not."""

    def __init__(self, path: Path) -> None:
        """Open (or create) the register; raises RegisterError for a file that is not one
        (another SQLite file, an older layout, not SQLite at all), OSError for a folder that
        cannot be made."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=LOCK_TIMEOUT_S)
        try:
            tables = {row[0] for row in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and "entries" not in tables:  # another program's file: left untouched
                raise sqlite3.DatabaseError("it holds other tables")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            columns = [row[1] for row in self._db.execute("PRAGMA table_info(entries)")]
            if "cancelled_by" not in {row[1] for row in self._db.execute(
                    "PRAGMA table_info(cancellations)")}:
                self._db.execute(CANCELLED_BY)
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise RegisterError(f"{path} is not a payout register ({error})") from None
        if columns != list(ENTRY_COLUMNS):
            self._db.close()
            raise RegisterError(f"{path} is not a payout register of this switchlab (its "
                                "entries have other columns): give another register file")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PayoutRegister:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def claim(self, run_id: str, folder: Path, table_path: Path, table_sha256: str,
              rows: Iterable[tuple[int, Payment]]) -> dict[int, Entry]:
        """Claim each (line, payment)'s key for `run_id`; returns, by line, the entries of
        the keys another run holds (which this run must not pay). The keys this run holds
        already (a resumed run) stay its own."""
        now = _now()
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?)",
                       (run_id, str(folder.resolve()), str(table_path), table_sha256, now))
            db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (line INTEGER PRIMARY KEY, "
                       "citizen_id, programme, period, arrears, end_to_end_id, amount_vnd, "
                       "full_name)")
            db.execute("DELETE FROM wanted")
            db.executemany("INSERT INTO wanted VALUES (?,?,?,?,?,?,?,?)", (
                (line, *register_key(p), p.end_to_end_id, p.amount_vnd, p.full_name)
                for line, p in rows))
            db.execute("INSERT OR IGNORE INTO entries SELECT citizen_id, programme, period, "
                       "arrears, ?, ?, line, end_to_end_id, amount_vnd, full_name, '', ?, '', '' "
                       "FROM wanted", (EntryState.CLAIMED.value, run_id, now))
            held = db.execute(
                "SELECT w.line, e.state, e.run_id, r.folder, e.line, e.end_to_end_id, "
                "e.amount_vnd, e.reason_code, e.updated_at, e.creditor_bic, e.account_id "
                "FROM wanted w JOIN entries e "
                "USING (citizen_id, programme, period, arrears) JOIN runs r USING (run_id) "
                "WHERE e.run_id != ?", (run_id,)).fetchall()
            db.execute("DELETE FROM wanted")
        return {line: Entry(EntryState(state), *rest) for line, state, *rest in held}

    def settle(self, run_id: str, outcomes: Iterable[Settled]) -> None:
        """Record where this run's keys ended: (key, state, reason code, bank, account) each;
        keys of other runs are left alone."""
        now = _now()
        with self._transaction() as db:
            db.executemany(
                "UPDATE entries SET state=?, reason_code=?, updated_at=?, creditor_bic=?, "
                "account_id=? WHERE citizen_id=? "
                "AND programme=? AND period=? AND arrears=? AND run_id=? AND state!=?",
                ((state.value, code, now, bic, account, *key, run_id, state.value)
                 for key, state, code, bic, account in outcomes))

    def entries(self, citizen_id: str) -> Iterator[dict[str, object]]:
        """A citizen's entries, for a person to read."""
        return self._rows(
            "SELECT citizen_id, programme, period, arrears, state, run_id, folder, line, "
            "end_to_end_id, amount_vnd, full_name, reason_code, updated_at, creditor_bic, "
            "account_id FROM entries "
            "JOIN runs USING (run_id) WHERE citizen_id=? ORDER BY programme, period, arrears",
            citizen_id)

    def cancellations(self, citizen_id: str) -> Iterator[dict[str, object]]:
        """A citizen's cancelled cash entries, oldest first: state "cancelled", the run whose
        cash list held it, and when, by whom and why it was cancelled."""
        return self._rows(
            "SELECT citizen_id, programme, period, arrears, 'cancelled' AS state, run_id, "
            "folder, amount_vnd, cancelled_at, cancelled_by, reason FROM cancellations "
            "LEFT JOIN runs USING (run_id) WHERE citizen_id=? "
            "ORDER BY cancelled_at, cancellations.rowid",
            citizen_id)

    def _rows(self, query: str, citizen_id: str) -> Iterator[dict[str, object]]:
        cursor = self._db.execute(query, (citizen_id,))
        names = [column[0] for column in cursor.description]
        for row in cursor:
            yield dict(zip(names, row, strict=True))

    def cancel_cash(self, key: Key, reason: str, cancelled_by: str = "") -> Entry:
        """Cancel a key's cash entry, as the post office confirms it did not pay it, with the
        reason and who cancelled it; the key may then be paid by a later run. Returns the
        entry cancelled; raises RegisterError when the key has no cash entry, or the reason
        is empty or too long, or the name too long."""
        reason, cancelled_by = reason.strip(), cancelled_by.strip()
        if not reason or len(reason) > MAX_REASON_CHARS or not reason.isprintable():
            raise RegisterError(f"give the reason in one line of 1 to {MAX_REASON_CHARS} "
                                "characters (as the post office confirmed it)")
        if len(cancelled_by) > MAX_NAME_CHARS or not cancelled_by.isprintable():
            raise RegisterError(f"give who cancels in one line of at most {MAX_NAME_CHARS} "
                                "characters")
        with self._transaction() as db:
            found = db.execute(
                "SELECT e.state, e.run_id, r.folder, e.line, e.end_to_end_id, e.amount_vnd, "
                "e.reason_code, e.updated_at FROM entries e JOIN runs r USING (run_id) WHERE "
                "citizen_id=? AND programme=? AND period=? AND arrears=?", key).fetchone()
            if found is None or found[0] != EntryState.CASH:
                state = "no entry" if found is None else f"an entry {found[0]}, not on a cash list"
                raise RegisterError(f"{' '.join(filter(None, key))}: {state} in {self.path}")
            entry = Entry(EntryState(found[0]), *found[1:])
            db.execute("INSERT INTO cancellations VALUES (?,?,?,?,?,?,?,?,?)",
                       (*key, entry.run_id, entry.amount_vnd, reason, _now(), cancelled_by))
            db.execute("DELETE FROM entries WHERE citizen_id=? AND programme=? AND period=? "
                       "AND arrears=?", key)
        return entry


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
