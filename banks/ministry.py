"""The labour ministry's side of a payout: its list checked against the population register
(C06) before the treasury pays any of it (the seeds: the ministry's list compared with the
National Population Database first).

Each row whose citizen the register has dead, does not know, or knows under another name or
birth date is stopped before payment, with the register's code: MD07 (died, with the date:
never paid, not even in cash; back to the ministry with the deceased), BE06 (unknown CCCD),
C601 (name), C602 (birth date): back to the ministry to correct, not on the cash list. Deaths
registered after payment still come back from the banks as pacs.004 MD07.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from banks.payment_table import EXCEL_ENCODING, PaymentTable, excel_cell
from banks.payout import PayoutResult
from protocol import reasons
from protocol.population import RegisterClient

REGISTER_CODES = frozenset({reasons.CREDITOR_DECEASED, reasons.UNKNOWN_CITIZEN,
                            reasons.REGISTER_NAME_MISMATCH,
                            reasons.REGISTER_BIRTH_DATE_MISMATCH})
FINDING_COLUMNS = ("end_to_end_id", "citizen_id", "full_name", "programme", "period",
                   "reason_code", "reason_vi", "reason_en", "register_says")


@dataclass(frozen=True, slots=True)
class Finding:
    """The register's word on one row of the table: its code and every problem, in words."""

    row: int
    code: str
    text: str


async def check_table(client: RegisterClient, table: PaymentTable) -> list[Finding]:
    """The rows the register does not let through, in table order. Raises DirectoryError
    when the register refuses a request, aiohttp.ClientError when it cannot be reached."""
    answers = await client.check([
        {"citizen_id": p.citizen_id, "full_name": p.full_name,
         **({"birth_date": p.birth_date} if p.birth_date else {})} for p in table])
    return [Finding(row, answer["code"], answer["text"])
            for row, answer in enumerate(answers) if answer["code"]]


def stop_codes(table: PaymentTable, findings: Sequence[Finding]) -> dict[str, str]:
    """The treasury's stops (`Treasury.stop`): end-to-end id -> the register's code."""
    return {table.end_to_end_id(f.row): f.code for f in findings}


def write_findings(path: Path, table: PaymentTable, findings: Sequence[Finding]) -> int:
    """The rows the register stopped, with why in Vietnamese, English and the register's own
    words, for the ministry (Excel's encoding); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding=EXCEL_ENCODING) as file:
        writer = csv.writer(file)
        writer.writerow(FINDING_COLUMNS)
        for finding in findings:
            p = table[finding.row]
            writer.writerow(map(excel_cell, (
                p.end_to_end_id, p.citizen_id, p.full_name, p.programme, p.period, finding.code,
                reasons.DESCRIPTIONS_VI.get(finding.code, ""),
                reasons.DESCRIPTIONS.get(finding.code, ""), finding.text)))
    return len(findings)


def payment_notices(result: PayoutResult) -> Iterator[dict[str, object]]:
    """Each row's outcome as the register's citizen page takes it (register/service.py
    PaymentIn), made as it is sent: what, for which period, how much, where it ended, and
    whether the post office pays it in cash."""
    cash = {row["end_to_end_id"] for row in result.cash_list_rows()}
    return ({"end_to_end_id": o.payment.end_to_end_id, "citizen_id": o.payment.citizen_id,
             "programme": o.payment.programme, "period": o.payment.period,
             "amount_vnd": o.payment.amount_vnd, "status": str(o.status),
             "reason_code": o.reason_code or "", "participant_bic": o.payment.creditor_bic,
             "account_id": o.payment.account_id, "cash": o.payment.end_to_end_id in cash}
            for o in result.outcomes)
