"""The mock State Treasury: pays a payment table through the switch and reconciles it.

It is the debtor side of a payout day. It submits in bulk files (the switch answers ACTC and
pushes final statuses to its inbound endpoint) or one transfer at a time (the final status
comes back in the answer). It never resends blindly: when an answer is lost it asks the switch
(pacs.028) and resends only what the switch says it never received (AG09). It ends with one
final status per beneficiary, a cash list for the post office, and a reconciliation of its
figures against the switch's and the banks' to the dong.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from protocol import reasons
from protocol.codec import MAX_TRANSACTIONS_PER_MESSAGE, new_id
from protocol.http import SWITCH_MESSAGES_PATH, Peer, read_signed
from protocol.messages import (
    CreditTransfer,
    CreditTransferMessage,
    PaymentReturn,
    PaymentStatusReport,
    StatusRequest,
    StatusRequestItem,
    TransactionStatus,
    TxStatus,
)

INBOUND_PATH = "/iso20022"
MAX_IDS_PER_INQUIRY = 1_000
CITIZEN_ID = re.compile(r"^\d{12}$")
BIC = re.compile(r"^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$")
TREASURY = web.AppKey("treasury", "Treasury")


@dataclass(frozen=True, slots=True)
class Payment:
    citizen_id: str
    full_name: str
    amount_vnd: int
    creditor_bic: str
    account_id: str
    programme: str
    end_to_end_id: str


class PaymentTableError(Exception):
    """The payment table has bad rows; the message lists them by line number."""


def read_payment_table(path: Path) -> list[Payment]:
    """Read and check the labour ministry's CSV; every bad row is named by its line."""
    payments, problems, seen = [], [], set()
    with path.open(newline="", encoding="utf-8") as file:
        for line, row in enumerate(csv.DictReader(file), start=2):
            problem = _row_problem(row, seen)
            if problem:
                problems.append(f"line {line}: {problem}")
                continue
            seen.add(row["end_to_end_id"])
            payments.append(Payment(
                citizen_id=row["citizen_id"], full_name=row["full_name"].strip(),
                amount_vnd=int(row["amount_vnd"]), creditor_bic=row["creditor_bic"],
                account_id=row["account_id"], programme=row["programme"],
                end_to_end_id=row["end_to_end_id"],
            ))
    if problems:
        shown = "\n".join(problems[:20])
        more = f"\n… and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise PaymentTableError(f"{path}: {len(problems)} bad rows\n{shown}{more}")
    return payments


def _row_problem(row: dict[str, str | None], seen: set[str]) -> str | None:
    if not CITIZEN_ID.match(row.get("citizen_id") or ""):
        return f"citizen_id {row.get('citizen_id')!r} is not 12 digits"
    if not (row.get("full_name") or "").strip():
        return "full_name is empty"
    if not (row.get("amount_vnd") or "").isdigit() or int(row["amount_vnd"] or 0) <= 0:
        return f"amount_vnd {row.get('amount_vnd')!r} is not a positive whole number of dong"
    if not BIC.match(row.get("creditor_bic") or ""):
        return f"creditor_bic {row.get('creditor_bic')!r} is not a BIC"
    if not row.get("account_id"):
        return "account_id is empty"
    e2e = row.get("end_to_end_id") or ""
    if not 0 < len(e2e) <= 35:
        return f"end_to_end_id {e2e!r} must be 1 to 35 characters"
    if e2e in seen:
        return f"end_to_end_id {e2e} appears twice"
    return None


@dataclass
class TreasuryConfig:
    bic: str
    secret: bytes
    switch_url: str
    switch_bic: str
    switch_secret: bytes
    name: str = "Kho bạc Nhà nước"
    account_id: str = "KBNN-TW-0001"
    mode: str = "bulk"  # or "instant"
    bulk_size: int = 1_000
    concurrency: int = 64  # instant transfers in flight
    files_in_flight: int = 4
    request_timeout_s: float = 30.0
    quiet_period_s: float = 2.0  # no news for this long: ask about the stragglers
    final_timeout_s: float = 300.0
    max_resends: int = 3

    def __post_init__(self) -> None:
        if self.mode not in ("bulk", "instant"):
            raise ValueError("mode must be 'bulk' or 'instant'")
        if not 1 <= self.bulk_size <= MAX_TRANSACTIONS_PER_MESSAGE:
            raise ValueError(f"bulk_size must be 1 to {MAX_TRANSACTIONS_PER_MESSAGE}")
        if self.concurrency < 1 or self.files_in_flight < 1:
            raise ValueError("concurrency and files_in_flight must be at least 1")


@dataclass(slots=True)
class Outcome:
    payment: Payment
    status: str  # paid, rejected, returned, unresolved
    reason_code: str | None = None


@dataclass
class PayoutResult:
    outcomes: list[Outcome]
    elapsed_s: float
    submissions: int = 0
    inquiries: int = 0
    resends: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for outcome in self.outcomes:
            self.by_status[outcome.status] += 1
            if outcome.reason_code:
                self.by_reason[outcome.reason_code] += 1

    def amount_vnd(self, status: str | None = None) -> int:
        return sum(o.payment.amount_vnd for o in self.outcomes
                   if status is None or o.status == status)

    @property
    def transfers_per_s(self) -> float:
        return len(self.outcomes) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "transfers": len(self.outcomes), "elapsed_s": round(self.elapsed_s, 3),
            "transfers_per_s": round(self.transfers_per_s, 1),
            "by_status": dict(self.by_status), "by_reason": dict(self.by_reason),
            "submitted_vnd": self.amount_vnd(), "paid_vnd": self.amount_vnd("paid"),
            "rejected_vnd": self.amount_vnd("rejected"),
            "returned_vnd": self.amount_vnd("returned"),
            "unresolved_vnd": self.amount_vnd("unresolved"),
            "submissions": self.submissions, "inquiries": self.inquiries,
            "resends": self.resends,
        }

    def write(self, path: Path) -> None:
        """One row per beneficiary, as CSV or JSON by the file's extension."""
        rows = [{"end_to_end_id": o.payment.end_to_end_id, "citizen_id": o.payment.citizen_id,
                 "full_name": o.payment.full_name, "amount_vnd": o.payment.amount_vnd,
                 "creditor_bic": o.payment.creditor_bic, "status": o.status,
                 "reason_code": o.reason_code or ""} for o in self.outcomes]
        _write_rows(path, rows)

    def write_cash_list(self, path: Path, without_account: Iterable[dict[str, object]] = ()
                        ) -> int:
        """Everyone the post office must pay in cash: no account, rejected, or returned."""
        rows = [dict(row) | {"reason": "no linked account"} for row in without_account]
        rows += [{"citizen_id": o.payment.citizen_id, "full_name": o.payment.full_name,
                  "amount_vnd": o.payment.amount_vnd, "programme": o.payment.programme,
                  "reason": f"{o.status} {o.reason_code or ''}: "
                            f"{reasons.DESCRIPTIONS.get(o.reason_code or '', '')}".strip()}
                 for o in self.outcomes if o.status in ("rejected", "returned")]
        _write_rows(path, rows)
        return len(rows)

    def summary(self) -> str:
        lines = [
            f"Payout of {len(self.outcomes):,} transfers in {self.elapsed_s:.2f} s "
            f"({self.transfers_per_s:,.0f} transfers/s)",
            f"  paid:       {self.by_status['paid']:>9,}  {self.amount_vnd('paid'):>20,} VND",
            f"  rejected:   {self.by_status['rejected']:>9,}  "
            f"{self.amount_vnd('rejected'):>20,} VND",
            f"  returned:   {self.by_status['returned']:>9,}  "
            f"{self.amount_vnd('returned'):>20,} VND",
            f"  unresolved: {self.by_status['unresolved']:>9,}  "
            f"{self.amount_vnd('unresolved'):>20,} VND",
        ]
        if self.by_reason:
            lines.append("  by reason:")
            lines += [f"    {code}  {count:>8,}  {reasons.DESCRIPTIONS.get(code, '')}"
                      for code, count in self.by_reason.most_common()]
        lines.append(f"  messages: {self.submissions:,} submitted, {self.inquiries:,} "
                     f"inquiries, {self.resends:,} transfers resent after AG09")
        return "\n".join(lines)


def _write_rows(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else ["citizen_id"])
        writer.writeheader()
        writer.writerows(rows)


class Treasury:
    def __init__(self, config: TreasuryConfig) -> None:
        self.config = config
        self.final: dict[str, TransactionStatus] = {}
        self.returned: dict[str, str] = {}  # e2e -> return reason
        self.news = asyncio.Event()
        self.session: aiohttp.ClientSession | None = None
        self.submissions = self.inquiries = self.resends = 0
        self.duplicates_refused = 0
        self.latencies_ms: list[tuple[float, float]] = []  # (finished at, instant latency)
        self.elapsed_s = 0.0
        self._progress: Callable[[int, int], None] | None = None
        self._total = 0

    def app(self) -> web.Application:
        """The inbound endpoint where the switch pushes bulk reports and returns."""
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app[TREASURY] = self
        app.router.add_post(INBOUND_PATH, _inbound)
        return app

    @property
    def switch(self) -> Peer:
        assert self.session is not None
        return Peer(self.session, f"{self.config.switch_url}{SWITCH_MESSAGES_PATH}",
                    self.config.bic, self.config.secret, self.config.switch_bic,
                    timeout_s=self.config.request_timeout_s)

    def record(self, statuses: Iterable[TransactionStatus]) -> None:
        """Keep final statuses; a DUPL refusal says nothing about the original transfer."""
        for status in statuses:
            if status.status not in (TxStatus.SETTLED, TxStatus.REJECTED):
                continue
            if status.status is TxStatus.REJECTED and status.reason_code == reasons.DUPLICATE:
                self.duplicates_refused += 1
                continue
            self.final.setdefault(status.original_end_to_end_id, status)
        self.news.set()
        if self._progress is not None:
            self._progress(len(self.final), self._total)

    def _transaction(self, payment: Payment) -> CreditTransfer:
        return CreditTransfer(
            end_to_end_id=payment.end_to_end_id, tx_id=payment.end_to_end_id,
            amount_vnd=payment.amount_vnd, amount_text=str(payment.amount_vnd),
            debtor_name=self.config.name, debtor_account=self.config.account_id,
            debtor_agent_bic=self.config.bic, creditor_name=payment.full_name,
            creditor_account=payment.account_id, creditor_agent_bic=payment.creditor_bic,
            creditor_citizen_id=payment.citizen_id, remittance_info=payment.programme,
        )

    def message(self, payments: list[Payment]) -> CreditTransferMessage:
        """The pacs.008 the treasury sends for these payments."""
        return CreditTransferMessage(
            msg_id=new_id("KBNN"), created_at=datetime.now(UTC),
            instructing_agent_bic=self.config.bic, instructed_agent_bic=self.config.switch_bic,
            transactions=[self._transaction(p) for p in payments],
        )

    async def _submit(self, payments: list[Payment], slots: asyncio.Semaphore) -> None:
        """Send one message; a lost answer is left for the inquiry, never resent blindly."""
        async with slots:
            self.submissions += 1
            sent_s = time.monotonic()
            try:
                reply = await self.switch.send(self.message(payments))
            except (aiohttp.ClientError, OSError, TimeoutError):
                return
            if len(payments) == 1 and reply.status == 200:
                now_s = time.monotonic()
                self.latencies_ms.append((now_s, (now_s - sent_s) * 1000.0))
            report = reply.message.document if reply.message else None
            if not isinstance(report, PaymentStatusReport):
                return
            if report.group_status is TxStatus.REJECTED:
                self.record(TransactionStatus(p.end_to_end_id, p.end_to_end_id,
                                              TxStatus.REJECTED, report.group_reason_code)
                            for p in payments)
            else:
                self.record(report.transactions)

    async def _inquire(self, ids: list[str]) -> list[str]:
        """Ask the switch about ids without a final status; returns those it never got."""
        never_received = []
        for start in range(0, len(ids), MAX_IDS_PER_INQUIRY):
            chunk = ids[start:start + MAX_IDS_PER_INQUIRY]
            self.inquiries += 1
            request = StatusRequest(msg_id=new_id("KBQ"), created_at=datetime.now(UTC),
                                    items=[StatusRequestItem(e2e) for e2e in chunk])
            try:
                reply = await self.switch.send(request)
            except (aiohttp.ClientError, OSError, TimeoutError):
                continue
            if reply.message is None or not isinstance(reply.message.document,
                                                       PaymentStatusReport):
                continue
            items = reply.message.document.transactions
            never_received += [i.original_end_to_end_id for i in items
                               if i.reason_code == reasons.PAYMENT_NOT_RECEIVED]
            self.record(i for i in items if i.reason_code != reasons.PAYMENT_NOT_RECEIVED)
        return never_received

    async def run(self, payments: list[Payment],
                  progress: Callable[[int, int], None] | None = None) -> PayoutResult:
        """Pay every row and wait, bounded by final_timeout_s, for every final status."""
        config = self.config
        self._progress, self._total = progress, len(payments)
        started_s = time.monotonic()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(config.concurrency, config.files_in_flight)))
        try:
            by_id = {p.end_to_end_id: p for p in payments}
            size = config.bulk_size if config.mode == "bulk" else 1
            slots = asyncio.Semaphore(
                config.files_in_flight if config.mode == "bulk" else config.concurrency)
            await asyncio.gather(*(self._submit(payments[i:i + size], slots)
                                   for i in range(0, len(payments), size)))
            await self._settle_stragglers(by_id, started_s, slots)
        finally:
            await self.session.close()
        self.elapsed_s = time.monotonic() - started_s
        return self.result(payments)

    def result(self, payments: list[Payment]) -> PayoutResult:
        """Each payment's outcome as known now (returns may still arrive after a run)."""
        outcomes = []
        for payment in payments:
            status = self.final.get(payment.end_to_end_id)
            if payment.end_to_end_id in self.returned:
                outcomes.append(Outcome(payment, "returned",
                                        self.returned[payment.end_to_end_id]))
            elif status is None:
                outcomes.append(Outcome(payment, "unresolved"))
            elif status.status is TxStatus.SETTLED:
                outcomes.append(Outcome(payment, "paid"))
            else:
                outcomes.append(Outcome(payment, "rejected", status.reason_code))
        return PayoutResult(outcomes, self.elapsed_s, self.submissions, self.inquiries,
                            self.resends)

    async def _settle_stragglers(self, by_id: dict[str, Payment], started_s: float,
                                 slots: asyncio.Semaphore) -> None:
        resends = 0
        while len(self.final) < len(by_id):
            remaining_s = self.config.final_timeout_s - (time.monotonic() - started_s)
            if remaining_s <= 0:
                return
            self.news.clear()
            try:
                await asyncio.wait_for(self.news.wait(),
                                       min(self.config.quiet_period_s, remaining_s))
                continue
            except TimeoutError:
                pass
            missing = [e2e for e2e in by_id if e2e not in self.final]
            never_received = await self._inquire(missing)
            if never_received and resends < self.config.max_resends:
                resends += 1
                self.resends += len(never_received)
                size = self.config.bulk_size if self.config.mode == "bulk" else 1
                await asyncio.gather(*(
                    self._submit([by_id[e] for e in never_received[i:i + size]], slots)
                    for i in range(0, len(never_received), size)))

    def forget_outcomes(self) -> None:
        """Forget every final status, as an operator about to resubmit a file by mistake."""
        self.final.clear()

    async def wait_for_returns(self, expected: int, timeout_s: float) -> int:
        """Returns arrive after settlement; wait (bounded) until `expected` have come."""
        deadline_s = time.monotonic() + timeout_s
        while len(self.returned) < expected and time.monotonic() < deadline_s:
            await asyncio.sleep(0.05)
        return len(self.returned)


async def _inbound(request: web.Request) -> web.Response:
    treasury = request.app[TREASURY]
    config = treasury.config
    _, message = await read_signed(request, {config.switch_bic: config.switch_secret})
    document = message.document
    if isinstance(document, PaymentStatusReport):
        treasury.record(document.transactions)
    elif isinstance(document, PaymentReturn):
        for item in document.items:
            treasury.returned[item.original_end_to_end_id] = item.reason_code
    return web.Response(text="ok\n")


def reconcile(result: PayoutResult, switch_stats: dict, bank_totals: list[dict]) -> list[str]:
    """Money conservation to the dong: the treasury's, the switch's and the banks' figures.

    Returns the mismatches found (an empty list when everything agrees).
    """
    problems = []
    by_state = switch_stats.get("by_state", {})
    switch_settled_vnd = sum(by_state.get(s, {}).get("amount_vnd", 0)
                             for s in ("SETTLED", "RETURNED"))
    switch_returned_vnd = switch_stats.get("returns", {}).get("amount_vnd", 0)
    treasury_debited_vnd = result.amount_vnd("paid") + result.amount_vnd("returned")
    banks_credited_vnd = sum(t["credited_vnd"] for t in bank_totals)
    banks_returned_vnd = sum(t["returned_vnd"] for t in bank_totals)
    checks = [
        ("treasury debits vs switch settlements", treasury_debited_vnd, switch_settled_vnd),
        ("switch settlements vs bank credits", switch_settled_vnd, banks_credited_vnd),
        ("treasury returns vs switch returns", result.amount_vnd("returned"),
         switch_returned_vnd),
        ("switch returns vs bank returns", switch_returned_vnd, banks_returned_vnd),
    ]
    for label, left, right in checks:
        if left != right:
            problems.append(f"{label}: {left:,} VND ≠ {right:,} VND (off by {left - right:+,})")
    early = sum(t["credited_before_confirmation"] for t in bank_totals)
    if early:
        names = [t["bic"] for t in bank_totals if t["credited_before_confirmation"]]
        problems.append(f"{early} credits made before the switch confirmed, by {names}")
    return problems
