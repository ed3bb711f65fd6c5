"""A payout run's own durable state, beside its results: what it must remember to be killed at
any point (Ctrl-C, SIGKILL, a power cut) and started again with the same command, finishing
without paying anyone twice and without asking the user what was done.

What is kept, and why that is enough: the table's SHA-256 and the run's secret (a resumed run
pays the very same table, whose end-to-end ids, derived under that secret, are the same); run
flags (the lab was set up; payments may have been sent); each final status, return and answered
verification, written before the switch is told "ok" (`Treasury.flush`). Anything not kept is
asked again: a payment not final here is asked about (pacs.028) before anything is sent, and
the switch's journal answers; a verification is asked again. Returns are the one thing the
switch tells only once, which is why they are kept before the answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

from banks.payout import Verdict, shared_verdict
from banks.treasury import Treasury
from protocol.messages import PaymentReturnItem, TxStatus, VerificationResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS finals (end_to_end_id TEXT PRIMARY KEY, status TEXT NOT NULL,
    reason_code TEXT);
CREATE TABLE IF NOT EXISTS returns (end_to_end_id TEXT PRIMARY KEY, return_id TEXT NOT NULL,
    original_tx_id TEXT NOT NULL, amount_vnd INTEGER NOT NULL, reason_code TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS verifications (end_to_end_id TEXT PRIMARY KEY,
    verified INTEGER NOT NULL, reason_code TEXT, masked_name TEXT);
"""


class PayoutState:
    """The run's SQLite file (WAL, synchronous=FULL): a treasury's Keeper, and run flags."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM run WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO run VALUES (?, ?)", (key, value))

    def keep(self, finals: Mapping[str, Verdict], returns: Mapping[str, PaymentReturnItem],
             verifications: Mapping[str, VerificationResult]) -> None:
        """One transaction; the first word kept per end-to-end id stays (as the treasury's)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR IGNORE INTO finals VALUES (?,?,?)", [
                (e2e, v.status.value, v.reason_code) for e2e, v in finals.items()])
            db.executemany("INSERT OR IGNORE INTO returns VALUES (?,?,?,?,?)", [
                (e2e, r.return_id, r.original_tx_id, r.returned_amount_vnd, r.reason_code)
                for e2e, r in returns.items()])
            db.executemany("INSERT OR REPLACE INTO verifications VALUES (?,?,?,?)", [
                (e2e, int(v.verified), v.reason_code, v.masked_name)
                for e2e, v in verifications.items()])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def restore(self, treasury: Treasury) -> int:
        """Give the treasury what earlier runs learnt, and make it keep what this one learns;
        returns how many payments were final already."""
        db = self._db
        for e2e, status, reason in db.execute("SELECT * FROM finals"):
            treasury.final.setdefault(e2e, shared_verdict(TxStatus(status), reason))
        for e2e, return_id, tx_id, amount_vnd, reason in db.execute("SELECT * FROM returns"):
            treasury.returned.setdefault(e2e, PaymentReturnItem(
                return_id=return_id, original_end_to_end_id=e2e, original_tx_id=tx_id,
                returned_amount_vnd=amount_vnd, reason_code=reason))
        for e2e, verified, reason, masked in db.execute("SELECT * FROM verifications"):
            treasury.verified.setdefault(e2e, VerificationResult(e2e, bool(verified), reason,
                                                                 masked))
        treasury.keeper = self
        return len(treasury.final)
