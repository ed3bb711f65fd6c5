"""A participant's test accounts as a CSV file: what a bank under test holds, for the
conformance suite (`switchlab conformance --accounts`) and for a mock bank that plays it
(`accounts_file` in its configuration). Format and example: docs/conformance.md.

    account_id,holder_name,citizen_id,status
    0011004455667,Nguyễn Thị Rà,001190012345,open

`status` is one of open, closed, blocked (refused AC04, AC06) or deceased (the holder died
before the payment: refused MD07). An optional `currency` column (ISO 4217, VND when absent
or empty) makes an account in another currency, which the scheme cannot pay into (AC09).
The file comes from a user: every row is checked, and an
error names the file, the line and the field.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from banks.ledger import ACTIVE, BLOCKED, CLOSED, Account
from protocol.ids import citizen_id_problem
from protocol.messages import MAX_NAME_CHARS, SCHEME_CURRENCY
from protocol.wording import count

MAX_ACCOUNTS = 10_000
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_ACCOUNT_ID_CHARS = 34  # ISO 20022 Max34Text (Othr/Id of an account)
COLUMNS = ("account_id", "holder_name", "citizen_id", "status")
CURRENCY_COLUMN = "currency"  # optional
ISO_4217 = re.compile(r"[A-Z]{3}")
OPEN, DECEASED = "open", "deceased"
STATUSES = (OPEN, CLOSED, BLOCKED, DECEASED)


class AccountsFileError(ValueError):
    """The file cannot be used; the text names the file, the line and the field."""


@dataclass(frozen=True, slots=True)
class TestAccount:
    """One row: an account the participant holds, and the state the suite expects it in."""

    account_id: str
    holder_name: str
    citizen_id: str
    status: str  # one of STATUSES
    currency: str = SCHEME_CURRENCY  # ISO 4217; another than VND is refused AC09

    def ledger_account(self) -> Account:
        """The account as a mock bank's ledger holds it (balance 0)."""
        return Account(self.account_id, self.holder_name, self.citizen_id,
                       status=ACTIVE if self.status in (OPEN, DECEASED) else self.status,
                       deceased=self.status == DECEASED, currency=self.currency)


def _row_problem(row: dict[str, str]) -> str | None:
    account_id, name = row["account_id"], row["holder_name"]
    if not account_id or len(account_id) > MAX_ACCOUNT_ID_CHARS or not account_id.isprintable() \
            or any(c.isspace() for c in account_id):
        return f"account_id {account_id[:40]!r}: 1 to {MAX_ACCOUNT_ID_CHARS} characters, " \
               "no spaces"
    if not name.strip() or len(name) > MAX_NAME_CHARS or not name.isprintable():
        return f"holder_name: a printable name of 1 to {MAX_NAME_CHARS} characters"
    problem = citizen_id_problem(row["citizen_id"])
    if problem is not None:
        return f"citizen_id {row['citizen_id'][:20]!r}: {problem}"
    if row["status"] not in STATUSES:
        return f"status {row['status'][:20]!r}: one of {', '.join(STATUSES)}"
    if not ISO_4217.fullmatch(row[CURRENCY_COLUMN]):
        return (f"currency {row[CURRENCY_COLUMN][:20]!r}: an ISO 4217 code of three capital "
                f"letters, such as {SCHEME_CURRENCY} (empty: {SCHEME_CURRENCY})")
    return None


def read_accounts(path: Path) -> list[TestAccount]:
    """The accounts of a CSV file in UTF-8 (a BOM is allowed). Raises AccountsFileError for a
    file that is missing, too large, without the columns, with a bad row or an account id
    twice."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise AccountsFileError(f"{path}: over {MAX_FILE_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise AccountsFileError(f"{path}: cannot be read ({error})") from None
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise AccountsFileError(f"{path}, line 1: the header needs the columns "
                                f"{', '.join(COLUMNS)} (missing {', '.join(missing)})")
    accounts: dict[str, TestAccount] = {}
    for line, row in enumerate(reader, start=2):
        if len(accounts) >= MAX_ACCOUNTS:
            raise AccountsFileError(f"{path}: more than {MAX_ACCOUNTS:,} accounts")
        if None in row or any(row[c] is None for c in COLUMNS):
            raise AccountsFileError(f"{path}, line {line}: expected {count(len(COLUMNS), 'field')}")
        values = {c: row[c].strip() for c in COLUMNS}
        values[CURRENCY_COLUMN] = (row.get(CURRENCY_COLUMN) or "").strip() or SCHEME_CURRENCY
        problem = _row_problem(values)
        if problem is not None:
            raise AccountsFileError(f"{path}, line {line}: {problem}")
        if values["account_id"] in accounts:
            raise AccountsFileError(f"{path}, line {line}: account_id {values['account_id']} "
                                    "appears twice")
        accounts[values["account_id"]] = TestAccount(**values)
    if not accounts:
        raise AccountsFileError(f"{path}: no accounts")
    return list(accounts.values())
