"""The mock State Treasury: pays a payment table through the switch and reconciles it.

It is the debtor side of a payout day. It submits in bulk files (the switch answers ACTC and
pushes final statuses to its inbound endpoint) or one transfer at a time (the final status
comes back in the answer). It never resends blindly: when an answer is lost it asks the switch
(pacs.028) and resends only what the switch says it never received (AG09), which is the
scheme's rule and what keeps a retry from paying anyone twice. It ends with one final status
per beneficiary, a cash list for the post office, and a reconciliation of its figures against
the switch's and the banks' to the dong.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

from banks.population import PAYMENT_TABLE_COLUMNS
from protocol import reasons
from protocol.codec import MAX_NAME_CHARS, MAX_TRANSACTIONS_PER_MESSAGE, CodecError, new_id
from protocol.http import SWITCH_MESSAGES_PATH, Peer, Reply, read_signed
from protocol.messages import (
    CreditTransfer,
    CreditTransferMessage,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    StatusRequest,
    StatusRequestItem,
    TransactionStatus,
    TxStatus,
)

INBOUND_PATH = "/iso20022"
INBOUND_MAX_BYTES = 16 * 1024 * 1024  # the switch's reports carry at most 1,000 transactions
MAX_IDS_PER_INQUIRY = 1_000  # the scheme's limit for one pacs.028
MAX_TABLE_ROWS = 10_000_000  # a national payout day is a few million rows
MAX_AMOUNT_VND = 10**13  # far above any single social payment; also bounds int() on the input
MAX_ACCOUNT_CHARS = 34  # ISO 20022 Max34Text
MAX_ID_CHARS = 35  # ISO 20022 Max35Text
MAX_PROBLEMS_SHOWN = 20
MAX_CONCURRENCY = 10_000
MAX_FILES_IN_FLIGHT = 64
MAX_RETRIES = 20
MAX_BACKOFF_S = 5.0
MAX_LATENCY_SAMPLES = 1_000_000  # about 100 MB at most; enough for any percentile
CITIZEN_ID = re.compile(r"[0-9]{12}")
BIC = re.compile(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
AMOUNT = re.compile(r"[0-9]{1,14}")
REASON_IN_TEXT = re.compile(r"([A-Z0-9]{4}):")
TREASURY = web.AppKey("treasury", "Treasury")


class PayoutStatus(StrEnum):
    """Where a beneficiary's payment ended."""

    PAID = "paid"  # settled into the account
    REJECTED = "rejected"  # refused by the switch or the bank; no money moved
    RETURNED = "returned"  # settled, then sent back by the bank (pacs.004)
    UNRESOLVED = "unresolved"  # no final status within the deadline: investigate, never pay cash


# ---- the payment table -----------------------------------------------------------------------


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
    """Read and check the labour ministry's CSV; raise PaymentTableError naming each bad line.

    Checked before anything is sent because one unencodable row would sink a whole bulk file,
    and a wrong amount or id cannot be taken back once settled.
    """
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
    if not BIC.fullmatch(row.get("creditor_bic") or ""):
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


# ---- the outcome of a run ----------------------------------------------------------------------


class Verdict(NamedTuple):
    """A final status as the treasury keeps it, one per end-to-end id: a million of them share
    a handful of objects instead of holding the decoded message's strings."""

    status: TxStatus
    reason_code: str | None = None


_verdict = functools.lru_cache(maxsize=256)(Verdict)


@dataclass(slots=True)
class Outcome:
    """One beneficiary's final status; `returned_vnd` is what came back (returns may be partial)."""

    payment: Payment
    status: PayoutStatus
    reason_code: str | None = None
    returned_vnd: int = 0


RESULT_COLUMNS = ("end_to_end_id", "citizen_id", "name", "amount_vnd", "creditor_bic", "status",
                  "reason_code")
CASH_LIST_COLUMNS = ("citizen_id", "full_name", "amount_vnd", "programme", "end_to_end_id",
                     "status", "reason_code", "reason")


@dataclass
class PayoutResult:
    """Every beneficiary's outcome, with counts and amounts for the report and reconciliation."""

    outcomes: list[Outcome]
    elapsed_s: float
    submissions: int = 0  # pacs.008 messages sent, resends included
    inquiries: int = 0  # pacs.028 messages sent
    resends: int = 0  # transfers sent again after the switch answered AG09
    by_status: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)  # rejections and returns

    def __post_init__(self) -> None:
        for outcome in self.outcomes:
            self.by_status[outcome.status] += 1
            if outcome.reason_code:
                self.by_reason[outcome.reason_code] += 1

    def amount_vnd(self, status: str | None = None) -> int:
        """Money by where it ended: "paid" is what beneficiaries kept, "returned" what came back,
        "rejected" what never left, "unresolved" what is unknown; None is everything submitted.

        So a partly returned transfer counts its kept part as paid and the rest as returned,
        and the four always add up to the submitted total.
        """
        if status is None:
            return sum(o.payment.amount_vnd for o in self.outcomes)
        if status == PayoutStatus.PAID:
            return sum(o.payment.amount_vnd - o.returned_vnd for o in self.outcomes
                       if o.status in (PayoutStatus.PAID, PayoutStatus.RETURNED))
        if status == PayoutStatus.RETURNED:
            return sum(o.returned_vnd for o in self.outcomes)
        return sum(o.payment.amount_vnd for o in self.outcomes if o.status == status)

    @property
    def submitted_vnd(self) -> int:
        return self.amount_vnd()

    @property
    def paid_vnd(self) -> int:
        """Settled into accounts, before returns: what the treasury was debited."""
        return self.amount_vnd(PayoutStatus.PAID) + self.amount_vnd(PayoutStatus.RETURNED)

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
    def net_paid_vnd(self) -> int:
        """What beneficiaries kept: paid minus returned."""
        return self.amount_vnd(PayoutStatus.PAID)

    @property
    def transfers_per_s(self) -> float:
        return len(self.outcomes) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def reasons_for(self, status: PayoutStatus) -> Counter[str]:
        """Reason codes of the outcomes in one status (rejections and returns differ)."""
        return Counter(o.reason_code or reasons.NOT_SPECIFIED for o in self.outcomes
                       if o.status == status)

    def as_dict(self) -> dict[str, object]:
        return {
            "transfers": len(self.outcomes), "elapsed_s": round(self.elapsed_s, 3),
            "transfers_per_s": round(self.transfers_per_s, 1),
            "by_status": dict(self.by_status), "by_reason": dict(self.by_reason),
            "submitted_vnd": self.submitted_vnd, "paid_vnd": self.paid_vnd,
            "rejected_vnd": self.rejected_vnd, "returned_vnd": self.returned_vnd,
            "unresolved_vnd": self.unresolved_vnd, "net_paid_vnd": self.net_paid_vnd,
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

    def write_cash_list(self, path: Path,
                        without_account: Iterable[Mapping[str, object]] = ()) -> int:
        """Everyone the post office must pay in cash, with why; returns how many.

        That is whoever has no linked account (`without_account`: rows with citizen_id,
        full_name, amount_vnd, programme), was rejected, or was returned (for the amount that
        came back). Unresolved transfers are left out on purpose: they may have settled, and
        paying them in cash could pay twice; they are investigated first.
        """
        rows: list[Mapping[str, object]] = [
            {**row, "status": "no_account", "reason": "no linked account"}
            for row in without_account]
        for o in self.outcomes:
            if o.status not in (PayoutStatus.REJECTED, PayoutStatus.RETURNED):
                continue
            code = o.reason_code or reasons.NOT_SPECIFIED
            rows.append({
                "citizen_id": o.payment.citizen_id, "full_name": o.payment.full_name,
                "amount_vnd": o.returned_vnd or o.payment.amount_vnd,
                "programme": o.payment.programme, "end_to_end_id": o.payment.end_to_end_id,
                "status": str(o.status), "reason_code": code,
                "reason": reasons.DESCRIPTIONS.get(code, "reason not described by the scheme"),
            })
        _write_rows(path, CASH_LIST_COLUMNS, rows)
        return len(rows)

    def summary(self) -> str:
        """The run for a terminal: counts and amounts by status, reasons described, speed."""
        def line(label: str, count: int | str, amount_vnd: int) -> str:
            text = f"{count:,}" if isinstance(count, int) else count
            return f"  {label:<22}{text:>11}  {amount_vnd:>22,} VND"

        lines = [f"Payout of {len(self.outcomes):,} transfers in {self.elapsed_s:,.2f} s "
                 f"({self.transfers_per_s:,.0f} transfers/s)",
                 line("submitted", len(self.outcomes), self.submitted_vnd)]
        for status in PayoutStatus:
            lines.append(line(status.value, self.by_status[status], self.amount_vnd(status)))
            if status in (PayoutStatus.REJECTED, PayoutStatus.RETURNED):
                lines += [f"      {code}  {count:>9,}  "
                          f"{reasons.DESCRIPTIONS.get(code, 'reason not described')}"
                          for code, count in sorted(self.reasons_for(status).items())]
        lines += [line("settled (debited)", "", self.paid_vnd),
                  line("net paid", "", self.net_paid_vnd),
                  f"  messages: {self.submissions:,} pacs.008, {self.inquiries:,} pacs.028; "
                  f"{self.resends:,} transfers resent after AG09"]
        return "\n".join(lines)


def _write_rows(path: Path, columns: tuple[str, ...], rows: Iterable[Mapping[str, object]]
                ) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        listed = [{column: row.get(column, "") for column in columns} for row in rows]
        path.write_text(json.dumps(listed, ensure_ascii=False, indent=1), encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


# ---- the treasury as a participant -------------------------------------------------------------


class TreasuryError(Exception):
    """The switch refuses the treasury itself (credentials): no retry can help."""


@dataclass
class TreasuryConfig:
    """Who the treasury is, where the switch is, and how hard it may push and wait.

    `concurrency` bounds instant requests in flight, `files_in_flight` bulk files in flight.
    """

    bic: str
    secret: bytes
    switch_url: str
    switch_bic: str
    switch_secret: bytes
    name: str = "Kho bạc Nhà nước"
    account_id: str = "KBNN-TW-0001"  # the debtor account
    inbound_host: str = "127.0.0.1"
    inbound_port: int = 0  # 0: the OS chooses
    mode: str = "bulk"  # or "instant"
    bulk_size: int = 1_000  # transactions per pacs.008
    concurrency: int = 64
    files_in_flight: int = 4
    request_timeout_s: float = 30.0
    quiet_period_s: float = 2.0  # no news for this long: ask about the stragglers
    final_timeout_s: float = 300.0  # the whole run, submission to last final status
    max_retries: int = 5  # inquiry-and-resend rounds per message, and final-poll resends
    retry_backoff_s: float = 0.1  # first pause after a lost answer; doubles up to 5 s

    def __post_init__(self) -> None:
        if self.mode not in ("bulk", "instant"):
            raise ValueError("mode must be 'bulk' or 'instant'")
        if not 1 <= self.bulk_size <= MAX_TRANSACTIONS_PER_MESSAGE:
            raise ValueError(f"bulk_size must be 1 to {MAX_TRANSACTIONS_PER_MESSAGE:,}")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be 1 to {MAX_CONCURRENCY:,}")
        if not 1 <= self.files_in_flight <= MAX_FILES_IN_FLIGHT:
            raise ValueError(f"files_in_flight must be 1 to {MAX_FILES_IN_FLIGHT}")
        if not 0 <= self.max_retries <= MAX_RETRIES:
            raise ValueError(f"max_retries must be 0 to {MAX_RETRIES}")
        if min(self.request_timeout_s, self.quiet_period_s, self.final_timeout_s,
               self.retry_backoff_s) <= 0:
            raise ValueError("timeouts, quiet period and backoff must be positive")


class Treasury:
    """The debtor participant: submits, asks when unsure, keeps one final status per id."""

    def __init__(self, config: TreasuryConfig) -> None:
        self.config = config
        self.final: dict[str, Verdict] = {}  # first final status per end-to-end id
        self.returned: dict[str, PaymentReturnItem] = {}  # first return per end-to-end id
        self.news = asyncio.Event()  # set whenever a status or return arrives
        self.session: aiohttp.ClientSession | None = None
        self.submissions = self.inquiries = self.resends = 0
        self.duplicates_refused = 0
        self.ignored_statuses = 0  # about end-to-end ids this treasury never sent
        self.latencies_ms: list[tuple[float, float]] = []  # (finished at, instant latency)
        self.elapsed_s = 0.0
        self._known: dict[str, Payment] = {}  # every payment ever run, for inbound news
        self._running: dict[str, None] = {}  # the current run's ids, in table order
        self._done = 0
        self._progress: Callable[[int, int], None] | None = None
        self._runner: web.AppRunner | None = None

    # ---- inbound: what the switch pushes ------------------------------------------------------

    def app(self) -> web.Application:
        """The inbound endpoint where the switch pushes bulk reports and returns."""
        app = web.Application(client_max_size=INBOUND_MAX_BYTES)
        app[TREASURY] = self
        app.router.add_post(INBOUND_PATH, _inbound)
        return app

    async def start_inbound(self) -> str:
        """Serve the inbound endpoint on the configured host and port; returns its URL."""
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, self.config.inbound_host, self.config.inbound_port).start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}{INBOUND_PATH}"

    async def stop_inbound(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def record(self, statuses: Iterable[TransactionStatus]) -> None:
        """Keep the first final status per end-to-end id; repeats and strangers change nothing.

        A DUPL refusal says nothing about the original transfer (the switch keeps it), and
        AG09 only answers an inquiry: neither is a transfer's final status.
        """
        for status in statuses:
            if status.status not in (TxStatus.SETTLED, TxStatus.REJECTED):
                continue
            if status.status == TxStatus.REJECTED and status.reason_code == reasons.DUPLICATE:
                self.duplicates_refused += 1
                continue
            if status.status == TxStatus.REJECTED and (
                    status.reason_code == reasons.PAYMENT_NOT_RECEIVED):
                continue
            payment = self._known.get(status.original_end_to_end_id)
            if payment is None:
                self.ignored_statuses += 1
            elif payment.end_to_end_id not in self.final:
                self._finish(payment.end_to_end_id, _verdict(status.status, status.reason_code))
        self.news.set()

    def take_returns(self, items: Iterable[PaymentReturnItem]) -> None:
        """Returns after settlement: the first per end-to-end id counts, repeats change nothing."""
        for item in items:
            payment = self._known.get(item.original_end_to_end_id)
            if payment is None:
                self.ignored_statuses += 1
                continue
            e2e = payment.end_to_end_id
            self.returned.setdefault(e2e, item)
            if e2e not in self.final:  # a return proves the transfer had settled
                self._finish(e2e, _verdict(TxStatus.SETTLED))
        self.news.set()

    def _finish(self, e2e: str, verdict: Verdict) -> None:
        self.final[e2e] = verdict
        if e2e in self._running:
            self._done += 1
            if self._progress is not None:
                self._progress(self._done, len(self._running))

    # ---- outbound: what the treasury sends ----------------------------------------------------

    @property
    def switch(self) -> Peer:
        assert self.session is not None, "the session exists only during run()"
        return Peer(self.session, f"{self.config.switch_url}{SWITCH_MESSAGES_PATH}",
                    self.config.bic, self.config.secret, self.config.switch_bic,
                    timeout_s=self.config.request_timeout_s)

    def _transaction(self, payment: Payment) -> CreditTransfer:
        return CreditTransfer(
            end_to_end_id=payment.end_to_end_id, tx_id=payment.end_to_end_id,
            amount_vnd=payment.amount_vnd, amount_text=str(payment.amount_vnd),
            debtor_name=self.config.name, debtor_account=self.config.account_id,
            debtor_agent_bic=self.config.bic, creditor_name=payment.full_name,
            creditor_account=payment.account_id, creditor_agent_bic=payment.creditor_bic,
            creditor_citizen_id=payment.citizen_id, remittance_info=payment.programme or None,
        )

    def message(self, payments: list[Payment]) -> CreditTransferMessage:
        """The pacs.008 the treasury sends for these payments."""
        return CreditTransferMessage(
            msg_id=new_id("KBNN"), created_at=datetime.now(UTC),
            instructing_agent_bic=self.config.bic, instructed_agent_bic=self.config.switch_bic,
            transactions=[self._transaction(p) for p in payments],
        )

    def _check_credentials(self, reply: Reply) -> None:
        if reply.status in (401, 403):
            raise TreasuryError(f"the switch refuses the treasury {self.config.bic}: "
                                f"HTTP {reply.status} {reply.text.strip()}")

    async def _submit(self, payments: list[Payment]) -> list[str]:
        """Send one pacs.008; returns the ids whose fate it left unknown (the answer was lost).

        A timeout, a broken connection, a 5xx or an unreadable answer is a lost answer: the
        switch may or may not have the transfers. A 400 or 413 is a refusal of the whole
        message, which the switch makes before taking anything.
        """
        self.submissions += 1
        sent_s = time.monotonic()
        ids = [p.end_to_end_id for p in payments]
        try:
            reply = await self.switch.send(self.message(payments))
        except (aiohttp.ClientError, OSError, TimeoutError, CodecError):
            return ids
        self._check_credentials(reply)
        if reply.status in (400, 413):
            found = REASON_IN_TEXT.match(reply.text)
            code = found.group(1) if found else reasons.INVALID_FILE_FORMAT
            self.record(TransactionStatus(e2e, e2e, TxStatus.REJECTED, code) for e2e in ids)
            return []
        report = reply.message.document if reply.message else None
        if not 200 <= reply.status < 300 or not isinstance(report, PaymentStatusReport):
            return ids
        if len(payments) == 1 and reply.status == 200 and (
                len(self.latencies_ms) < MAX_LATENCY_SAMPLES):
            now_s = time.monotonic()
            self.latencies_ms.append((now_s, (now_s - sent_s) * 1000.0))
        if report.group_status == TxStatus.REJECTED:
            code = report.group_reason_code or reasons.NOT_SPECIFIED
            self.record(TransactionStatus(e2e, e2e, TxStatus.REJECTED, code) for e2e in ids)
        else:
            self.record(report.transactions)
        return []

    async def _inquire(self, ids: list[str]) -> tuple[list[str], list[str]]:
        """Ask the switch about ids (pacs.028, 1,000 a request) and record what is final.

        Returns (never received: safe to resend, not answered: still unknown).
        """
        never_received: list[str] = []
        unanswered: list[str] = []
        for start in range(0, len(ids), MAX_IDS_PER_INQUIRY):
            chunk = ids[start:start + MAX_IDS_PER_INQUIRY]
            self.inquiries += 1
            request = StatusRequest(msg_id=new_id("KBQ"), created_at=datetime.now(UTC),
                                    items=[StatusRequestItem(e2e, e2e) for e2e in chunk])
            try:
                reply = await self.switch.send(request)
            except (aiohttp.ClientError, OSError, TimeoutError, CodecError):
                unanswered += chunk
                continue
            self._check_credentials(reply)
            report = reply.message.document if reply.message else None
            if reply.status != 200 or not isinstance(report, PaymentStatusReport):
                unanswered += chunk
                continue
            self.record(report.transactions)
            asked = set(chunk)
            answered = {s.original_end_to_end_id for s in report.transactions} & asked
            never_received += [s.original_end_to_end_id for s in report.transactions
                               if s.reason_code == reasons.PAYMENT_NOT_RECEIVED
                               and s.original_end_to_end_id in asked]
            unanswered += [e2e for e2e in chunk if e2e not in answered]
        return never_received, unanswered

    async def _deliver(self, payments: list[Payment], deadline_s: float) -> None:
        """Submit; if the answer is lost, ask, and resend only what the switch never received.

        At most max_retries rounds, backing off, none past the deadline; what stays unknown
        is left to the final poll, and reported unresolved if it stays so.
        """
        unsure = await self._submit(payments)
        backoff_s = self.config.retry_backoff_s
        for _ in range(self.config.max_retries):
            unsure = [e2e for e2e in unsure if e2e not in self.final]
            if not unsure or time.monotonic() + backoff_s >= deadline_s:
                return
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)
            never_received, unsure = await self._inquire(unsure)
            if never_received:
                self.resends += len(never_received)
                unsure += await self._submit([self._known[e2e] for e2e in never_received])

    async def _pay(self, payments: list[Payment], deadline_s: float) -> None:
        """Submit in messages of bulk_size (one each when instant), a bounded number in flight."""
        bulk = self.config.mode == "bulk"
        size = self.config.bulk_size if bulk else 1
        chunks: Iterator[list[Payment]] = (payments[i:i + size]
                                           for i in range(0, len(payments), size))
        workers = min(self.config.files_in_flight if bulk else self.config.concurrency,
                      -(-len(payments) // size))

        async def work() -> None:
            for chunk in chunks:  # shared: each worker takes the next message to send
                await self._deliver(chunk, deadline_s)

        tasks = [asyncio.ensure_future(work()) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        finally:  # a TreasuryError in one worker stops the others
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _await_final(self, deadline_s: float) -> None:
        """Wait for the switch's reports; after a quiet period, poll the stragglers (pacs.028)
        and resend those it never received, in at most max_retries rounds."""
        resend_rounds = 0
        while True:
            self.news.clear()
            remaining_s = deadline_s - time.monotonic()
            if self._done >= len(self._running) or remaining_s <= 0:
                return
            try:
                await asyncio.wait_for(self.news.wait(),
                                       min(self.config.quiet_period_s, remaining_s))
                continue
            except TimeoutError:
                pass
            missing = [e2e for e2e in self._running if e2e not in self.final]
            never_received, _ = await self._inquire(missing)
            if never_received and resend_rounds < self.config.max_retries:
                resend_rounds += 1
                self.resends += len(never_received)
                await self._pay([self._known[e2e] for e2e in never_received], deadline_s)

    async def run(self, payments: list[Payment],
                  progress: Callable[[int, int], None] | None = None) -> PayoutResult:
        """Pay every row once and wait, within final_timeout_s, for each one's final status.

        `progress(done, total)` is called as final statuses arrive. Rows that already have a
        final status (from an earlier run) are not sent again.
        """
        self._running = dict.fromkeys(p.end_to_end_id for p in payments)
        if len(self._running) != len(payments):
            raise ValueError("end-to-end ids must be unique within a run")
        started_s = time.monotonic()
        deadline_s = started_s + self.config.final_timeout_s
        self._known.update((p.end_to_end_id, p) for p in payments)
        self._done = sum(1 for e2e in self._running if e2e in self.final)
        self._progress = progress
        if progress is not None:
            progress(self._done, len(payments))
        in_flight = self.config.files_in_flight if self.config.mode == "bulk" else (
            self.config.concurrency)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=in_flight + 1))
        try:
            await self._pay([p for p in payments if p.end_to_end_id not in self.final],
                            deadline_s)
            await self._await_final(deadline_s)
        finally:
            await self.session.close()
            self.session = None
            self._progress = None
            self._running = {}  # a million ids, freed before the outcomes are made
            self.elapsed_s = time.monotonic() - started_s
        return self.result(payments)

    def result(self, payments: list[Payment]) -> PayoutResult:
        """Each payment's outcome as known now (returns may still arrive after a run)."""
        return PayoutResult([self._outcome(p) for p in payments], self.elapsed_s,
                            self.submissions, self.inquiries, self.resends)

    def _outcome(self, payment: Payment) -> Outcome:
        returned = self.returned.get(payment.end_to_end_id)
        if returned is not None:
            return Outcome(payment, PayoutStatus.RETURNED, returned.reason_code,
                           returned.returned_amount_vnd)
        status = self.final.get(payment.end_to_end_id)
        if status is None:
            return Outcome(payment, PayoutStatus.UNRESOLVED)
        if status.status == TxStatus.SETTLED:
            return Outcome(payment, PayoutStatus.PAID)
        return Outcome(payment, PayoutStatus.REJECTED, status.reason_code or reasons.NOT_SPECIFIED)

    def forget_outcomes(self) -> None:
        """Forget every final status, as an operator about to resubmit a file by mistake."""
        self.final.clear()

    async def wait_for_returns(self, expected: int, timeout_s: float) -> int:
        """Returns arrive after settlement; wait (bounded) until `expected` have come."""
        deadline_s = time.monotonic() + timeout_s
        while True:
            self.news.clear()
            remaining_s = deadline_s - time.monotonic()
            if len(self.returned) >= expected or remaining_s <= 0:
                return len(self.returned)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.news.wait(), remaining_s)


async def _inbound(request: web.Request) -> web.Response:
    treasury = request.app[TREASURY]
    config = treasury.config
    _, message = await read_signed(request, {config.switch_bic: config.switch_secret},
                                   config.bic, INBOUND_MAX_BYTES)
    document = message.document
    if isinstance(document, PaymentStatusReport):
        treasury.record(document.transactions)
    elif isinstance(document, PaymentReturn):
        treasury.take_returns(document.items)
    else:
        raise web.HTTPBadRequest(text=f"FF01: the treasury takes pacs.002 and pacs.004, not "
                                 f"{message.header.msg_def_id}\n")
    return web.Response(text="ok\n")


# ---- reconciliation ----------------------------------------------------------------------------


class Mismatch(str):
    """One way the books disagree: reads as a sentence, and keeps its figures for reports.

    `left` and `right` are the figures of the two sides `check` names, in `unit`.
    """

    check: str
    left: int
    right: int
    unit: str

    def __new__(cls, check: str, left: int, right: int, unit: str = "VND",
                sentence: str | None = None) -> Mismatch:
        text = sentence or (f"{check}: {left:,} {unit} ≠ {right:,} {unit} "
                            f"(off by {left - right:+,})")
        mismatch = super().__new__(cls, text)
        mismatch.check, mismatch.left, mismatch.right, mismatch.unit = check, left, right, unit
        return mismatch

    @property
    def difference(self) -> int:
        return self.left - self.right

    def as_dict(self) -> dict[str, object]:
        return {"check": self.check, "left": self.left, "right": self.right,
                "unit": self.unit, "difference": self.difference, "text": str(self)}


def reconcile(result: PayoutResult, switch_stats: Mapping[str, Any] | None = None,
              bank_totals: Iterable[Mapping[str, Any]] | None = None) -> list[Mismatch]:
    """Money conservation to the dong; returns every mismatch (an empty list when all agree).

    Treasury debits = bank credits + in flight, and what came back = what the banks returned,
    hop by hop: treasury to switch (`GET /v1/admin/stats`), switch to banks (their ledger
    totals); treasury to banks directly when the switch's figures are not given. Money still
    in flight at the switch is itself a mismatch: the books cannot close over it.
    """
    if switch_stats is None and bank_totals is None:
        raise ValueError("reconcile needs the switch's stats, the banks' totals, or both")
    treasury_debited_vnd = result.amount_vnd("paid") + result.amount_vnd("returned")
    treasury_returned_vnd = result.amount_vnd("returned")
    checks: list[tuple[str, int, int]] = []
    mismatches: list[Mismatch] = []  # those that are not a pair of figures
    if switch_stats is not None:
        by_state = switch_stats.get("by_state", {})
        switch_settled_vnd = sum(by_state.get(s, {}).get("amount_vnd", 0)
                                 for s in ("SETTLED", "RETURNED"))
        switch_returned_vnd = switch_stats.get("returns", {}).get("amount_vnd", 0)
        in_flight_vnd = by_state.get("PENDING", {}).get("amount_vnd", 0)
        if in_flight_vnd:
            mismatches.append(Mismatch("in flight at the switch", in_flight_vnd, 0, sentence=(
                f"{by_state['PENDING'].get('count', 0):,} transfers ({in_flight_vnd:,} VND) "
                "still in flight at the switch")))
        checks += [("treasury debits vs switch settlements", treasury_debited_vnd,
                    switch_settled_vnd),
                   ("treasury returns vs switch returns", treasury_returned_vnd,
                    switch_returned_vnd)]
    if bank_totals is not None:
        banks = list(bank_totals)
        banks_credited_vnd = sum(t["credited_vnd"] for t in banks)
        banks_returned_vnd = sum(t["returned_vnd"] for t in banks)
        if switch_stats is not None:
            checks += [("switch settlements vs bank credits", switch_settled_vnd,
                        banks_credited_vnd),
                       ("switch returns vs bank returns", switch_returned_vnd,
                        banks_returned_vnd)]
        else:
            checks += [("treasury debits vs bank credits", treasury_debited_vnd,
                        banks_credited_vnd),
                       ("treasury returns vs bank returns", treasury_returned_vnd,
                        banks_returned_vnd)]
        early = {t["bic"]: t["credited_before_confirmation"] for t in banks
                 if t.get("credited_before_confirmation")}
        if early:
            count = sum(early.values())
            mismatches.append(Mismatch(
                "credits before confirmation", count, 0, unit="transfers",
                sentence=f"{count} credits made before the switch confirmed, by {sorted(early)}"))
    return [Mismatch(check, left, right) for check, left, right in checks
            if left != right] + mismatches
