"""A participant's ledger: accounts, holds for accepted transfers, credits at most once.

A transfer the bank accepts (ACCP) is only held; it is credited when the switch confirms
settlement (ACSC), once per end-to-end id whatever is redelivered, and released when the switch
rejects it. With a file path the ledger lives in SQLite (WAL, synchronous=FULL) so that a bank
killed and restarted as a real process keeps its accounts, holds and credits. Every change is
written before it is applied in memory; a caller groups the changes of one inbound message
into one transaction with `batch()`, since a confirmation may carry 1,000 transfers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from protocol import reasons
from protocol.messages import SCHEME_CURRENCY, VerificationItem, VerificationResult
from protocol.names import mask_name, same_name

ACTIVE, CLOSED, BLOCKED = "active", "closed", "blocked"
ACCOUNT_STATUSES = (ACTIVE, CLOSED, BLOCKED)


@dataclass(slots=True)
class Account:
    """One customer account as the participant's core system holds it."""

    account_id: str
    holder_name: str
    citizen_id: str
    status: str = ACTIVE  # active, closed or blocked
    deceased: bool = False  # known dead before the payment: refused MD07
    dies_after_payment: bool = False  # dies once paid: the bank returns the payment (pacs.004)
    balance_vnd: int = 0
    currency: str = SCHEME_CURRENCY  # ISO 4217: the scheme pays into VND accounts only (AC09)

    def __post_init__(self) -> None:
        if self.status not in ACCOUNT_STATUSES:
            raise ValueError(f"account {self.account_id}: status {self.status!r} is not one of "
                             f"{', '.join(ACCOUNT_STATUSES)}")


class Hold(NamedTuple):
    """A transfer the bank accepted (ACCP) and keeps aside until the switch confirms it."""

    end_to_end_id: str
    tx_id: str
    account_id: str
    amount_vnd: int


class BookingState(StrEnum):
    HELD = "held"  # accepted, waiting for the switch's ACSC or RJCT
    CREDITED = "credited"  # on the customer's balance; never again for this end-to-end id
    RELEASED = "released"  # the switch rejected it after acceptance


@dataclass(slots=True)
class Booking:
    """What the ledger knows of one transfer it accepted as creditor agent."""

    tx_id: str
    account_id: str
    amount_vnd: int
    state: BookingState
    credited_early: bool = False  # credited on ACCP, before the switch confirmed: a protocol bug
    returned_vnd: int = 0  # sent back to the debtor with a pacs.004 the switch settled


@dataclass(slots=True)
class Totals:
    """What the bank's books say, for reconciliation against the switch and the treasury."""

    accounts: int = 0
    balance_vnd: int = 0
    held: int = 0
    held_vnd: int = 0
    credited: int = 0  # every credit, returned or not: the switch's SETTLED + RETURNED
    credited_vnd: int = 0
    credited_before_confirmation: int = 0
    credited_before_confirmation_vnd: int = 0
    released: int = 0
    returned: int = 0
    returned_vnd: int = 0
    received_returns: int = 0  # returns of transfers this participant sent as debtor
    received_returns_vnd: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY, holder_name TEXT NOT NULL,
    citizen_id TEXT NOT NULL, status TEXT NOT NULL, deceased INTEGER NOT NULL,
    dies_after_payment INTEGER NOT NULL, balance_vnd INTEGER NOT NULL,
    currency TEXT NOT NULL DEFAULT 'VND');
CREATE TABLE IF NOT EXISTS bookings (end_to_end_id TEXT PRIMARY KEY, tx_id TEXT NOT NULL,
    account_id TEXT NOT NULL, amount_vnd INTEGER NOT NULL, state TEXT NOT NULL,
    credited_early INTEGER NOT NULL, returned_vnd INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS received_returns (end_to_end_id TEXT PRIMARY KEY,
    amount_vnd INTEGER NOT NULL);
"""
ACCOUNT_COLUMNS = ("account_id, holder_name, citizen_id, status, deceased, dies_after_payment,"
                   " balance_vnd, currency")
ADD_TO_BALANCE = "UPDATE accounts SET balance_vnd = balance_vnd + ? WHERE account_id = ?"
Statement = tuple[str, list[tuple[Any, ...]]]


class Ledger:
    """Accounts and the transfers booked to them; in memory, or durable in a SQLite file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.accounts: dict[str, Account] = {}
        self.bookings: dict[str, Booking] = {}
        self.received_returns: dict[str, int] = {}  # end-to-end id -> amount, as debtor agent
        self.debited: set[str] = set()  # transfers sent as debtor agent, taken off the debtor
        self._in_batch = False
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(accounts)")}
            if "currency" not in columns:  # a ledger made before accounts had a currency
                self._db.execute("ALTER TABLE accounts ADD COLUMN currency TEXT NOT NULL"
                                 " DEFAULT 'VND'")
            self._load()

    def close(self) -> None:
        """Close the file; any later change raises instead of living only in memory."""
        if self._db is not None:
            self._db.close()

    def _load(self) -> None:
        """Memory := disk: at opening, and after a transaction that could not commit."""
        assert self._db is not None
        self.accounts = {
            row[0]: Account(row[0], row[1], row[2], row[3], bool(row[4]), bool(row[5]), row[6],
                            row[7])
            for row in self._db.execute(f"SELECT {ACCOUNT_COLUMNS} FROM accounts")
        }
        self.bookings = {
            row[0]: Booking(row[1], row[2], row[3], BookingState(row[4]), bool(row[5]), row[6])
            for row in self._db.execute("SELECT * FROM bookings")
        }
        self.received_returns = dict(self._db.execute("SELECT * FROM received_returns"))

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Make every change inside one SQLite transaction: one per inbound message."""
        if self._db is None or self._in_batch:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._in_batch = True
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._load()  # what was applied in memory inside the batch is not on disk
            raise
        finally:
            self._in_batch = False

    def _write(self, *statements: Statement) -> None:
        """Write before changing memory, so that a failed write leaves both as they were."""
        if self._db is None:
            return
        with self.batch():
            for sql, rows in statements:
                if rows:
                    self._db.executemany(sql, rows)

    def open_accounts(self, accounts: Iterable[Account]) -> None:
        """Open (or reopen, balance included) accounts; copies, so that balances never alias
        the caller's objects."""
        opened = [replace(account) for account in accounts]
        self._write((f"INSERT OR REPLACE INTO accounts ({ACCOUNT_COLUMNS}) VALUES"
                     " (?,?,?,?,?,?,?,?)", [
            (a.account_id, a.holder_name, a.citizen_id, a.status, int(a.deceased),
             int(a.dies_after_payment), a.balance_vnd, a.currency) for a in opened]))
        self.accounts.update((a.account_id, a) for a in opened)

    def check(self, account_id: str, name: str, citizen_id: str | None) -> str | None:
        """The ISO 20022 reason to refuse crediting this account, or None to accept.

        A citizen id that differs from the holder's is a name mismatch too (BE01): the
        payment is meant for someone else.
        """
        account = self.accounts.get(account_id)
        if account is None:
            return reasons.WRONG_ACCOUNT
        if account.status == CLOSED:
            return reasons.CLOSED_ACCOUNT
        if account.status == BLOCKED:
            return reasons.BLOCKED_ACCOUNT
        if account.deceased:
            return reasons.CREDITOR_DECEASED
        if account.currency != SCHEME_CURRENCY:
            return reasons.INVALID_ACCOUNT_CURRENCY
        if not same_name(account.holder_name, name) or (
            citizen_id is not None and citizen_id != account.citizen_id
        ):
            return reasons.NAME_MISMATCH
        return None

    def verify(self, item: VerificationItem) -> VerificationResult:
        """The answer to one acmt.023 question about an account this participant holds.

        Checked in this order, so that a stranger learns as little as possible: no such
        account (AC01); the citizen id is not the holder's (BE17: nothing more is said about
        someone else's account); the name does not match (BE01, with the holder's name
        masked, protocol/names.py); then, the account being this person's, whether it can
        take a payment: closed (AC04), blocked (AC06), holder deceased (MD07), not a VND
        account (AC09: the scheme pays dong only).
        """
        account = self.accounts.get(item.account_id or "")
        reason, masked = None, None
        if account is None:
            reason = reasons.WRONG_ACCOUNT
        elif item.citizen_id != account.citizen_id:
            reason = reasons.CITIZEN_ID_MISMATCH
        elif not same_name(account.holder_name, item.name):
            reason, masked = reasons.NAME_MISMATCH, mask_name(account.holder_name)
        elif account.status != ACTIVE:
            reason = reasons.CLOSED_ACCOUNT if account.status == CLOSED else (
                reasons.BLOCKED_ACCOUNT)
        elif account.deceased:
            reason = reasons.CREDITOR_DECEASED
        elif account.currency != SCHEME_CURRENCY:
            reason = reasons.INVALID_ACCOUNT_CURRENCY
        return VerificationResult(item.verification_id, reason is None, reason, masked)

    def knows(self, end_to_end_id: str) -> bool:
        """Whether this participant accepted the transfer as creditor agent."""
        return end_to_end_id in self.bookings

    def hold(self, holds: Iterable[Hold]) -> None:
        """Hold accepted transfers until the switch confirms them; an id already held or
        credited stays as it is (a redelivered pacs.008 changes nothing)."""
        fresh = {h.end_to_end_id: h for h in holds
                 if h.account_id in self.accounts and (
                     h.end_to_end_id not in self.bookings
                     or self.bookings[h.end_to_end_id].state is BookingState.RELEASED)}
        self._write(("INSERT OR REPLACE INTO bookings VALUES (?,?,?,?,?,0,0)", [
            (*h, BookingState.HELD.value) for h in fresh.values()]))
        for e2e, h in fresh.items():  # keep the ledger's own strings, not the message's copies
            tx_id = e2e if h.tx_id == e2e else h.tx_id
            account_id = self.accounts[h.account_id].account_id
            self.bookings[e2e] = Booking(tx_id, account_id, h.amount_vnd, BookingState.HELD)

    def _held(self, end_to_end_ids: Iterable[str]) -> list[str]:
        return [e2e for e2e in dict.fromkeys(end_to_end_ids)
                if (b := self.bookings.get(e2e)) is not None and b.state is BookingState.HELD]

    def settle(self, end_to_end_ids: Iterable[str], before_confirmation: bool = False
               ) -> list[str]:
        """Credit held transfers and return the ids credited now: an id is credited at most
        once ever. `before_confirmation` books the protocol bug of crediting on ACCP."""
        due = self._held(end_to_end_ids)
        self._write(
            ("UPDATE bookings SET state=?, credited_early=? WHERE end_to_end_id=?",
             [(BookingState.CREDITED.value, int(before_confirmation), e2e) for e2e in due]),
            (ADD_TO_BALANCE, [(self.bookings[e2e].amount_vnd, self.bookings[e2e].account_id)
                              for e2e in due]),
        )
        for e2e in due:
            booking = self.bookings[e2e]
            booking.state = BookingState.CREDITED
            booking.credited_early = before_confirmation
            self.accounts[booking.account_id].balance_vnd += booking.amount_vnd
        return due

    def credit_again(self, end_to_end_ids: Iterable[str]) -> None:
        """The defect of a bank that books a redelivered transfer twice (banks/behaviour.py,
        double_credit_on_redelivery): the amount goes onto the balance a second time."""
        again = [(self.bookings[e2e].amount_vnd, self.bookings[e2e].account_id)
                 for e2e in end_to_end_ids]
        self._write((ADD_TO_BALANCE, again))
        for amount_vnd, account_id in again:
            self.accounts[account_id].balance_vnd += amount_vnd

    def release(self, end_to_end_ids: Iterable[str]) -> list[str]:
        """Drop the holds of transfers the switch rejected after acceptance; returns their ids.
        A transfer already credited (early, by the bug) is not taken back."""
        due = self._held(end_to_end_ids)
        self._write(("UPDATE bookings SET state=? WHERE end_to_end_id=?",
                     [(BookingState.RELEASED.value, e2e) for e2e in due]))
        for e2e in due:
            self.bookings[e2e].state = BookingState.RELEASED
        return due

    def returns_due(self, end_to_end_ids: Iterable[str] | None = None) -> list[Hold]:
        """Credits into accounts of beneficiaries who died after payment, not yet returned;
        of the given ids, or of every credit."""
        ids = self.bookings if end_to_end_ids is None else end_to_end_ids
        due = []
        for e2e in ids:
            booking = self.bookings.get(e2e)
            if (booking is not None and booking.state is BookingState.CREDITED
                    and not booking.returned_vnd
                    and self.accounts[booking.account_id].dies_after_payment):
                due.append(Hold(e2e, booking.tx_id, booking.account_id, booking.amount_vnd))
        return due

    def record_returns(self, returns: Iterable[tuple[str, int]]) -> list[str]:
        """Debit the accounts of credited transfers whose return (pacs.004) the switch
        settled; once per end-to-end id, never more than was credited."""
        due: dict[str, int] = {}
        for e2e, amount_vnd in returns:
            booking = self.bookings.get(e2e)
            if (booking is not None and booking.state is BookingState.CREDITED
                    and not booking.returned_vnd and 0 < amount_vnd <= booking.amount_vnd):
                due.setdefault(e2e, amount_vnd)
        self._write(
            ("UPDATE bookings SET returned_vnd=? WHERE end_to_end_id=?",
             [(amount_vnd, e2e) for e2e, amount_vnd in due.items()]),
            (ADD_TO_BALANCE, [(-amount_vnd, self.bookings[e2e].account_id)
                              for e2e, amount_vnd in due.items()]),
        )
        for e2e, amount_vnd in due.items():
            booking = self.bookings[e2e]
            booking.returned_vnd = amount_vnd
            self.accounts[booking.account_id].balance_vnd -= amount_vnd
        return list(due)

    def record_received_returns(self, returns: Iterable[tuple[str, int]],
                                debtor_accounts: Mapping[str, str] | None = None) -> list[str]:
        """Book funds coming back for transfers this participant sent as debtor agent, once
        per end-to-end id, onto the debtor's account when `debtor_accounts` (end-to-end id ->
        account id) names one this ledger holds."""
        due: dict[str, int] = {}
        for e2e, amount_vnd in returns:
            if e2e not in self.received_returns:
                due.setdefault(e2e, amount_vnd)
        onto = [(amount_vnd, account_id) for e2e, amount_vnd in due.items()
                if (account_id := (debtor_accounts or {}).get(e2e)) in self.accounts]
        self._write(("INSERT INTO received_returns VALUES (?,?)", list(due.items())),
                    (ADD_TO_BALANCE, onto))
        self.received_returns.update(due)
        for amount_vnd, account_id in onto:
            self.accounts[account_id].balance_vnd += amount_vnd
        return list(due)

    def debit_sent(self, end_to_end_id: str, account_id: str, amount_vnd: int) -> bool:
        """Take a transfer this participant sent as debtor agent, and the switch settled,
        off the debtor's account: once per end-to-end id (in memory: a restarted mock bank
        asks again with pacs.028 and would debit again, which a real core must not)."""
        if end_to_end_id in self.debited or account_id not in self.accounts:
            return False
        self._write((ADD_TO_BALANCE, [(-amount_vnd, account_id)]))
        self.debited.add(end_to_end_id)
        self.accounts[account_id].balance_vnd -= amount_vnd
        return True

    def held(self, account_id: str) -> list[str]:
        """The end-to-end ids held for this account: accepted, neither confirmed nor
        released."""
        return [e2e for e2e, b in self.bookings.items()
                if b.account_id == account_id and b.state is BookingState.HELD]

    def credits(self) -> dict[str, int]:
        """End-to-end id -> amount credited, for reconciliation line by line."""
        return {e2e: b.amount_vnd for e2e, b in self.bookings.items()
                if b.state is BookingState.CREDITED}

    def totals(self) -> Totals:
        totals = Totals(accounts=len(self.accounts),
                        balance_vnd=sum(a.balance_vnd for a in self.accounts.values()))
        for booking in self.bookings.values():
            if booking.state is BookingState.HELD:
                totals.held += 1
                totals.held_vnd += booking.amount_vnd
            elif booking.state is BookingState.RELEASED:
                totals.released += 1
            else:
                totals.credited += 1
                totals.credited_vnd += booking.amount_vnd
                if booking.credited_early:
                    totals.credited_before_confirmation += 1
                    totals.credited_before_confirmation_vnd += booking.amount_vnd
                if booking.returned_vnd:
                    totals.returned += 1
                    totals.returned_vnd += booking.returned_vnd
        totals.received_returns = len(self.received_returns)
        totals.received_returns_vnd = sum(self.received_returns.values())
        return totals
