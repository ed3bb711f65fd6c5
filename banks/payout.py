"""Where each beneficiary's payment ended, and the files and figures made from it: the
per-beneficiary results, the post office's cash list, and the run's summary.
"""

from __future__ import annotations

import csv
import functools
import json
import statistics
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from banks.columns import Rows
from banks.payment_table import EXCEL_ENCODING, Payment, PaymentTable, excel_cell
from protocol import reasons
from protocol.messages import TxStatus
from protocol.wording import count


class PayoutStatus(StrEnum):
    """Where a beneficiary's payment ended."""

    PAID = "paid"  # settled into the account
    REJECTED = "rejected"  # refused by the switch or the bank; no money moved
    RETURNED = "returned"  # settled, then sent back by the bank (pacs.004)
    STOPPED = "stopped"  # verification (acmt.024) said no: never sent, paid in cash instead
    UNRESOLVED = "unresolved"  # no final status within the deadline: investigate, never pay cash


class Verdict(NamedTuple):
    """A final status as the treasury keeps it, one per end-to-end id: a million of them share
    a handful of objects instead of holding the decoded message's strings."""

    status: TxStatus
    reason_code: str | None = None


# The few distinct verdicts, each made once: a million final statuses share them.
shared_verdict = functools.lru_cache(maxsize=256)(Verdict)


@dataclass(slots=True)
class Outcome:
    """One beneficiary's final status; `returned_vnd` is what came back (returns may be partial)."""

    payment: Payment
    status: PayoutStatus
    reason_code: str | None = None
    returned_vnd: int = 0


class Outcomes(Rows[Outcome]):
    """Each row's outcome of a payment table, in its order: four bytes a row (a code for
    its status and reason) where an `Outcome` is ~60 and its list 8 more. Each `Outcome`
    is made when asked for."""

    def __init__(self, table: PaymentTable) -> None:
        self._table = table
        self._kinds: list[tuple[PayoutStatus, str | None]] = []
        self._kind_codes: dict[tuple[PayoutStatus, str | None], int] = {}
        self._rows = array("I")
        self._returned_vnd: dict[int, int] = {}  # by row: the few that came back

    def append(self, status: PayoutStatus, reason_code: str | None = None,
               returned_vnd: int = 0) -> None:
        """The next row's outcome."""
        kind = (status, reason_code)
        code = self._kind_codes.get(kind)
        if code is None:
            code = self._kind_codes[kind] = len(self._kinds)
            self._kinds.append(kind)
        if returned_vnd:
            self._returned_vnd[len(self._rows)] = returned_vnd
        self._rows.append(code)

    def __len__(self) -> int:
        return len(self._rows)

    def _item(self, row: int) -> Outcome:
        return Outcome(self._table[row], *self._kinds[self._rows[row]],
                       self._returned_vnd.get(row, 0))

    def figures(self) -> Iterator[tuple[PayoutStatus, str | None, int, int]]:
        """(status, reason code, VND returned, VND paid) a row, read from the columns
        without making any `Payment`."""
        kinds, returned_vnd, table = self._kinds, self._returned_vnd, self._table
        for row, code in enumerate(self._rows):
            status, reason_code = kinds[code]
            yield status, reason_code, returned_vnd.get(row, 0), table.amount_vnd(row)


MAX_LATENCY_SAMPLES = 1_000_000  # 17 bytes each: 17 MB at most; enough for any percentile


def percentile(values: list[float], q: int) -> float:
    """The q-th percentile (1 to 99) of `values`, inclusive method; 0.0 when empty."""
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


class LatencyLog:
    """Each transfer's time from its first submission to its final status at the treasury,
    with when it became final, whether it settled, and its creditor: what the report and the
    live view plot.

    Kept in compact arrays (18 bytes a transfer) because a payout day has millions; past
    `limit` samples new ones are dropped and counted in `dropped`.
    """

    def __init__(self, limit: int = MAX_LATENCY_SAMPLES) -> None:
        self.limit = limit
        self.finished_s = array("d")  # time.monotonic() when final
        self.latency_ms = array("d")
        self.settled = array("B")  # 1 settled, 0 rejected
        self._creditor = array("B")  # index into self.creditors
        self.creditors: list[str] = []
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.latency_ms)

    def add(self, finished_s: float, latency_ms: float, creditor_bic: str,
            settled: bool = True) -> None:
        if len(self.latency_ms) >= self.limit:
            self.dropped += 1
            return
        if creditor_bic not in self.creditors:
            if len(self.creditors) >= 255:  # the index is one byte: beyond, not attributed
                creditor_bic = self.creditors[-1]
            else:
                self.creditors.append(creditor_bic)
        self.finished_s.append(finished_s)
        self.latency_ms.append(latency_ms)
        self.settled.append(settled)
        self._creditor.append(self.creditors.index(creditor_bic))

    def by_creditor(self) -> dict[str, list[float]]:
        """Latencies in ms per creditor BIC, in one pass."""
        grouped: dict[str, list[float]] = {bic: [] for bic in self.creditors}
        for ms, who in zip(self.latency_ms, self._creditor, strict=True):
            grouped[self.creditors[who]].append(ms)
        return grouped

    def over_time(self, started_s: float, buckets: int = 60) -> list[dict[str, float]]:
        """p50 and p99 per time bucket, times in s from `started_s`: [{t_s, p50, p99, count}]
        at each bucket's end, empty buckets left out; at most `buckets` of them."""
        if not self.latency_ms:
            return []
        span_s = max(max(self.finished_s) - started_s, 1e-3)
        width_s = span_s / buckets
        grouped: dict[int, list[float]] = {}
        for at, ms in zip(self.finished_s, self.latency_ms, strict=True):
            grouped.setdefault(min(int((at - started_s) / width_s), buckets - 1), []).append(ms)
        return [{"t_s": round((index + 1) * width_s, 3), "p50": round(percentile(v, 50), 2),
                 "p99": round(percentile(v, 99), 2), "count": len(v)}
                for index, v in sorted(grouped.items())]


RESULT_COLUMNS = ("end_to_end_id", "citizen_id", "name", "amount_vnd", "creditor_bic", "status",
                  "reason_code")
NO_ACCOUNT_VI, NO_ACCOUNT_EN = "chưa có tài khoản liên kết", "no linked account"


UNPAID = (PayoutStatus.REJECTED, PayoutStatus.RETURNED, PayoutStatus.STOPPED)
# Stopped by the population register for the ministry to correct (unknown CCCD, another name
# or birth date, banks/ministry.py): neither cash nor the deceased list.
TO_CORRECT = frozenset({reasons.UNKNOWN_CITIZEN, reasons.REGISTER_NAME_MISMATCH,
                        reasons.REGISTER_BIRTH_DATE_MISMATCH})


@dataclass
class PayoutResult:
    """Every beneficiary's outcome, with counts and amounts for the report and reconciliation.

    The outcomes are gone through once, here: a million of them made from a table's columns
    (`Outcomes`) cost seconds a pass, and the report asks for a dozen figures."""

    outcomes: Sequence[Outcome]
    elapsed_s: float
    submissions: int = 0  # pacs.008 messages sent, resends included
    inquiries: int = 0  # pacs.028 messages sent
    resends: int = 0  # transfers sent again after the switch answered AG09
    by_status: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)  # rejections and returns
    _vnd: Counter[str | None] = field(default_factory=Counter, init=False, repr=False)
    _reasons: dict[str, Counter[str]] = field(default_factory=dict, init=False, repr=False)
    _unpaid: list[int] = field(default_factory=list, init=False, repr=False)  # their indexes

    def __post_init__(self) -> None:
        figures = self.outcomes.figures() if isinstance(self.outcomes, Outcomes) else (
            (o.status, o.reason_code, o.returned_vnd, o.payment.amount_vnd)
            for o in self.outcomes)
        vnd, reasons_by_status = self._vnd, self._reasons
        for index, (status, reason_code, returned_vnd, amount_vnd) in enumerate(figures):
            self.by_status[status] += 1
            if reason_code:
                self.by_reason[reason_code] += 1
            reasons_by_status.setdefault(status, Counter())[
                reason_code or reasons.NOT_SPECIFIED] += 1
            vnd[None] += amount_vnd
            vnd[PayoutStatus.RETURNED] += returned_vnd
            if status in (PayoutStatus.PAID, PayoutStatus.RETURNED):
                vnd[PayoutStatus.PAID] += amount_vnd - returned_vnd
            else:
                vnd[status] += amount_vnd
            if status in UNPAID:
                self._unpaid.append(index)

    def amount_vnd(self, status: str | None = None) -> int:
        """Money by where it ended: "paid" is what beneficiaries kept, "returned" what came back,
        "rejected" what never left, "unresolved" what is unknown; None is everything submitted.

        So a partly returned transfer counts its kept part as paid and the rest as returned,
        and the four always add up to the submitted total.
        """
        return self._vnd[status]

    @property
    def submitted_vnd(self) -> int:
        return self.amount_vnd()

    @property
    def paid_vnd(self) -> int:
        """What beneficiaries kept: settled into their accounts and not returned."""
        return self.amount_vnd(PayoutStatus.PAID)

    @property
    def settled_vnd(self) -> int:
        """What the treasury was debited: every settled transfer, returned since or not."""
        return self.paid_vnd + self.returned_vnd

    @property
    def rejected_vnd(self) -> int:
        return self.amount_vnd(PayoutStatus.REJECTED)

    @property
    def returned_vnd(self) -> int:
        return self.amount_vnd(PayoutStatus.RETURNED)

    @property
    def unresolved_vnd(self) -> int:
        return self.amount_vnd(PayoutStatus.UNRESOLVED)

    @property
    def transfers_per_s(self) -> float:
        return len(self.outcomes) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def reasons_for(self, status: PayoutStatus) -> Counter[str]:
        """Reason codes of the outcomes in one status (rejections and returns differ)."""
        return Counter(self._reasons.get(status, {}))

    def as_dict(self) -> dict[str, object]:
        return {
            "transfers": len(self.outcomes), "elapsed_s": round(self.elapsed_s, 3),
            "transfers_per_s": round(self.transfers_per_s, 1),
            "by_status": dict(self.by_status),
            "rejected_by_reason": dict(self.reasons_for(PayoutStatus.REJECTED)),
            "returned_by_reason": dict(self.reasons_for(PayoutStatus.RETURNED)),
            "submitted_vnd": self.submitted_vnd, "settled_vnd": self.settled_vnd,
            "paid_vnd": self.paid_vnd, "rejected_vnd": self.rejected_vnd,
            "returned_vnd": self.returned_vnd, "unresolved_vnd": self.unresolved_vnd,
            "submissions": self.submissions, "inquiries": self.inquiries,
            "resends": self.resends,
        }

    def write(self, path: Path) -> None:
        """One row per beneficiary, as JSON for a .json path and CSV otherwise."""
        _write_rows(path, RESULT_COLUMNS, ({
            "end_to_end_id": o.payment.end_to_end_id, "citizen_id": o.payment.citizen_id,
            "name": o.payment.full_name, "amount_vnd": o.payment.amount_vnd,
            "creditor_bic": o.payment.creditor_bic, "status": str(o.status),
            "reason_code": o.reason_code or "",
        } for o in self.outcomes))

    def _unpaid_rows(self, deceased: bool) -> list[dict[str, object]]:
        """Rejected, returned (for the amount that came back) and stopped payments, those
        reported deceased (MD07) or the others, as rows for the lists people read
        (banks/cash_list.py `list_row` makes them rows of its LIST_COLUMNS)."""
        rows = []
        for index in self._unpaid:
            o = self.outcomes[index]
            code = o.reason_code or reasons.NOT_SPECIFIED
            if code in TO_CORRECT or (code == reasons.CREDITOR_DECEASED) != deceased:
                continue
            p = o.payment
            rows.append({
                "citizen_id": p.citizen_id, "full_name": p.full_name,
                "amount_vnd": p.amount_vnd, "returned_vnd": o.returned_vnd,
                "programme": p.programme, "period": p.period, "arrears": p.arrears,
                "province": p.province, "district": p.district, "commune": p.commune,
                "address": p.address,
                "end_to_end_id": p.end_to_end_id, "status": str(o.status), "reason_code": code,
                "reason_vi": reasons.DESCRIPTIONS_VI.get(code, "lý do chưa được mô tả"),
                "reason_en": reasons.DESCRIPTIONS.get(code, "reason not described by the scheme"),
            })
        return rows

    def cash_list_rows(self, without_account: Iterable[Mapping[str, object]] = ()
                       ) -> list[dict[str, object]]:
        """Everyone the post office must pay in cash, with why (in Vietnamese and English).

        That is whoever has no linked account (`without_account`: rows with citizen_id,
        full_name, amount_vnd, programme and the optional columns of the payment table,
        e.g. Population.without_account_rows), was rejected, was
        returned (for the amount that came back), or was stopped by verification.
        Unresolved transfers are left out on purpose: they may have settled, and paying them
        in cash could pay twice; they are investigated first. Beneficiaries reported
        deceased (MD07) are left out too: they go back to the ministry (`deceased_rows`).
        """
        return [{**row, "status": "no_account", "reason_code": "",
                 "reason_vi": NO_ACCOUNT_VI, "reason_en": NO_ACCOUNT_EN}
                for row in without_account] + self._unpaid_rows(deceased=False)

    def deceased_rows(self) -> list[dict[str, object]]:
        """Beneficiaries a participant reported deceased (MD07), rejected, returned or
        stopped: the list back to the labour ministry, never paid in cash."""
        return self._unpaid_rows(deceased=True)

    def summary(self) -> str:
        """The run for a terminal: counts and amounts by status, reasons described, speed."""
        def line(label: str, count: int | str, amount_vnd: int) -> str:
            text = f"{count:,}" if isinstance(count, int) else count
            return f"  {label:<22}{text:>11}  {amount_vnd:>22,} VND"

        pace = (f"in {self.elapsed_s:,.2f} s ({self.transfers_per_s:,.0f} transfers/s)"
                if self.submissions else "(no pacs.008 sent in this run)")
        lines = [f"Payout of {count(len(self.outcomes), 'transfer')} {pace}",
                 line("submitted", len(self.outcomes), self.submitted_vnd)]
        for status in PayoutStatus:
            lines.append(line(status.value, self.by_status[status], self.amount_vnd(status)))
            if status in (PayoutStatus.REJECTED, PayoutStatus.RETURNED, PayoutStatus.STOPPED):
                lines += [f"      {code}  {count:>9,}  "
                          f"{reasons.DESCRIPTIONS.get(code, 'reason not described')}"
                          for code, count in sorted(self.reasons_for(status).items())]
        lines += [line("settled (debited)", "", self.settled_vnd),
                  f"  messages: {self.submissions:,} pacs.008, {self.inquiries:,} pacs.028; "
                  f"{count(self.resends, 'transfer')} resent after AG09"]
        return "\n".join(lines)


def _write_rows(path: Path, columns: tuple[str, ...], rows: Iterable[Mapping[str, object]]
                ) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        listed = [{column: row.get(column, "") for column in columns} for row in rows]
        path.write_text(json.dumps(listed, ensure_ascii=False, indent=1), encoding="utf-8")
        return
    with path.open("w", newline="", encoding=EXCEL_ENCODING) as file:
        writer = csv.DictWriter(file, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows({column: excel_cell(value) for column, value in row.items()}
                         for row in rows)
