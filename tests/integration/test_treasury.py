"""The treasury against a small fake switch: real aiohttp servers on 127.0.0.1, signed both ways.

The fake switch answers as the participant contract says (instant: 200 with the final status;
bulk: 202 ACTC, then reports pushed to the treasury's inbound endpoint; pacs.028 from its
journal, AG09 for what it never received) and can lose the answer to a chosen message, before
or after taking it, so that the treasury must ask rather than resend.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from banks.cash_list import CASH_LIST, DECEASED_LIST, Heading, list_row, write_list
from banks.payment_table import Payment, PaymentTableError, read_payment_table
from banks.payout import Outcome, PayoutResult, PayoutStatus
from banks.reconcile import Balance, SwitchTotals, reconcile
from banks.treasury import INBOUND_PATH, Treasury, TreasuryConfig, TreasuryError
from protocol import reasons
from protocol.codec import encode, new_id
from protocol.http import (
    SWITCH_MESSAGES_PATH,
    Peer,
    Sender,
    read_signed,
    sign_answers,
    wrap,
    xml_response,
)
from protocol.messages import (
    CreditTransfer,
    CreditTransferMessage,
    MessageType,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    StatusRequest,
    TransactionStatus,
    TxStatus,
)
from protocol.runtime import bind
from protocol.runtime import serve as serve_on
from protocol.signing import Credentials

SWITCH_BIC = "SWLBVNVX"
TREASURY_BIC = "TRSYVNV1"
TREASURY_SECRET = b"treasury-secret"
# hmac signing: the treasury's one secret signs both ways; the switch has none of its own.
TREASURY_KEYS = Credentials.shared(TREASURY_SECRET)
SENDERS = {TREASURY_BIC: Sender(TREASURY_KEYS)}
BANK = "BFTVVNVX"
EWALLET = "EWLAVNV1"
MEMBERS = {BANK, EWALLET}


def outcome_for(account_id: str, creditor_bic: str) -> tuple[PayoutStatus, str | None]:
    """What the fake scheme does with a transfer, decided by the account it goes to."""
    if creditor_bic not in MEMBERS:
        return PayoutStatus.REJECTED, reasons.WRONG_BIC
    if account_id.startswith("CLOSED"):
        return PayoutStatus.REJECTED, reasons.CLOSED_ACCOUNT
    if account_id.startswith("NAME"):
        return PayoutStatus.REJECTED, reasons.NAME_MISMATCH
    if account_id.startswith("DIES"):
        return PayoutStatus.RETURNED, reasons.CREDITOR_DECEASED
    return PayoutStatus.PAID, None


def returned_share(account_id: str) -> float:
    """DIESHALF accounts send back half (a partial return), DIES accounts everything."""
    return 0.5 if account_id.startswith("DIESHALF") else 1.0


@dataclass
class FakeSwitch:
    """The switch's side of the contract, with faults: `lose` maps the n-th pacs.008 (from 0)
    to "before" (dropped unread), "after" (taken, then the connection dropped), "502"
    (taken, then a gateway error) or "DU01" (taken before under this MsgId with other content:
    the original stands, this one is refused as a whole). `hold` keeps every transfer pending
    forever."""

    lose: dict[int, str] = field(default_factory=dict)
    hold: bool = False
    url: str = ""
    treasury_url: str = ""
    journal: dict[str, TransactionStatus] = field(default_factory=dict)
    amounts: dict[str, int] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)  # pacs.008 arrivals per e2e
    lost_ids: set[str] = field(default_factory=set)  # in messages dropped before taking
    inquiries: list[list[str]] = field(default_factory=list)
    messages: int = 0
    session: aiohttp.ClientSession | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024,
                              middlewares=[sign_answers(SWITCH_BIC, SENDERS)])
        app.router.add_post(SWITCH_MESSAGES_PATH, self._receive)
        return app

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        message = (await read_signed(request, SENDERS, SWITCH_BIC)).message
        document = message.document
        if isinstance(document, StatusRequest):
            ids = [item.original_end_to_end_id for item in document.items]
            self.inquiries.append(ids)
            return self._reply(PaymentStatusReport(
                msg_id=new_id("FSS"), created_at=datetime.now(UTC),
                original_msg_id=document.msg_id, original_msg_type=MessageType.STATUS_REQUEST,
                transactions=[self.journal.get(e2e) or TransactionStatus(
                    e2e, e2e, TxStatus.REJECTED, reasons.PAYMENT_NOT_RECEIVED) for e2e in ids]))
        assert isinstance(document, CreditTransferMessage)
        fault = self.lose.get(self.messages)
        self.messages += 1
        self.received.update(tx.end_to_end_id for tx in document.transactions)
        if fault == "before":
            self.lost_ids.update(tx.end_to_end_id for tx in document.transactions)
            return self._drop(request)
        statuses = [self._take(tx) for tx in document.transactions]
        if fault == "after":
            return self._drop(request)
        if fault == "502":
            return web.Response(status=502, text="bad gateway\n")
        if fault == reasons.DUPLICATE_MESSAGE_ID:
            self._spawn(self._push(statuses, returns_only=False))  # the original's reports
            return self._reply(PaymentStatusReport(
                msg_id=new_id("FSG"), created_at=datetime.now(UTC),
                original_msg_id=document.msg_id, original_msg_type=MessageType.CREDIT_TRANSFER,
                group_status=TxStatus.REJECTED, group_reason_code=fault))
        settled = [s for s in statuses if s.status == TxStatus.SETTLED]
        if len(statuses) == 1:
            self._spawn(self._push(settled, returns_only=True))
            return self._reply(PaymentStatusReport(
                msg_id=new_id("FSI"), created_at=datetime.now(UTC),
                original_msg_id=document.msg_id, original_msg_type=MessageType.CREDIT_TRANSFER,
                transactions=statuses))
        if not self.hold:
            self._spawn(self._push(statuses, returns_only=False))
        return self._reply(PaymentStatusReport(
            msg_id=new_id("FSG"), created_at=datetime.now(UTC), original_msg_id=document.msg_id,
            original_msg_type=MessageType.CREDIT_TRANSFER,
            group_status=TxStatus.ACCEPTED_TECHNICAL), status=202)

    def _take(self, tx: CreditTransfer) -> TransactionStatus:
        e2e = tx.end_to_end_id
        if e2e in self.journal:
            return TransactionStatus(e2e, tx.tx_id, TxStatus.REJECTED, reasons.DUPLICATE)
        self.amounts[e2e] = tx.amount_vnd
        status, reason = outcome_for(tx.creditor_account, tx.creditor_agent_bic)
        wire = TxStatus.REJECTED if status == PayoutStatus.REJECTED else TxStatus.SETTLED
        self.journal[e2e] = TransactionStatus(
            e2e, tx.tx_id, TxStatus.PENDING if self.hold else wire,
            None if wire == TxStatus.SETTLED else reason)
        if status == PayoutStatus.RETURNED:
            self.amounts[e2e] = int(tx.amount_vnd * returned_share(tx.creditor_account))
            self.journal[e2e + "/return"] = TransactionStatus(e2e, tx.tx_id, TxStatus.SETTLED,
                                                              reason)
        return self.journal[e2e]

    def _reply(self, document: Any, status: int = 200) -> web.Response:
        return xml_response(SWITCH_BIC, TREASURY_BIC, document, status)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500, text="never seen\n")

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _push(self, statuses: list[TransactionStatus], returns_only: bool) -> None:
        """Reports, then returns, each sent twice: a redelivery must change nothing."""
        assert self.session is not None
        peer = Peer(self.session, self.treasury_url, SWITCH_BIC, TREASURY_KEYS, TREASURY_BIC)
        documents: list[Any] = []
        if not returns_only:
            documents.append(PaymentStatusReport(
                msg_id=new_id("FSN"), created_at=datetime.now(UTC), original_msg_id="MULTIPLE",
                original_msg_type=MessageType.CREDIT_TRANSFER, transactions=[*statuses,
                TransactionStatus("NOT-OURS-1", "NOT-OURS-1", TxStatus.SETTLED)]))
        items = [PaymentReturnItem(
            return_id=new_id("FRT"), original_end_to_end_id=s.original_end_to_end_id,
            original_tx_id=s.original_tx_id, reason_code=reasons.CREDITOR_DECEASED,
            returned_amount_vnd=self.amounts[s.original_end_to_end_id],
            amount_text=str(self.amounts[s.original_end_to_end_id]))
            for s in statuses if s.original_end_to_end_id + "/return" in self.journal]
        if items:
            documents.append(PaymentReturn(
                msg_id=new_id("FSR"), created_at=datetime.now(UTC),
                instructing_agent_bic=SWITCH_BIC, instructed_agent_bic=TREASURY_BIC,
                items=items))
        for document in documents:
            for _ in range(2):
                reply = await peer.send(document)
                assert reply.status == 200, reply.text

    def taken(self) -> Counter[str]:
        """Transfers the switch journaled, per end-to-end id (DUPL refusals excluded)."""
        return Counter(e2e for e2e in self.journal if "/" not in e2e)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    bound = bind()
    return await serve_on(app, bound), bound.base_url


@dataclass
class Lab:
    switch: FakeSwitch
    treasuries: list[Treasury] = field(default_factory=list)

    async def treasury(self, **overrides: Any) -> Treasury:
        settings: dict[str, Any] = {
            "bic": TREASURY_BIC, "secret": TREASURY_SECRET, "switch_url": self.switch.url,
            "switch_bic": SWITCH_BIC, "quiet_period_s": 0.2,
            "request_timeout_s": 5.0, "final_timeout_s": 30.0, "retry_backoff_s": 0.02,
        }
        treasury = Treasury(TreasuryConfig(**(settings | overrides)))
        self.switch.treasury_url = await treasury.start_inbound()
        self.treasuries.append(treasury)
        return treasury


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    switch = FakeSwitch()
    runner, switch.url = await serve(switch.app())
    switch.session = aiohttp.ClientSession()
    lab = Lab(switch)
    yield lab
    for task in list(switch.tasks):
        task.cancel()
    await asyncio.gather(*switch.tasks, return_exceptions=True)
    await switch.session.close()
    for treasury in lab.treasuries:
        await treasury.stop_inbound()
    await runner.cleanup()


def payment(number: int, account: str = "ACC", bic: str = BANK) -> Payment:
    return Payment(citizen_id=f"0010900{number:05d}", full_name=f"Nguyễn Văn {number}",
                   amount_vnd=1_000_000 + number, creditor_bic=bic,
                   account_id=f"{account}{number:04d}", programme="Lương hưu tháng 11",
                   end_to_end_id=f"KB-E2E-{number:06d}")


def table() -> list[Payment]:
    """Twenty beneficiaries: most paid, three rejected for different reasons, two returned."""
    special = {14: ("CLOSED", BANK), 15: ("NAME", EWALLET), 16: ("ACC", "NOPEVNVX"),
               17: ("DIES", BANK), 18: ("DIESHALF", EWALLET), 19: ("ACC", EWALLET)}
    return [payment(n, *special.get(n, ("ACC", BANK))) for n in range(20)]


def expected_returned_vnd(p: Payment) -> int:
    status, _ = outcome_for(p.account_id, p.creditor_bic)
    return int(p.amount_vnd * returned_share(p.account_id)) if (
        status == PayoutStatus.RETURNED) else 0


def assert_correct(result: PayoutResult, payments: list[Payment]) -> None:
    """Every beneficiary has the fake scheme's outcome, and every amount adds up."""
    got = {o.payment.end_to_end_id: (o.status, o.reason_code) for o in result.outcomes}
    assert got == {p.end_to_end_id: outcome_for(p.account_id, p.creditor_bic) for p in payments}
    rejected = [p for p in payments if got[p.end_to_end_id][0] == PayoutStatus.REJECTED]
    returned_vnd = sum(expected_returned_vnd(p) for p in payments)
    assert result.submitted_vnd == sum(p.amount_vnd for p in payments)
    assert result.rejected_vnd == sum(p.amount_vnd for p in rejected)
    assert result.settled_vnd == result.submitted_vnd - result.rejected_vnd
    assert result.returned_vnd == returned_vnd
    assert result.paid_vnd == result.settled_vnd - returned_vnd
    assert result.by_status == Counter({"paid": 15, "rejected": 3, "returned": 2})
    assert result.by_reason == Counter({"AC04": 1, "BE01": 1, "RC01": 1, "MD07": 2})


# ---- the payment table -------------------------------------------------------------------


def write_table(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=["citizen_id", "full_name", "amount_vnd",
                                                  "creditor_bic", "account_id", "programme",
                                                  "end_to_end_id"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(number: int, **changes: object) -> dict[str, object]:
    p = payment(number)
    return {"citizen_id": p.citizen_id, "full_name": p.full_name, "amount_vnd": p.amount_vnd,
            "creditor_bic": p.creditor_bic, "account_id": p.account_id,
            "programme": p.programme, "end_to_end_id": p.end_to_end_id} | changes


def test_a_good_table_reads_into_payments(tmp_path: Path) -> None:
    path = write_table(tmp_path / "t.csv", [row(1), row(2)])
    assert read_payment_table(path) == [payment(1), payment(2)]


def test_table_errors_name_each_bad_line_and_keep_the_good_rows(tmp_path: Path) -> None:
    path = write_table(tmp_path / "t.csv", [
        row(1),
        row(2, citizen_id="12345678901"),  # line 3
        row(3, amount_vnd="1.5"),
        row(4, amount_vnd="0"),
        row(5, amount_vnd="１２"),  # full-width digits: not a number to the switch
        row(6, creditor_bic="bftvvnvx"),
        row(7, full_name="   "),
        row(8, end_to_end_id=payment(1).end_to_end_id),
        row(9, full_name="Lê\x00Văn"),
        row(10),
    ])
    with pytest.raises(PaymentTableError) as error:
        read_payment_table(path)
    problems = dict(error.value.problems)
    assert sorted(problems) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "citizen_id" in problems[3] and "amount_vnd '1.5'" in problems[4]
    assert "amount_vnd '0'" in problems[5] and "amount_vnd" in problems[6]
    assert "creditor_bic" in problems[7] and "full_name is empty" in problems[8]
    assert "appears twice" in problems[9] and "control characters" in problems[10]
    assert "line 4: amount_vnd '1.5'" in str(error.value)
    assert error.value.payments == [payment(1), payment(10)]


def test_a_table_without_a_column_is_refused_at_line_1(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("citizen_id,full_name,amount_vnd\n000000000001,A,1\n", encoding="utf-8")
    with pytest.raises(PaymentTableError) as error:
        read_payment_table(path)
    assert error.value.problems[0][0] == 1 and "programme" in error.value.problems[0][1]


# ---- runs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["bulk", "instant"])
async def test_a_run_gives_each_beneficiary_the_right_final_status(lab: Lab, mode: str) -> None:
    treasury = await lab.treasury(mode=mode, bulk_size=6, concurrency=8)
    payments = table()
    progress: list[tuple[int, int]] = []
    await treasury.run(payments, lambda done, total: progress.append((done, total)))
    assert await treasury.wait_for_returns(2, timeout_s=10.0) == 2
    result = treasury.result(payments)
    assert_correct(result, payments)
    # One submission per transfer, nothing resent, every report delivered twice harmlessly.
    assert lab.switch.received == Counter(p.end_to_end_id for p in payments)
    assert result.resends == 0
    assert progress[-1] == (20, 20)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)
    if mode == "bulk":
        assert result.submissions == 4
        # The fake switch's reports also name a transfer this treasury never sent: ignored.
        assert "NOT-OURS-1" not in treasury.final


@pytest.mark.parametrize(("mode", "fault"), [
    ("bulk", "after"), ("bulk", "502"), ("bulk", "before"),
    ("instant", "after"), ("instant", "before"),
])
async def test_a_lost_answer_leads_to_an_inquiry_and_no_blind_resend(
        lab: Lab, mode: str, fault: str) -> None:
    lab.switch.lose = {0: fault}  # one at a time, so message 0 holds the first rows
    treasury = await lab.treasury(mode=mode, bulk_size=5, concurrency=1, files_in_flight=1)
    payments = table()
    await treasury.run(payments)
    await treasury.wait_for_returns(2, timeout_s=10.0)
    assert_correct(treasury.result(payments), payments)
    assert lab.switch.inquiries, "the treasury must ask (pacs.028) before resending"
    assert lab.switch.taken() == Counter(p.end_to_end_id for p in payments)
    # Only what the switch never received (AG09) comes again, and exactly once.
    assert lab.switch.received == Counter(
        {p.end_to_end_id: 2 if p.end_to_end_id in lab.switch.lost_ids else 1 for p in payments})
    assert bool(lab.switch.lost_ids) == (fault == "before")
    assert treasury.resends == len(lab.switch.lost_ids)


async def test_issue22_obs7_a_group_du01_leaves_the_original_transfers_standing(lab: Lab
                                                                                ) -> None:
    """Observation 7: a group DU01 (the MsgId was used before, for other content) means the
    original message's transfers stand; the treasury booked it as a final rejection of every
    line. Now it asks and books what the switch says: every beneficiary's right outcome."""
    lab.switch.lose = {0: reasons.DUPLICATE_MESSAGE_ID}
    treasury = await lab.treasury(mode="bulk", bulk_size=5, concurrency=1, files_in_flight=1)
    payments = table()
    await treasury.run(payments)
    await treasury.wait_for_returns(2, timeout_s=10.0)
    result = treasury.result(payments)
    assert_correct(result, payments)
    assert reasons.DUPLICATE_MESSAGE_ID not in result.by_reason
    assert lab.switch.received == Counter(p.end_to_end_id for p in payments)  # none resent


async def test_transfers_never_final_end_unresolved_at_the_deadline(lab: Lab,
                                                                    tmp_path: Path) -> None:
    lab.switch.hold = True
    treasury = await lab.treasury(mode="bulk", bulk_size=10, final_timeout_s=1.0)
    payments = [payment(n) for n in range(20)]
    result = await treasury.run(payments)
    assert result.by_status == Counter({"unresolved": 20})
    assert len(lab.switch.inquiries) > 0 and result.resends == 0
    # Never paid in cash while they may have settled.
    assert result.cash_list_rows() == []


async def test_a_treasury_the_switch_does_not_recognise_stops(lab: Lab) -> None:
    treasury = await lab.treasury(secret=b"not-the-provisioned-secret")
    with pytest.raises(TreasuryError, match="401"):
        await treasury.run(table())
    assert not lab.switch.journal


async def test_inbound_refuses_reports_not_signed_by_the_switch(lab: Lab) -> None:
    treasury = await lab.treasury()
    payments = [payment(1)]
    await treasury.run(payments)
    assert treasury.result(payments).by_status == Counter({"paid": 1})
    report = PaymentStatusReport(
        msg_id="FORGED-1", created_at=datetime.now(UTC), original_msg_id="X",
        original_msg_type=MessageType.CREDIT_TRANSFER,
        transactions=[TransactionStatus(payment(1).end_to_end_id, "x", TxStatus.REJECTED,
                                        reasons.CLOSED_ACCOUNT)])
    async with aiohttp.ClientSession() as session:
        url = lab.switch.treasury_url
        forged = Peer(session, url, SWITCH_BIC, Credentials.shared(b"guessed"), TREASURY_BIC)
        assert (await forged.send(report)).status == 401
        honest = Peer(session, url, SWITCH_BIC, TREASURY_KEYS, TREASURY_BIC)
        misaddressed = encode(wrap(SWITCH_BIC, "OTHRVNV1", report))
        assert (await honest.post(misaddressed)).status == 400
    assert url.endswith(INBOUND_PATH)
    assert treasury.result(payments).by_status == Counter({"paid": 1})


# ---- files, summary, reconciliation ------------------------------------------------------------


async def test_result_file_and_cash_list(lab: Lab, tmp_path: Path) -> None:
    treasury = await lab.treasury(bulk_size=8)
    payments = table()
    await treasury.run(payments)
    await treasury.wait_for_returns(2, timeout_s=10.0)
    result = treasury.result(payments)
    result.write(tmp_path / "results.csv")
    result.write(tmp_path / "results.json")
    with (tmp_path / "results.csv").open(encoding="utf-8-sig", newline="") as file:
        rows = list(csv.DictReader(file))
    assert json.loads((tmp_path / "results.json").read_text(encoding="utf-8")) == [
        r | {"amount_vnd": int(r["amount_vnd"])} for r in rows]
    assert list(rows[0]) == ["end_to_end_id", "citizen_id", "name", "amount_vnd",
                             "creditor_bic", "status", "reason_code"]
    assert {r["end_to_end_id"]: (r["status"], r["reason_code"] or None) for r in rows} == {
        p.end_to_end_id: outcome_for(p.account_id, p.creditor_bic) for p in payments}

    no_account = {"citizen_id": "079000000999", "full_name": "Trần Thị Mai",
                  "amount_vnd": 1_500_000, "programme": "Trợ cấp xã hội"}
    # The returned beneficiaries died (MD07): on the ministry's list, not the cash list.
    heading = Heading("KBNN", date(2026, 12, 7))
    cash_rows = [list_row(row) for row in result.cash_list_rows([no_account])]
    write_list(tmp_path, "cash", cash_rows, CASH_LIST, heading, ",")
    dead_rows = [list_row(row) for row in result.deceased_rows()]
    write_list(tmp_path, "deceased", dead_rows, DECEASED_LIST, heading, ",")
    assert (len(cash_rows), len(dead_rows)) == (4, 2)
    raw = (tmp_path / "cash.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "Trần Thị Mai".encode() in raw  # for Excel
    with (tmp_path / "cash.csv").open(encoding="utf-8-sig", newline="") as file:
        cash = {r["citizen_id"]: r for r in csv.DictReader(file)}
    with (tmp_path / "deceased.csv").open(encoding="utf-8-sig", newline="") as file:
        deceased = {r["citizen_id"]: r for r in csv.DictReader(file)}
    by_citizen = {p.citizen_id: p for p in payments}
    assert set(cash) == {"079000000999"} | {
        p.citizen_id for p in payments if p.account_id[:4] in ("CLOS", "NAME")
        or p.creditor_bic not in MEMBERS}
    assert set(deceased) == {p.citizen_id for p in payments if p.account_id[:4] == "DIES"}
    assert (cash["079000000999"]["reason_en"], cash["079000000999"]["reason_vi"]) == (
        "no linked account", "chưa có tài khoản liên kết")
    closed = by_citizen[f"0010900{14:05d}"]
    assert (cash[closed.citizen_id]["reason_code"], cash[closed.citizen_id]["reason_en"],
            cash[closed.citizen_id]["reason_vi"]) == ("AC04", "closed account",
                                                      "tài khoản đã đóng")
    assert int(cash[closed.citizen_id]["amount_vnd"]) == closed.amount_vnd
    half = by_citizen[f"0010900{18:05d}"]
    assert deceased[half.citizen_id]["status"] == "returned"
    assert deceased[half.citizen_id]["reason_code"] == "MD07"
    assert int(deceased[half.citizen_id]["amount_vnd"]) == expected_returned_vnd(half)


def test_summary_shows_reasons_amounts_and_speed() -> None:
    payments = table()
    outcomes = [Outcome(p, *outcome_for(p.account_id, p.creditor_bic),
                        returned_vnd=expected_returned_vnd(p)) for p in payments]
    text = PayoutResult(outcomes, elapsed_s=2.0, submissions=4).summary()
    assert "20 transfers in 2.00 s (10 transfers/s)" in text
    assert "AC04" in text and "closed account" in text
    assert "MD07" in text and "creditor deceased" in text
    assert f"{sum(p.amount_vnd for p in payments):,} VND" in text


def reconcile_case() -> tuple[PayoutResult, dict[str, Any], list[dict[str, Any]]]:
    """A result with 3,000,000 VND settled, 500,000 of it returned, and books that agree."""
    paid, returned, rejected = payment(1), payment(2), payment(3)
    result = PayoutResult([
        Outcome(paid, PayoutStatus.PAID), Outcome(returned, PayoutStatus.RETURNED, "MD07",
                                                  returned_vnd=500_000),
        Outcome(rejected, PayoutStatus.REJECTED, "AC04")], elapsed_s=1.0)
    settled_vnd = paid.amount_vnd + returned.amount_vnd
    stats = {"by_state": {"SETTLED": {"count": 1, "amount_vnd": paid.amount_vnd},
                          "RETURNED": {"count": 1, "amount_vnd": returned.amount_vnd},
                          "REJECTED": {"count": 1, "amount_vnd": rejected.amount_vnd}},
             "returns": {"count": 1, "amount_vnd": 500_000}}
    banks = [{"bic": BANK, "credited_vnd": settled_vnd, "returned_vnd": 500_000,
              "credited_before_confirmation": 0}]
    return result, stats, banks


def test_reconcile_agrees_when_the_books_agree() -> None:
    result, stats, banks = reconcile_case()
    switch = SwitchTotals.from_stats(stats)
    assert reconcile(result, switch, banks) == []
    assert reconcile(result, switch) == [] and reconcile(result, bank_totals=banks) == []


@pytest.mark.parametrize("with_switch", [True, False])
def test_reconcile_finds_a_one_dong_difference(with_switch: bool) -> None:
    result, stats, banks = reconcile_case()
    banks[0]["credited_vnd"] -= 1
    mismatches = reconcile(result, SwitchTotals.from_stats(stats) if with_switch else None,
                           banks)
    assert len(mismatches) == 1
    assert mismatches[0].difference == 1 and mismatches[0].unit == "VND"
    assert mismatches[0].check == (Balance.SWITCH_VS_BANKS_SETTLED if with_switch
                                   else Balance.TREASURY_VS_BANKS_SETTLED)
    assert mismatches[0].startswith("switch settlements vs bank credits" if with_switch
                                    else "treasury debits vs bank credits")
    assert "(off by +1)" in mismatches[0]


def test_reconcile_finds_a_one_dong_return_and_money_in_flight() -> None:
    result, stats, _ = reconcile_case()
    stats["returns"]["amount_vnd"] += 1
    stats["by_state"]["PENDING"] = {"count": 1, "amount_vnd": 7}
    checks = {m.check: m.difference for m in reconcile(result, SwitchTotals.from_stats(stats))}
    assert checks == {Balance.TREASURY_VS_SWITCH_RETURNED: -1, Balance.IN_FLIGHT: 7}


def test_config_refuses_out_of_range_settings() -> None:
    base = {"bic": TREASURY_BIC, "secret": b"s", "switch_url": "http://127.0.0.1:1",
            "switch_bic": SWITCH_BIC}
    assert TreasuryConfig(**base, bulk_size=100_000).bulk_size == 100_000
    for bad in ({"bulk_size": 100_001}, {"bulk_size": 0}, {"mode": "batch"},
                {"concurrency": 0}, {"max_retries": 21}, {"final_timeout_s": 0}):
        with pytest.raises(ValueError):
            TreasuryConfig(**base, **bad)
