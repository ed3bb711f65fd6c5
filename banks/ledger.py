"""A participant's ledger: accounts, holds for accepted transfers, credits exactly once.

A transfer the bank accepts (ACCP) is only held; it is credited when the switch confirms
settlement (ACSC), once per end-to-end id whatever is redelivered. With a file path the
ledger lives in SQLite, written once per inbound message (never per transfer), so a bank
restarted as a real process keeps its accounts, holds and credits.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

from protocol import reasons


@dataclass(slots=True)
class Account:
    account_id: str
    holder_name: str
    citizen_id: str
    status: str = "active"  # active, closed, blocked
    deceased: bool = False
    dies_after_payment: bool = False
    balance_vnd: int = 0


@dataclass(slots=True)
class Totals:
    """What the bank's books say, for reconciliation against the switch and the treasury."""

    held: int = 0
    held_vnd: int = 0
    credited: int = 0
    credited_vnd: int = 0
    credited_before_confirmation: int = 0
    returned: int = 0
    returned_vnd: int = 0
    received_returns: int = 0
    received_returns_vnd: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


def _same_name(a: str, b: str) -> bool:
    """Case- and spacing-insensitive; diacritics count ("Lê" is not "Le")."""
    def fold(name: str) -> str:
        return " ".join(unicodedata.normalize("NFC", name).casefold().split())
    return fold(a) == fold(b)


SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY, holder_name TEXT,
    citizen_id TEXT, status TEXT, deceased INTEGER, dies_after_payment INTEGER,
    balance_vnd INTEGER);
CREATE TABLE IF NOT EXISTS holds (end_to_end_id TEXT PRIMARY KEY, account_id TEXT,
    amount_vnd INTEGER, credited INTEGER);
CREATE TABLE IF NOT EXISTS credits (end_to_end_id TEXT PRIMARY KEY, account_id TEXT,
    amount_vnd INTEGER, early INTEGER);
"""


@dataclass
class Ledger:
    accounts: dict[str, Account] = field(default_factory=dict)
    holds: dict[str, tuple[str, int]] = field(default_factory=dict)  # e2e -> account, amount
    credits: dict[str, int] = field(default_factory=dict)  # e2e -> amount credited
    credited_to: dict[str, str] = field(default_factory=dict)  # e2e -> account id
    early_credits: set[str] = field(default_factory=set)
    returned: dict[str, int] = field(default_factory=dict)  # e2e -> amount sent back
    received_returns: dict[str, int] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self._load()

    def _load(self) -> None:
        assert self._db is not None
        for row in self._db.execute("SELECT * FROM accounts"):
            self.accounts[row[0]] = Account(row[0], row[1], row[2], row[3], bool(row[4]),
                                            bool(row[5]), row[6])
        for e2e, account_id, amount, credited in self._db.execute("SELECT * FROM holds"):
            if not credited:
                self.holds[e2e] = (account_id, amount)
        for e2e, account_id, amount, early in self._db.execute("SELECT * FROM credits"):
            self.credits[e2e] = amount
            self.credited_to[e2e] = account_id
            if early:
                self.early_credits.add(e2e)

    def _persist(self, statements: list[tuple[str, list[tuple]]]) -> None:  # type: ignore[type-arg]
        if self._db is None:
            return
        self._db.execute("BEGIN")
        for sql, rows in statements:
            self._db.executemany(sql, rows)
        self._db.execute("COMMIT")

    def open_accounts(self, accounts: list[Account]) -> None:
        """Open copies: the ledger's balances must not alias the caller's objects."""
        accounts = [replace(account) for account in accounts]
        for account in accounts:
            self.accounts[account.account_id] = account
        self._persist([("INSERT OR REPLACE INTO accounts VALUES (?,?,?,?,?,?,?)", [
            (a.account_id, a.holder_name, a.citizen_id, a.status, int(a.deceased),
             int(a.dies_after_payment), a.balance_vnd) for a in accounts])])

    def check(self, account_id: str, name: str, citizen_id: str | None) -> str | None:
        """The ISO reason to refuse crediting this account, or None."""
        account = self.accounts.get(account_id)
        if account is None:
            return reasons.WRONG_ACCOUNT
        if account.status == "closed":
            return reasons.CLOSED_ACCOUNT
        if account.status == "blocked":
            return reasons.BLOCKED_ACCOUNT
        if account.deceased:
            return reasons.CREDITOR_DECEASED
        if not _same_name(account.holder_name, name) or (
            citizen_id is not None and citizen_id != account.citizen_id
        ):
            return reasons.NAME_MISMATCH
        return None

    def hold(self, accepted: list[tuple[str, str, int]]) -> None:
        """Hold accepted (e2e, account, amount) transfers until the switch confirms them."""
        fresh = [t for t in accepted if t[0] not in self.credits]
        for e2e, account_id, amount in fresh:
            self.holds[e2e] = (account_id, amount)
        self._persist([("INSERT OR REPLACE INTO holds VALUES (?,?,?,0)", fresh)])

    def credit(self, end_to_end_ids: list[str], early: bool = False) -> list[str]:
        """Credit held transfers; an id already credited is never credited again."""
        done: list[tuple[str, str, int]] = []
        for e2e in end_to_end_ids:
            held = self.holds.pop(e2e, None)
            if held is None or e2e in self.credits:
                continue
            account_id, amount = held
            self.accounts[account_id].balance_vnd += amount
            self.credits[e2e] = amount
            self.credited_to[e2e] = account_id
            if early:
                self.early_credits.add(e2e)
            done.append((e2e, account_id, amount))
        self._persist([
            ("UPDATE holds SET credited=1 WHERE end_to_end_id=?", [(e,) for e, _, _ in done]),
            ("INSERT INTO credits VALUES (?,?,?,?)", [(*d, int(early)) for d in done]),
            ("UPDATE accounts SET balance_vnd=? WHERE account_id=?",
             [(self.accounts[a].balance_vnd, a) for a in {a for _, a, _ in done}]),
        ])
        return [e2e for e2e, _, _ in done]

    def release(self, end_to_end_ids: list[str]) -> None:
        released = [e for e in end_to_end_ids if self.holds.pop(e, None) is not None]
        self._persist([("DELETE FROM holds WHERE end_to_end_id=?", [(e,) for e in released])])

    def totals(self) -> Totals:
        return Totals(
            held=len(self.holds), held_vnd=sum(a for _, a in self.holds.values()),
            credited=len(self.credits), credited_vnd=sum(self.credits.values()),
            credited_before_confirmation=len(self.early_credits),
            returned=len(self.returned), returned_vnd=sum(self.returned.values()),
            received_returns=len(self.received_returns),
            received_returns_vnd=sum(self.received_returns.values()),
        )
