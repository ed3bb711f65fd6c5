"""Payout-day load: each Locust user is a participant sending signed ISO 20022 to the switch.

The treasury sends most of the traffic (instant transfers, and now and then a bulk file of
100 polled to its final statuses with pacs.028); banks send the rest, one large bank most of
it (a skewed mix, as real schemes see), and ask about their transfers with pacs.028.

End-to-end latency (submission to final status) is reported as request type "E2E" beside
the HTTP timings. A transfer the scheme failed is a failure named by its ISO reason
("RJCT AB05"); a beneficiary's account saying no (AC04, BE01…) is not, and the target only
hands out payees whose accounts accept. The target comes from SWITCHLAB_TARGET (the JSON
`python -m loadtests.target` writes, or one written by hand); the load shape from
SWITCHLAB_SHAPE (payout_morning, spike, step_ramp; unset: plain -u/-r/-t).
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
from collections import Counter, deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, task

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `locust -f` from anywhere

from protocol import signing
from protocol.codec import CodecError, decode, encode, new_id
from protocol.http import SWITCH_MESSAGES_PATH, XML_CONTENT_TYPE, wrap
from protocol.keys import SwitchKeys
from protocol.messages import (
    CreditTransfer,
    CreditTransferMessage,
    Document,
    PaymentStatusReport,
    StatusRequest,
    StatusRequestItem,
    TransactionStatus,
    TxStatus,
)

TARGET: dict[str, Any] = json.loads(
    Path(os.environ["SWITCHLAB_TARGET"]).read_text(encoding="utf-8"))
# Reasons that mean the scheme failed the sender, not that a beneficiary's account said no.
SCHEME_FAILURES = frozenset({"AB05", "AB06", "AB08", "FF01", "DUPL"})
FINAL = frozenset({TxStatus.SETTLED, TxStatus.REJECTED})
BULK_SIZE = 100
BULK_WAIT_S = 15.0  # the creditor deadline (5 s) and the switch's batching, with margin
BULK_POLL_S = 0.1
INQUIRY_SIZE = 20
RECENT_IDS = 500
LARGE_BANK_SHARE = 0.7  # of the banks' traffic, sent by the largest bank
AMOUNTS_VND = (500_000, 750_000, 1_170_000, 2_055_000, 2_340_000)
PAYEES: list[tuple[str, str, str, str]] = [
    (p["bic"], p["account_id"], p["holder_name"], p["citizen_id"]) for p in TARGET["payees"]]

if os.environ.get("SWITCHLAB_SHAPE"):
    from loadtests.shapes import SHAPES

    Shape = SHAPES[os.environ["SWITCHLAB_SHAPE"]]


class Rejected(Exception):
    """A failure Locust lists under its own short name, such as "RJCT AB05"."""

    def __repr__(self) -> str:
        return str(self)


def _stable(text: str) -> str:
    """One line without its numbers, so a failure kind is one row, not one per count."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return re.sub(r"\d[\d,.]*", "N", line)[:80]


def _transfer(sender: str, payee: tuple[str, str, str, str]) -> CreditTransfer:
    bic, account, name, citizen_id = payee
    amount = random.choice(AMOUNTS_VND)
    e2e = new_id("LD")
    return CreditTransfer(
        end_to_end_id=e2e, tx_id=e2e, amount_vnd=amount, amount_text=str(amount),
        debtor_name="Load generator", debtor_account="LOAD0001", debtor_agent_bic=sender,
        creditor_name=name, creditor_account=account, creditor_agent_bic=bic,
        creditor_citizen_id=citizen_id, remittance_info="switchlab load test",
    )


class Participant(FastHttpUser):
    """A participant: signs every message with its key and checks that every answer is the
    switch's, as the protocol asks."""

    abstract = True
    host = TARGET["switch_url"]
    wait_time = between(0.0, 0.02)
    network_timeout = 20.0  # above the creditor deadline, so a slow answer is timed, not cut
    connection_timeout = 5.0
    bic = ""
    keys: dict[str, str] | None = None  # SwitchKeys' fields, as the target provisioned them
    payees = PAYEES

    def on_start(self) -> None:
        self.recent: deque[str] = deque(maxlen=RECENT_IDS)
        self.credentials = SwitchKeys.model_validate(self.keys).credentials()

    def post(self, document: Document, name: str) -> PaymentStatusReport | None:
        """Sign and post one document; the decoded pacs.002, or None after a failure."""
        body = encode(wrap(self.bic, TARGET["switch_bic"], document))
        headers = signing.sign(self.bic, self.credentials.own, SWITCH_MESSAGES_PATH, body)
        with self.client.post(SWITCH_MESSAGES_PATH, data=body, headers=headers, name=name,
                              catch_response=True) as response:
            if response.status_code not in (200, 202):
                response.failure(Rejected(
                    f"HTTP {response.status_code} {_stable(response.text or '')}".rstrip()))
                return None
            try:
                signing.verify_answer(response.headers, TARGET["switch_bic"],
                                      self.credentials.peer, response.status_code,
                                      headers, response.content or b"")
            except signing.SignatureError as error:
                response.failure(Rejected(f"HTTP {response.status_code}: {error}"))
                return None
            if XML_CONTENT_TYPE not in (response.headers.get("Content-Type") or ""):
                response.failure(Rejected(f"HTTP {response.status_code} without a message"))
                return None
            try:
                report = decode(response.content or b"").document
            except CodecError as error:
                response.failure(Rejected(f"{error.reason_code} in the answer"))
                return None
            if not isinstance(report, PaymentStatusReport):
                response.failure(Rejected(f"answer is not a pacs.002: {type(report).__name__}"))
                return None
            return report

    def e2e(self, name: str, started: float, exception: Exception | None = None) -> None:
        """Report submission-to-final-status time as its own Locust request type."""
        self.environment.events.request.fire(
            request_type="E2E", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, exception=exception, context={})

    def _message(self, transactions: list[CreditTransfer]) -> CreditTransferMessage:
        return CreditTransferMessage(
            msg_id=new_id("LM"), created_at=datetime.now(UTC), instructing_agent_bic=self.bic,
            instructed_agent_bic=TARGET["switch_bic"], transactions=transactions)

    def instant(self) -> None:
        """One transfer; the 200 answer carries its final status."""
        started = time.perf_counter()
        tx = _transfer(self.bic, random.choice(self.payees))
        report = self.post(self._message([tx]), "pacs.008 instant")
        if report is None:
            return
        self.recent.append(tx.end_to_end_id)
        status = report.transactions[0] if report.transactions else None
        self.e2e("instant", started, _problem([status] if status else [], report))

    def inquire(self) -> None:
        """pacs.028 about recent transfers: each must be known, final or pending."""
        if not self.recent:
            return
        ids = random.sample(list(self.recent), min(INQUIRY_SIZE, len(self.recent)))
        statuses = self._statuses(ids, "pacs.028 inquiry")
        unknown = [e2e for e2e, status in statuses.items() if status.reason_code == "AG09"]
        if unknown:
            self.environment.events.request.fire(
                request_type="CHECK", name="pacs.028 known", response_time=0,
                response_length=0, exception=Rejected("RJCT AG09 for a transfer sent"),
                context={})

    def _statuses(self, ids: list[str], name: str) -> dict[str, TransactionStatus]:
        request = StatusRequest(msg_id=new_id("LQ"), created_at=datetime.now(UTC),
                                items=[StatusRequestItem(e2e) for e2e in ids])
        report = self.post(request, name)
        if report is None:
            return {}
        return {s.original_end_to_end_id: s for s in report.transactions}


def _problem(statuses: list[TransactionStatus], report: PaymentStatusReport
             ) -> Exception | None:
    """The failure to report for these final statuses, or None when the scheme did its job."""
    if report.group_status is TxStatus.REJECTED:
        return Rejected(f"RJCT {report.group_reason_code} (group)")
    if not statuses:
        return Rejected("no status in the answer")
    not_final = sum(1 for s in statuses if s.status not in FINAL)
    if not_final:
        return Rejected(f"{statuses[0].status if len(statuses) == 1 else 'PDNG'} not final")
    failed = Counter(s.reason_code for s in statuses
                     if s.status is TxStatus.REJECTED and s.reason_code in SCHEME_FAILURES)
    if failed:
        return Rejected(f"RJCT {failed.most_common(1)[0][0]}")
    return None


class TreasuryUser(Participant):
    """The State Treasury paying out: most of the day's traffic."""

    weight = 4
    bic = TARGET["treasury"]["bic"]
    keys = TARGET["treasury"]["keys"]

    @task(20)
    def send_instant(self) -> None:
        self.instant()

    @task(1)
    def send_bulk(self) -> None:
        """A file of 100: 202 ACTC at once, then pacs.028 until every line is final."""
        started = time.perf_counter()
        transactions = [_transfer(self.bic, random.choice(self.payees))
                        for _ in range(BULK_SIZE)]
        report = self.post(self._message(transactions), "pacs.008 bulk")
        if report is None:
            return
        if report.group_status is not TxStatus.ACCEPTED_TECHNICAL:
            self.e2e("bulk", started, _problem([], report))
            return
        self.recent.extend(tx.end_to_end_id for tx in transactions)
        pending = {tx.end_to_end_id for tx in transactions}
        final: list[TransactionStatus] = []
        while pending and time.perf_counter() - started < BULK_WAIT_S:
            time.sleep(BULK_POLL_S)
            for e2e, status in self._statuses(sorted(pending), "pacs.028 bulk poll").items():
                if e2e in pending and status.status in FINAL:
                    pending.discard(e2e)
                    final.append(status)
        if pending:
            self.e2e("bulk", started, Rejected(f"not final within {BULK_WAIT_S:.0f} s"))
        else:
            self.e2e("bulk", started, _problem(final, report))

    @task(2)
    def send_inquiry(self) -> None:
        self.inquire()


class BankUser(Participant):
    """A bank's customers paying other banks' customers; one large bank sends most of it."""

    weight = 1

    def on_start(self) -> None:
        banks = TARGET["banks"]
        largest = max(banks, key=lambda bank: bank.get("share", 0.0))
        others = [bank for bank in banks if bank is not largest]
        rest = sum(bank.get("share", 1.0) for bank in others) or 1.0
        weights = [LARGE_BANK_SHARE] + [
            (1 - LARGE_BANK_SHARE) * bank.get("share", 1.0) / rest for bank in others]
        bank = random.choices([largest, *others], weights)[0]
        self.bic = bank["bic"]
        self.keys = bank["keys"]
        self.payees = [p for p in PAYEES if p[0] != self.bic] or PAYEES
        super().on_start()

    @task(10)
    def send_instant(self) -> None:
        self.instant()

    @task(1)
    def send_inquiry(self) -> None:
        self.inquire()
