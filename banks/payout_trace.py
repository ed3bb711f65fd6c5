"""Each row of a payment table traced to where it ended, and the run's counts made from the
same rows once, so that the terminal, summary.json, the report and the files agree.

A row is traced by its table line: the refused ones (the table check), the ones another run
of the treasury paid, listed or is paying (the payout register), and the ones this run paid,
with every end-to-end id it was sent under, the bank and account that received it (for a row
paid by citizen id, the account the switch's directory links), the final status with its
reason code and text, and the masked holder name where verification stopped it. Reason codes
are carried as they come (code and text): an outcome this module does not know still flows
to the files. The counts are defined in docs/payment-table.md ("The counts").
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from banks.payment_table import CheckedTable, Payment
from banks.payout import TO_CORRECT, PayoutResult, PayoutStatus
from banks.payout_register import Entry, EntryState
from protocol import reasons
from protocol.ids import is_bic
from protocol.messages import MAX_NAME_CHARS, VerificationResult

NO_BANK = "(no account)"  # a row paid by citizen id that no account is linked to
# A refused row's group when the table gave no bank (or no programme) for it, or gave text
# that is not a BIC: a hostile cell must not open a group of its own per row.
NONE_GIVEN, NOT_A_BIC = "(none)", "(not a BIC)"
REFUSED, EARLIER = "refused", "earlier"  # statuses of rows this run did not try to pay
CASH, DECEASED = "cash", "deceased"  # the lists for people
# Reasons that send a row to the ministry's deceased list rather than the post office's.
DECEASED_CODES = frozenset({reasons.CREDITOR_DECEASED})
UNPAID = frozenset({PayoutStatus.REJECTED, PayoutStatus.RETURNED, PayoutStatus.STOPPED})
UNRESOLVED_TEXT = "no final status within the time limit: run the same command again"
TRACE_COLUMNS = ("line", "citizen_id", "full_name", "amount_vnd", "programme", "period",
                 "arrears", "province", "district", "commune", "address", "paid_by",
                 "creditor_bic", "account_id", "end_to_end_id", "ids_sent", "status",
                 "reason_code", "reason_text", "masked_name", "returned_vnd", "listed")
# The counts, in the order people read them; each defined in docs/payment-table.md.
COUNTS = ("rows", "refused", "earlier", "stopped", "sent", "resent", "paid", "returned",
          "rejected", "unresolved", "cash", "deceased")


def list_for(code: str) -> str:
    """The list an unpaid row (rejected, returned, stopped) goes on, by its reason: the
    ministry's deceased list, or the post office's cash list; "" none (a reason the ministry
    must correct first is paid by no one yet)."""
    if code in DECEASED_CODES:
        return DECEASED
    return "" if code in TO_CORRECT else CASH


def reason_text(code: str, vietnamese: bool = False) -> str:
    """A reason code's words, for any code (one the scheme does not describe says so)."""
    if vietnamese:
        return reasons.DESCRIPTIONS_VI.get(code, "lý do chưa được mô tả")
    return reasons.DESCRIPTIONS.get(code, "reason not described by the scheme")


@dataclass
class RunRows:
    """What this run did with the rows it paid: `rows` are the table's good rows it paid, in
    its order (the others are refused or held by another run); `result` their outcomes in
    the same order; `ids_sent[i]` every end-to-end id row `rows[i]` went under."""

    rows: Sequence[int]
    result: PayoutResult
    ids_sent: Callable[[int], list[str]]
    verified: Mapping[str, VerificationResult] = field(default_factory=dict)
    # citizen id -> (bank BIC, account) the switch's directory links, for rows paid by it
    linked: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Figures:
    """The counts and amounts of a traced run, with outcomes by reason, bank and programme:
    made in one pass over the trace, the one source of every figure shown."""

    counts: Counter[str] = field(default_factory=Counter)
    amounts_vnd: Counter[str] = field(default_factory=Counter)
    by_reason: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    by_bank: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_programme: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, row: Mapping[str, Any]) -> None:
        status, amount_vnd = row["status"], row["amount_vnd"]
        counts, amounts = self.counts, self.amounts_vnd
        counts["rows"] += 1
        counts[status] += 1
        amounts[status] += amount_vnd if isinstance(amount_vnd, int) else 0
        if status == REFUSED:  # counted by bank and programme; its amount is as written
            self.by_bank[_refused_bank(row["creditor_bic"])][REFUSED] += 1
            self.by_programme[row["programme"][:MAX_NAME_CHARS] or NONE_GIVEN][REFUSED] += 1
            return
        if row["ids_sent"]:
            counts["sent"] += 1
            amounts["sent"] += amount_vnd
            if " " in row["ids_sent"]:
                counts["resent"] += 1
        if row["listed"]:
            counts[row["listed"]] += 1
            amounts[row["listed"]] += row["returned_vnd"] or amount_vnd
        if status != EARLIER:
            reason = self.by_reason.setdefault((status, row["reason_code"]),
                                               [0, 0, row["reason_text"]])
            reason[0] += 1
            reason[1] += amount_vnd
        for group in (self.by_bank[row["creditor_bic"] or NO_BANK],
                      self.by_programme[row["programme"]]):
            group[status] += 1
            group[f"{status}_vnd"] += amount_vnd

    def as_dict(self) -> dict[str, Any]:
        """For summary.json: every count (zeros included), amounts, and the breakdowns."""
        return {
            "counts": {name: self.counts[name] for name in COUNTS},
            "amounts_vnd": {name: self.amounts_vnd[name] for name in COUNTS
                            if name not in ("rows", "refused", "resent")},
            "by_reason": [{"status": status, "reason_code": code, "reason_text": text,
                           "count": count, "amount_vnd": amount}
                          for (status, code), (count, amount, text)
                          in sorted(self.by_reason.items())],
            "by_bank": {bic: dict(group) for bic, group in sorted(self.by_bank.items())},
            "by_programme": {name: dict(group)
                             for name, group in sorted(self.by_programme.items())},
        }


def _refused_bank(creditor_bic: str) -> str:
    """The bank a refused row is counted under: the BIC the table gave, else a line of its
    own (none given, or text that is no BIC)."""
    if not creditor_bic:
        return NONE_GIVEN
    return creditor_bic if is_bic(creditor_bic) else NOT_A_BIC


def trace(table: CheckedTable, earlier: Mapping[int, Entry], run: RunRows
          ) -> Iterator[dict[str, Any]]:
    """Every row of the table, in line order, as TRACE_COLUMNS: refused lines (their
    problems joined), rows held by another run (`earlier`, by line), and this run's rows."""
    refused: dict[int, list[str]] = defaultdict(list)
    for line, problem in table.problems:
        refused[line].append(problem)
    position = run.rows if isinstance(run.rows, range) else _positions(run.rows,
                                                                       len(table.payments))
    pending = iter(sorted(refused))
    next_refused = next(pending, None)
    for row, payment in enumerate(table.payments):
        line = table.lines[row]
        while next_refused is not None and next_refused < line:
            yield _refused(next_refused, refused[next_refused],
                           table.refused_rows.get(next_refused, {}))
            next_refused = next(pending, None)
        entry = earlier.get(line)
        if entry is not None:
            yield _earlier(line, payment, entry)
        else:
            yield _traced(line, payment, position[row], run)
    while next_refused is not None:
        yield _refused(next_refused, refused[next_refused],
                       table.refused_rows.get(next_refused, {}))
        next_refused = next(pending, None)


def _positions(rows: Sequence[int], size: int) -> array[int]:
    """Where each of `size` table rows is in `rows` (-1: not there): 8 bytes a row, where a
    dict of a million rows is ~100 MB."""
    positions = array("q", [-1]) * size
    for index, row in enumerate(rows):
        positions[row] = index
    return positions


def _base(line: int, payment: Payment) -> dict[str, Any]:
    return {"line": line, "citizen_id": payment.citizen_id, "full_name": payment.full_name,
            "amount_vnd": payment.amount_vnd, "programme": payment.programme,
            "period": payment.period, "arrears": payment.arrears,
            "province": payment.province, "district": payment.district,
            "commune": payment.commune, "address": payment.address,
            "paid_by": "account" if payment.account_id else "citizen_id",
            "creditor_bic": payment.creditor_bic, "account_id": payment.account_id,
            "end_to_end_id": payment.end_to_end_id, "ids_sent": "", "masked_name": "",
            "returned_vnd": 0, "listed": ""}


def _refused(line: int, problems: list[str], written: Mapping[str, str]) -> dict[str, Any]:
    """A refused line with whatever the table gave for it (citizen id, name, amount as
    written…), so a clerk reads results.csv without going back to the table."""
    return {column: written.get(column, "") for column in TRACE_COLUMNS} | {
        "line": line, "returned_vnd": 0, "status": REFUSED,
        "paid_by": "", "ids_sent": "", "reason_code": "", "masked_name": "", "listed": "",
        "reason_text": "; ".join(problems)}


def _earlier(line: int, payment: Payment, entry: Entry) -> dict[str, Any]:
    """A row another run holds, with the account that run paid (its own row's, or the one
    the directory linked) when it paid one."""
    row = _base(line, payment) | {"status": EARLIER, "reason_code": entry.state.value,
                                  "reason_text": entry.sentence()}
    if entry.creditor_bic:
        row["creditor_bic"], row["account_id"] = entry.creditor_bic, entry.account_id
    return row


def _traced(line: int, payment: Payment, index: int, run: RunRows) -> dict[str, Any]:
    outcome = run.result.outcomes[index]
    row = _base(line, payment)
    ids = run.ids_sent(index)
    code = outcome.reason_code or ""
    verification = next(filter(None, map(run.verified.get, reversed(ids or [
        payment.end_to_end_id]))), None)
    if not payment.account_id and payment.citizen_id in run.linked:
        row["creditor_bic"], row["account_id"] = run.linked[payment.citizen_id]
    status = outcome.status
    sent = status != PayoutStatus.STOPPED and not (status == PayoutStatus.UNRESOLVED and code)
    listed = list_for(code) if status in UNPAID else ""
    return row | {
        "ids_sent": " ".join(ids) if sent else "",
        "status": status.value, "reason_code": code,
        "reason_text": (reason_text(code) if code else
                        UNRESOLVED_TEXT if status == PayoutStatus.UNRESOLVED else ""),
        "masked_name": (verification.masked_name or "") if verification and not (
            verification.verified) else "",
        "returned_vnd": outcome.returned_vnd, "listed": listed}


def register_state(row: Mapping[str, Any]) -> EntryState | None:
    """Where a traced row of this run leaves its key in the register; None: still claimed
    (unresolved), or not this run's."""
    if row["status"] in (REFUSED, EARLIER, PayoutStatus.UNRESOLVED):
        return None
    if row["listed"] == DECEASED:
        return EntryState.DECEASED
    return EntryState.CASH if row["listed"] == CASH else EntryState.PAID
