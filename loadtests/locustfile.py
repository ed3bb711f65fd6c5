"""Payout-day load: each Locust user is a participant sending signed ISO 20022 to the switch.

The treasury sends most of the traffic (instant transfers and bulk files), one large bank
sends most of the banks' share (a skewed mix, as in Mojaloop's published benchmarks), and
senders ask about transfers with pacs.028. End-to-end latency (submission to final status)
is reported as its own request type "E2E", beside the HTTP timings; failures are named by
their ISO reason code. The target comes from SWITCHLAB_TARGET (see loadtests/target.py);
the load shape from SWITCHLAB_SHAPE (payout_morning, spike, step_ramp; none: -u/-r/-t).
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from locust import FastHttpUser, between, events, task

from protocol import signing
from protocol.codec import decode, encode, new_id
from protocol.http import SWITCH_MESSAGES_PATH, wrap
from protocol.messages import (
    CreditTransfer,
    CreditTransferMessage,
    StatusRequest,
    StatusRequestItem,
    TxStatus,
)

TARGET = json.loads(Path(os.environ["SWITCHLAB_TARGET"]).read_text(encoding="utf-8"))
# Reasons that mean the scheme failed, not that a beneficiary's account said no.
SCHEME_FAILURES = {"AB05", "AB06", "AB08", "FF01", "DUPL", "AM04", "RC01"}
BULK_SIZE = 100
BULK_WAIT_S = 10.0

_shape = os.environ.get("SWITCHLAB_SHAPE", "")
if _shape:
    from loadtests import shapes

    Shape = shapes.SHAPES[_shape]


def _transfer(sender: str, payee: list[str]) -> CreditTransfer:
    bic, account, name, citizen_id = payee
    amount = random.choice((500_000, 750_000, 1_170_000, 2_340_000))
    e2e = new_id("LD")
    return CreditTransfer(
        end_to_end_id=e2e, tx_id=e2e, amount_vnd=amount, amount_text=str(amount),
        debtor_name="Load generator", debtor_account="LOAD-0001", debtor_agent_bic=sender,
        creditor_name=name, creditor_account=account, creditor_agent_bic=bic,
        creditor_citizen_id=citizen_id, remittance_info="load",
    )


class Participant(FastHttpUser):
    abstract = True
    host = TARGET["switch_url"]
    wait_time = between(0.0, 0.01)
    bic = ""

    def post(self, document: object, name: str) -> tuple[bool, object]:
        body = encode(wrap(self.bic, TARGET["switch_bic"], document))  # type: ignore[arg-type]
        headers = signing.sign(self.bic, TARGET["participants"][self.bic].encode(),
                               SWITCH_MESSAGES_PATH, body)
        with self.client.post(SWITCH_MESSAGES_PATH, data=body, headers=headers, name=name,
                              catch_response=True) as response:
            if response.status_code not in (200, 202):
                response.failure(f"HTTP {response.status_code}: {response.text[:120]}")
                return False, None
            return True, decode(response.content).document

    def transfer(self) -> None:
        started = time.perf_counter()
        payee = random.choice(TARGET["payees"])
        message = CreditTransferMessage(
            msg_id=new_id("LM"), created_at=datetime.now(UTC), instructing_agent_bic=self.bic,
            instructed_agent_bic=TARGET["switch_bic"],
            transactions=[_transfer(self.bic, payee)])
        ok, report = self.post(message, "pacs.008 instant")
        if ok:
            self._final(report.transactions[0], started, "instant")  # type: ignore[union-attr]

    def _final(self, status: object, started: float, name: str) -> None:
        reason = getattr(status, "reason_code", None)
        failed = getattr(status, "status", None) is TxStatus.REJECTED and (
            reason in SCHEME_FAILURES)
        events.request.fire(
            request_type="E2E", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, context={},
            exception=RuntimeError(f"RJCT {reason}") if failed else None)

    def inquire(self, ids: list[str]) -> dict[str, object]:
        request = StatusRequest(msg_id=new_id("LQ"), created_at=datetime.now(UTC),
                                items=[StatusRequestItem(e2e) for e2e in ids])
        ok, report = self.post(request, "pacs.028")
        if not ok:
            return {}
        return {s.original_end_to_end_id: s for s in report.transactions}  # type: ignore[union-attr]


class TreasuryUser(Participant):
    weight = 4
    bic = TARGET["treasury_bic"]

    @task(20)
    def instant(self) -> None:
        self.transfer()

    @task(1)
    def bulk(self) -> None:
        started = time.perf_counter()
        transactions = [_transfer(self.bic, random.choice(TARGET["payees"]))
                        for _ in range(BULK_SIZE)]
        ok, _ = self.post(CreditTransferMessage(
            msg_id=new_id("LB"), created_at=datetime.now(UTC), instructing_agent_bic=self.bic,
            instructed_agent_bic=TARGET["switch_bic"], transactions=transactions),
            "pacs.008 bulk")
        pending = [tx.end_to_end_id for tx in transactions]
        while ok and pending and time.perf_counter() - started < BULK_WAIT_S:
            time.sleep(0.05)
            statuses = self.inquire(pending)
            for e2e in list(pending):
                status = statuses.get(e2e)
                if status is not None and status.status is not TxStatus.PENDING:
                    self._final(status, started, "bulk")
                    pending.remove(e2e)
        if pending:
            events.request.fire(request_type="E2E", name="bulk", response_time=BULK_WAIT_S * 1000,
                                response_length=0, context={},
                                exception=RuntimeError(f"{len(pending)} not final in time"))


class LargeBankUser(Participant):
    """One large bank sends most of the banks' share: the skew real schemes see."""

    weight = 2
    bic = "BFTVVNVX"

    @task
    def instant(self) -> None:
        self.transfer()


class SmallBankUser(Participant):
    weight = 1
    bic = "EWLAVNV1"

    @task
    def instant(self) -> None:
        self.transfer()
