"""The labour ministry's payment table: who gets how much, into which account, checked row by
row before the treasury sends any of it.

Checked before anything is sent because one unencodable row would sink a whole bulk file, and
a wrong amount or id cannot be taken back once settled. Ids follow `protocol.ids`, the same
rules the switch applies.
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from banks.population import PAYMENT_TABLE_COLUMNS
from protocol.codec import MAX_NAME_CHARS
from protocol.ids import CITIZEN_ID, MAX_ID_CHARS, is_bic

MAX_TABLE_ROWS = 10_000_000  # a national payout day is a few million rows
MAX_AMOUNT_VND = 10**13  # far above any single social payment; also bounds int() on the input
MAX_ACCOUNT_CHARS = 34  # ISO 20022 Max34Text
MAX_PROBLEMS_SHOWN = 20
AMOUNT = re.compile(r"[0-9]{1,14}")


@dataclass(frozen=True, slots=True)
class Payment:
    """One row of the labour ministry's payment table: who gets how much, into which account."""

    citizen_id: str
    full_name: str
    amount_vnd: int
    creditor_bic: str
    account_id: str
    programme: str
    end_to_end_id: str


class PaymentTableError(Exception):
    """The payment table has bad rows; nothing of it should be paid until they are fixed.

    `problems` names every bad row as (line, what is wrong); `payments` holds the good rows,
    for an operator who decides to pay them and send the rest back for correction.
    """

    def __init__(self, path: Path, problems: list[tuple[int, str]],
                 payments: list[Payment]) -> None:
        shown = "\n".join(f"line {line}: {problem}"
                          for line, problem in problems[:MAX_PROBLEMS_SHOWN])
        more = (f"\n… and {len(problems) - MAX_PROBLEMS_SHOWN:,} more"
                if len(problems) > MAX_PROBLEMS_SHOWN else "")
        super().__init__(f"{path}: {len(problems):,} bad rows\n{shown}{more}")
        self.problems = problems
        self.payments = payments


def read_payment_table(path: Path) -> list[Payment]:
    """Read and check the labour ministry's CSV (PAYMENT_TABLE_COLUMNS, at most
    MAX_TABLE_ROWS rows); raises PaymentTableError naming each bad line, OSError when the
    file cannot be read."""
    payments: list[Payment] = []
    problems: list[tuple[int, str]] = []
    seen: set[str] = set()
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        missing = [c for c in PAYMENT_TABLE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise PaymentTableError(path, [(1, f"header lacks {', '.join(missing)}")], [])
        for row in reader:
            if len(payments) + len(problems) >= MAX_TABLE_ROWS:
                problems.append((reader.line_num, f"more than {MAX_TABLE_ROWS:,} rows"))
                break
            problem = _row_problem(row, seen)
            if problem:
                problems.append((reader.line_num, problem))
                continue
            seen.add(row["end_to_end_id"])
            payments.append(Payment(  # a few BICs and programmes: one string each, not a million
                citizen_id=row["citizen_id"], full_name=row["full_name"].strip(),
                amount_vnd=int(row["amount_vnd"]), creditor_bic=sys.intern(row["creditor_bic"]),
                account_id=row["account_id"], programme=sys.intern(row["programme"]),
                end_to_end_id=row["end_to_end_id"],
            ))
    if problems:
        raise PaymentTableError(path, problems, payments)
    return payments


def _text_problem(row: dict[str, Any], column: str, max_chars: int) -> str | None:
    value = row.get(column) or ""
    if not value.strip():
        return f"{column} is empty"
    if len(value) > max_chars:
        return f"{column} is {len(value)} characters; at most {max_chars}"
    if not value.isprintable():
        return f"{column} {value!r} has control characters"
    return None


def _row_problem(row: dict[str, Any], seen: set[str]) -> str | None:
    if row.get(None):  # csv.DictReader files surplus fields under the key None
        return f"{len(row[None])} fields more than the header"
    if not CITIZEN_ID.fullmatch(row.get("citizen_id") or ""):
        return f"citizen_id {row.get('citizen_id')!r} is not 12 digits"
    amount = row.get("amount_vnd") or ""
    if not AMOUNT.fullmatch(amount) or not 0 < int(amount) <= MAX_AMOUNT_VND:
        return (f"amount_vnd {amount!r} is not a positive whole number of dong up to "
                f"{MAX_AMOUNT_VND:,}")
    if not is_bic(row.get("creditor_bic") or ""):
        return f"creditor_bic {row.get('creditor_bic')!r} is not a BIC"
    problem = (_text_problem(row, "full_name", MAX_NAME_CHARS)
               or _text_problem(row, "account_id", MAX_ACCOUNT_CHARS)
               or _text_problem(row, "end_to_end_id", MAX_ID_CHARS))
    if problem:
        return problem
    programme = row.get("programme") or ""
    if len(programme) > MAX_NAME_CHARS or not programme.isprintable():
        return f"programme {programme!r} is over {MAX_NAME_CHARS} characters or unprintable"
    if row["end_to_end_id"] in seen:
        return f"end_to_end_id {row['end_to_end_id']} appears twice"
    return None
