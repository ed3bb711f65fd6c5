"""A mock bank spoken to over HTTP as the switch would, and speaking to a fake switch.

Real aiohttp servers on 127.0.0.1: the bank, and a fake switch that records what the bank
posts to it and answers as the participant contract says. The test itself is the switch's
signed client.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from banks.bank import INBOUND_PATH, Bank, BankConfig, create_bank_app
from banks.behaviour import Behaviour
from banks.ledger import Account
from protocol import reasons
from protocol.codec import encode, new_id
from protocol.http import (
    SWITCH_MESSAGES_PATH,
    AnswerNotAuthentic,
    Peer,
    Sender,
    read_signed,
    sign_answers,
    wrap,
    xml_response,
)
from protocol.messages import (
    BusinessMessage,
    CreditTransfer,
    CreditTransferMessage,
    MessageType,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    StatusRequest,
    StatusRequestItem,
    TransactionStatus,
    TxStatus,
    answer_per_transaction,
)
from protocol.runtime import bind, serve
from protocol.signing import Credentials

SWITCH_BIC = "SWLBVNVX"
BANK_BIC, BANK_SECRET, ADMIN_TOKEN = "BFTVVNVX", b"bank-secret", "admin-token"
# hmac signing: the bank's one secret signs both ways; the switch has none of its own.
BANK_KEYS = Credentials.shared(BANK_SECRET)
SENDERS = {BANK_BIC: Sender(BANK_KEYS)}
MAI = Account("0071000000001", "Trần Văn Đức & Con <Tèo>", "001190000001")
CLOSED = Account("0071000000002", "Lê Thị Mai", "001190000002", status="closed")
BLOCKED = Account("0071000000003", "Phạm Văn An", "001190000003", status="blocked")
DEAD = Account("0071000000004", "Vũ Thị Lan", "001190000004", deceased=True)
BINH = Account("0071000000005", "Nguyễn Văn Bình", "001190000005")
DYING = Account("0071000000006", "Đặng Thị Hương", "001190000006", dies_after_payment=True)
ACCOUNTS = [MAI, CLOSED, BLOCKED, DEAD, BINH, DYING]
WAIT_S = 10.0


@dataclass
class FakeSwitch:
    """Takes what the bank posts: 503 for the first `refuse` posts, then 202 for answers and
    a pacs.002 per return item (ACSC, or `return_status` and `return_reason`)."""

    url: str = ""
    inbox: list[BusinessMessage] = field(default_factory=list)
    refuse: int = 0
    return_status: TxStatus = TxStatus.SETTLED
    return_reason: str | None = None

    async def messages(self, request: web.Request) -> web.Response:
        message = (await read_signed(request, SENDERS, SWITCH_BIC)).message
        if self.refuse:
            self.refuse -= 1
            raise web.HTTPServiceUnavailable(text="503: switch busy\n")
        self.inbox.append(message)
        document = message.document
        if isinstance(document, PaymentReturn):
            return xml_response(SWITCH_BIC, BANK_BIC, PaymentStatusReport(
                msg_id=new_id("SWR"), created_at=datetime.now(UTC),
                original_msg_id=document.msg_id, original_msg_type=MessageType.PAYMENT_RETURN,
                transactions=[TransactionStatus(i.original_end_to_end_id, i.original_tx_id,
                                                self.return_status, self.return_reason)
                              for i in document.items]))
        return web.Response(status=202, text="taken\n")

    def documents(self, kind: type) -> list:  # type: ignore[type-arg]
        return [m.document for m in self.inbox if isinstance(m.document, kind)]


@dataclass
class Lab:
    bank: Bank
    url: str  # the bank's base URL
    switch: Peer  # signed as the switch, to the bank's inbound endpoint
    fake_switch: FakeSwitch
    session: aiohttp.ClientSession
    config: BankConfig

    async def offer(self, *transactions: CreditTransfer) -> dict[str, tuple[TxStatus, str | None]]:
        """A pacs.008 to the bank; its synchronous answer per end-to-end id."""
        message = pacs008(*transactions)
        reply = await self.switch.send(message)
        assert reply.status == 200, reply.text
        assert reply.message is not None
        return {e2e: (i.status, i.reason_code) for e2e, i in answer_per_transaction(
            reply.message.document, message).items()}

    async def confirm(self, *items: tuple[str, TxStatus]) -> None:
        reply = await self.switch.send(confirmation(*items))
        assert reply.status == 200, reply.text

    async def admin(self, method: str, path: str, **kwargs: object) -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with self.session.request(method, f"{self.url}{path}", headers=headers,
                                        **kwargs) as response:
            body = await (response.json() if response.content_type == "application/json"
                          else response.text())
            return response.status, body


def pacs008(*transactions: CreditTransfer) -> CreditTransferMessage:
    return CreditTransferMessage(
        msg_id=new_id("SWF"), created_at=datetime.now(UTC), instructing_agent_bic=SWITCH_BIC,
        instructed_agent_bic=BANK_BIC, transactions=list(transactions))


def transfer(n: int, account: Account, amount_vnd: int = 1_170_000, **changes: object
             ) -> CreditTransfer:
    tx = CreditTransfer(
        end_to_end_id=f"KBNN20261120{n:09d}", tx_id=f"TX{n:012d}", amount_vnd=amount_vnd,
        amount_text=str(amount_vnd), debtor_name="Kho bạc Nhà nước",
        debtor_account="KBNN-TW-0001", debtor_agent_bic="TRSYVNV1",
        creditor_name=account.holder_name, creditor_account=account.account_id,
        creditor_agent_bic=BANK_BIC, creditor_citizen_id=account.citizen_id)
    return replace(tx, **changes)


def confirmation(*items: tuple[str, TxStatus]) -> PaymentStatusReport:
    return PaymentStatusReport(
        msg_id=new_id("SWN"), created_at=datetime.now(UTC), original_msg_id="SWF-1",
        original_msg_type=MessageType.CREDIT_TRANSFER,
        transactions=[TransactionStatus(e2e, e2e, status) for e2e, status in items])


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait for something the bank does in the background; fail saying what never happened."""
    for _ in range(int(WAIT_S / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
async def fake_switch() -> AsyncIterator[FakeSwitch]:
    fake = FakeSwitch()
    app = web.Application(middlewares=[sign_answers(SWITCH_BIC, SENDERS)])
    app.router.add_post(SWITCH_MESSAGES_PATH, fake.messages)
    socket = bind()
    runner = await serve(app, socket)
    fake.url = socket.base_url
    yield fake
    await runner.cleanup()


def bank_config(fake: FakeSwitch, tmp_path: Path, **behaviour: object) -> BankConfig:
    return BankConfig(
        bic=BANK_BIC, name="Vietcombank", kind="bank", secret=BANK_SECRET,
        switch_url=fake.url, switch_bic=SWITCH_BIC,
        admin_token=ADMIN_TOKEN, ledger_path=tmp_path / "ledger.sqlite",
        behaviour=Behaviour(**behaviour))  # type: ignore[arg-type]


async def open_lab(config: BankConfig, fake: FakeSwitch, session: aiohttp.ClientSession,
                   accounts: list[Account]) -> tuple[Lab, web.AppRunner]:
    bank = Bank(config, accounts)
    socket = bind()
    runner = await serve(create_bank_app(bank), socket)
    switch = Peer(session, f"{socket.base_url}{INBOUND_PATH}", SWITCH_BIC, BANK_KEYS, BANK_BIC)
    return Lab(bank, socket.base_url, switch, fake, session, config), runner


@pytest.fixture
async def lab(fake_switch: FakeSwitch, tmp_path: Path) -> AsyncIterator[Lab]:
    async with aiohttp.ClientSession() as session:
        opened, runner = await open_lab(bank_config(fake_switch, tmp_path), fake_switch,
                                        session, ACCOUNTS)
        yield opened
        await runner.cleanup()


async def test_each_rejection_reason(lab: Lab) -> None:
    answers = await lab.offer(
        transfer(1, MAI),
        transfer(2, MAI, creditor_account="9999"),
        transfer(3, CLOSED),
        transfer(4, BLOCKED),
        transfer(5, DEAD),
        transfer(6, BINH, creditor_name="Nguyễn Văn Bính"),
        transfer(7, BINH, creditor_name="  nguyễn   văn BÌNH "),
    )
    assert list(answers.values()) == [
        (TxStatus.ACCEPTED, None), (TxStatus.REJECTED, "AC01"), (TxStatus.REJECTED, "AC04"),
        (TxStatus.REJECTED, "AC06"), (TxStatus.REJECTED, "MD07"), (TxStatus.REJECTED, "BE01"),
        (TxStatus.ACCEPTED, None),
    ]
    assert lab.bank.ledger.totals().held == 2


async def test_accepted_is_held_and_credited_once_on_confirmation(lab: Lab) -> None:
    tx = transfer(1, MAI)
    await lab.offer(tx)
    totals = lab.bank.ledger.totals()
    assert (totals.held, totals.credited, totals.balance_vnd) == (1, 0, 0)
    for _ in range(2):  # a redelivered confirmation credits nothing more
        await lab.confirm((tx.end_to_end_id, TxStatus.SETTLED))
    totals = lab.bank.ledger.totals()
    assert (totals.held, totals.credited, totals.credited_vnd) == (0, 1, tx.amount_vnd)
    await lab.offer(tx)  # the same end-to-end id offered again is never credited twice
    await lab.confirm((tx.end_to_end_id, TxStatus.SETTLED))
    assert lab.bank.ledger.accounts[MAI.account_id].balance_vnd == tx.amount_vnd
    status, credits = await lab.admin("GET", "/admin/credits")
    assert status == 200 and credits["credits"] == {tx.end_to_end_id: tx.amount_vnd}


async def test_rejection_after_acceptance_releases_the_hold(lab: Lab) -> None:
    tx = transfer(1, MAI)
    await lab.offer(tx)
    await lab.confirm((tx.end_to_end_id, TxStatus.REJECTED))
    await lab.confirm((tx.end_to_end_id, TxStatus.SETTLED))  # too late: nothing is held
    totals = lab.bank.ledger.totals()
    assert (totals.held, totals.released, totals.credited) == (0, 1, 0)


async def test_a_status_that_is_not_final_leaves_the_hold(lab: Lab) -> None:
    tx = transfer(1, MAI)
    await lab.offer(tx)
    await lab.confirm((tx.end_to_end_id, TxStatus.PENDING))
    assert (lab.bank.ledger.totals().held, lab.bank.ledger.totals().credited) == (1, 0)


async def test_results_of_transfers_it_did_not_accept_are_kept_as_debtor_results(
        lab: Lab) -> None:
    await lab.confirm(("OWN-TRANSFER-1", TxStatus.SETTLED))
    assert set(lab.bank.debtor_results) == {"OWN-TRANSFER-1"}
    assert lab.bank.ledger.totals().credited == 0


async def test_a_return_to_it_as_debtor_is_booked_once(lab: Lab) -> None:
    returned = PaymentReturn(
        msg_id=new_id("SWR"), created_at=datetime.now(UTC), instructing_agent_bic=SWITCH_BIC,
        instructed_agent_bic=BANK_BIC, items=[PaymentReturnItem(
            return_id="RT-1", original_end_to_end_id="OWN-TRANSFER-1", original_tx_id="TX-1",
            returned_amount_vnd=500_000, reason_code="AC04", amount_text="500000")])
    for _ in range(2):
        assert (await lab.switch.send(returned)).status == 200
    totals = lab.bank.ledger.totals()
    assert (totals.received_returns, totals.received_returns_vnd) == (1, 500_000)


async def test_bad_or_missing_signature_is_401(lab: Lab) -> None:
    forged = Peer(lab.session, lab.switch.url, SWITCH_BIC, Credentials.shared(b"not-the-secret"),
                  BANK_BIC)
    assert (await forged.send(pacs008(transfer(1, MAI)))).status == 401
    async with lab.session.post(lab.switch.url, data=b"<Envelope/>") as response:
        assert response.status == 401
        assert "missing" in await response.text()
    assert lab.bank.ledger.totals().held == 0


async def test_a_message_for_another_participant_or_of_another_kind_is_refused(
        lab: Lab) -> None:
    misdirected = encode(wrap(SWITCH_BIC, "ICBVVNVX", pacs008(transfer(1, MAI))))
    reply = await lab.switch.post(misdirected)
    assert reply.status == 400 and "FF01" in reply.text
    inquiry = StatusRequest(msg_id="Q-1", created_at=datetime.now(UTC),
                            items=[StatusRequestItem("KBNN20261120000000001")])
    reply = await lab.switch.send(inquiry)
    assert reply.status == 400 and "FF01" in reply.text and "pacs.028" in reply.text


async def test_issue_28_a_file_is_answered_with_its_refusals_only(lab: Lab) -> None:
    """ISO 20022's short answer (the EPC rulebook's pacs.002): GrpSts ACCP and no items when
    every transaction is accepted, GrpSts PART and the refused ones only otherwise."""
    reply = await lab.switch.send(pacs008(transfer(1, MAI), transfer(2, BINH)))
    assert reply.status == 200 and reply.message is not None
    report = reply.message.document
    assert (report.group_status, report.transactions) == (TxStatus.ACCEPTED, [])
    assert lab.bank.ledger.totals().held == 2
    reply = await lab.switch.send(pacs008(transfer(3, MAI), transfer(4, CLOSED)))
    assert reply.status == 200 and reply.message is not None
    report = reply.message.document
    assert report.group_status is TxStatus.PARTIALLY_ACCEPTED
    assert [(i.original_end_to_end_id, i.status, i.reason_code) for i in report.transactions
            ] == [("KBNN20261120000000004", TxStatus.REJECTED, "AC04")]
    assert await lab.offer(transfer(5, BINH), transfer(6, BLOCKED)) == {
        "KBNN20261120000000005": (TxStatus.ACCEPTED, None),
        "KBNN20261120000000006": (TxStatus.REJECTED, "AC06")}


async def test_async_mode_posts_its_answers_to_the_switch(lab: Lab) -> None:
    lab.bank.behaviour = Behaviour(answer_mode="async", duplicate_reply_rate=1.0)
    lab.fake_switch.refuse = 1  # the first post meets a busy switch and is retried
    reply = await lab.switch.send(pacs008(transfer(1, MAI), transfer(2, CLOSED)))
    assert reply.status == 202
    await eventually(lambda: len(lab.fake_switch.inbox) == 2, "two copies of the answer")
    for report in lab.fake_switch.documents(PaymentStatusReport):
        assert [(i.status, i.reason_code) for i in report.transactions] == [
            (TxStatus.ACCEPTED, None), (TxStatus.REJECTED, "AC04")]
    assert lab.bank.ledger.totals().held == 1


async def test_a_lost_reply_is_never_sent_but_the_transfer_is_held(lab: Lab) -> None:
    lab.bank.behaviour = Behaviour(answer_mode="async", lost_reply_rate=1.0)
    reply = await lab.switch.send(pacs008(transfer(1, MAI)))
    assert reply.status == 202
    assert (lab.bank.replies_lost, lab.bank.pending_sends) == (1, 0)
    assert lab.bank.ledger.totals().held == 1


async def test_random_rejections_carry_the_configured_reason(lab: Lab) -> None:
    lab.bank.behaviour = Behaviour(reject_rate=1.0, reject_reason="AG01")
    answers = await lab.offer(transfer(1, MAI), transfer(2, CLOSED))
    assert list(answers.values()) == [(TxStatus.REJECTED, "AG01"), (TxStatus.REJECTED, "AC04")]
    assert lab.bank.ledger.totals().held == 0


async def test_credit_before_confirmation_shows_in_the_totals(lab: Lab) -> None:
    lab.bank.behaviour = Behaviour(credit_before_confirmation=True)
    tx = transfer(1, MAI)
    await lab.offer(tx)
    await lab.confirm((tx.end_to_end_id, TxStatus.REJECTED))  # e.g. its answer came too late
    status, totals = await lab.admin("GET", "/admin/ledger")
    assert status == 200
    assert (totals["credited"], totals["credited_vnd"], totals["credited_before_confirmation"],
            totals["held"]) == (1, tx.amount_vnd, 1, 0)
    _, credits = await lab.admin("GET", "/admin/credits")
    assert credits["credited_before_confirmation"] == [tx.end_to_end_id]


async def test_outages_and_injected_errors_answer_with_text(lab: Lab) -> None:
    for behaviour, status in ((Behaviour(offline=True), 503),
                              (Behaviour(outages_s=[(0, 3_600)]), 503),
                              (Behaviour(error_rate=1.0), 500)):
        lab.bank.behaviour = behaviour
        with pytest.raises(AnswerNotAuthentic) as refused:  # before it knows who is asking
            await lab.switch.send(pacs008(transfer(1, MAI)))
        assert refused.value.status == status and BANK_BIC in refused.value.message
    assert lab.bank.ledger.totals().held == 0


async def test_behaviour_is_changed_over_the_admin_api(lab: Lab) -> None:
    status, body = await lab.admin("PUT", "/admin/behaviour", json={"offline": True, "seed": 3})
    assert status == 200 and body["offline"] is True
    with pytest.raises(AnswerNotAuthentic) as offline:
        await lab.switch.send(pacs008(transfer(1, MAI)))
    assert offline.value.status == 503
    status, body = await lab.admin("PUT", "/admin/behaviour", json={"speed": 3})
    assert status == 400 and "speed: Extra inputs are not permitted" in body
    status, body = await lab.admin("GET", "/admin/behaviour")
    assert (status, body["offline"], body["seed"]) == (200, True, 3)
    assert (await lab.admin("PUT", "/admin/behaviour", json={}))[0] == 200
    assert (await lab.switch.send(pacs008(transfer(1, MAI)))).status == 200
    async with lab.session.get(f"{lab.url}/admin/ledger") as response:
        assert response.status == 401  # no token
    async with lab.session.get(f"{lab.url}/health") as response:
        assert response.status == 200 and (await response.json())["bic"] == BANK_BIC


async def test_a_beneficiary_who_dies_after_payment_is_returned(lab: Lab) -> None:
    lab.bank.behaviour = Behaviour(return_deceased_after_s=0)
    tx = transfer(1, DYING, amount_vnd=2_340_000)
    await lab.offer(tx, transfer(2, MAI))
    await lab.confirm((tx.end_to_end_id, TxStatus.SETTLED), ("KBNN20261120000000002",
                                                             TxStatus.SETTLED))
    await eventually(lambda: lab.bank.ledger.totals().returned == 1, "the return is booked")
    [sent] = lab.fake_switch.documents(PaymentReturn)
    assert [(i.original_end_to_end_id, i.original_tx_id, i.returned_amount_vnd, i.reason_code)
            for i in sent.items] == [(tx.end_to_end_id, tx.tx_id, 2_340_000, "MD07")]
    totals = lab.bank.ledger.totals()
    assert (totals.credited, totals.returned_vnd) == (2, 2_340_000)
    assert lab.bank.ledger.accounts[DYING.account_id].balance_vnd == 0


@pytest.mark.parametrize(("status", "reason", "booked"), [
    (TxStatus.REJECTED, reasons.DUPLICATE, 1),  # an earlier copy was settled, answer lost
    (TxStatus.REJECTED, reasons.TRANSACTION_FORBIDDEN, 0),
])
async def test_a_refused_return_is_booked_only_when_already_returned(
        lab: Lab, status: TxStatus, reason: str, booked: int) -> None:
    lab.fake_switch.return_status, lab.fake_switch.return_reason = status, reason
    lab.bank.behaviour = Behaviour(return_deceased_after_s=0)
    tx = transfer(1, DYING)
    await lab.offer(tx)
    await lab.confirm((tx.end_to_end_id, TxStatus.SETTLED))
    await eventually(lambda: bool(lab.fake_switch.inbox) and not lab.bank.pending_sends,
                     "the return is sent and its answer read")
    assert lab.bank.ledger.totals().returned == booked


async def test_a_restarted_bank_keeps_its_holds_and_resumes_its_returns(
        fake_switch: FakeSwitch, tmp_path: Path) -> None:
    held, credited = transfer(1, MAI), transfer(2, DYING)
    async with aiohttp.ClientSession() as session:
        first, runner = await open_lab(bank_config(fake_switch, tmp_path), fake_switch,
                                       session, ACCOUNTS)
        await first.offer(held, credited)
        await first.confirm((credited.end_to_end_id, TxStatus.SETTLED))
        await runner.cleanup()  # no return was configured: none is sent
        config = bank_config(fake_switch, tmp_path, return_deceased_after_s=0)
        second, runner = await open_lab(config, fake_switch, session, [])
        try:
            assert len(second.bank.ledger.accounts) == len(ACCOUNTS)
            await second.confirm((held.end_to_end_id, TxStatus.SETTLED))
            await eventually(lambda: second.bank.ledger.totals().returned == 1,
                             "the restarted bank returns the payment to the deceased")
            totals = second.bank.ledger.totals()
            assert (totals.credited, totals.held) == (2, 0)
        finally:
            await runner.cleanup()


async def test_the_bank_runs_as_its_own_process(fake_switch: FakeSwitch, tmp_path: Path
                                                ) -> None:
    config_path = tmp_path / "bank.json"
    config_path.write_text(json.dumps({
        "bic": "EWLAVNV1", "name": "E-wallet A (made up)", "kind": "ewallet",
        "secret": "wallet-secret", "switch_url": fake_switch.url, "switch_bic": SWITCH_BIC,
        "admin_token": ADMIN_TOKEN,
        "ledger_path": str(tmp_path / "wallet.sqlite"), "behaviour": {"offline": True},
    }), encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "banks.bank", "--config", str(config_path),
        stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
        env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), WAIT_S)).decode()
        assert "EWLAVNV1 listening on http://127.0.0.1:" in line, line
        url = line.split(" on ", 1)[1].strip()
        async with aiohttp.ClientSession() as session:
            async with session.get(url.replace(INBOUND_PATH, "/health")) as response:
                health = await response.json()
            assert (health["bic"], health["kind"], health["down"]) == ("EWLAVNV1", "ewallet",
                                                                       True)
            switch = Peer(session, url, SWITCH_BIC, Credentials.shared(b"wallet-secret"),
                          "EWLAVNV1")
            with pytest.raises(AnswerNotAuthentic) as offline:  # refused before anyone is known
                await switch.send(pacs008(transfer(1, MAI)))
            assert offline.value.status == 503
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), WAIT_S) == 0


@pytest.mark.parametrize(("changes", "message"), [
    ({"kind": "credit_union"}, "kind\n  Input should be 'bank', 'ewallet' or 'mobile_money'"),
    ({"bic": "vietcombank"}, "bic\n  Value error, 'vietcombank' is not a BIC"),
    ({"switch_url": "127.0.0.1:8080"}, "switch_url\n  String should match pattern"),
    ({"admin_token": ""}, "admin_token\n  String should have at least 1 character"),
])
def test_bank_configuration_refuses_nonsense(tmp_path: Path, changes: dict[str, object],
                                             message: str) -> None:
    base = {"bic": BANK_BIC, "name": "Vietcombank", "kind": "bank", "secret": "s",
            "switch_url": "http://127.0.0.1:1", "switch_bic": SWITCH_BIC,
            "admin_token": ADMIN_TOKEN}
    assert BankConfig.model_validate(base).secret == b"s"
    with pytest.raises(ValueError, match=message):
        BankConfig.model_validate(base | changes)
    with pytest.raises(ValueError, match="switch_url\n  Field required"):
        BankConfig.model_validate({k: v for k, v in base.items() if k != "switch_url"})


@pytest.mark.parametrize(("settings", "message"), [
    ({"error_rate": 1.5}, "error_rate"),
    ({"speed": 3}, "speed\n  Extra inputs are not permitted"),
    ({"lost_reply_rate": 0.1}, "need answer_mode 'async'"),
    ({"late_by_s": 1e6}, "late_by_s\n  Input should be less than or equal to 120"),
    ({"latency_ms_median": 10, "latency_ms_p99": 5}, "at least latency_ms_median"),
    ({"outages_s": [[5, 1]]}, "outage window"),
    ({"reject_reason": "no"}, "reject_reason"),
    ({"offline": "yes"}, "offline\n  Input should be a valid boolean"),
])
def test_behaviour_refuses_nonsense(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Behaviour.model_validate(settings)


def test_faults_are_reproducible_from_the_seed() -> None:
    def draws(seed: int) -> list[tuple[bool, float]]:
        behaviour = Behaviour(seed=seed, error_rate=0.5, latency_ms_median=5,
                              latency_ms_p99=50)
        return [(behaviour.chance(behaviour.error_rate), behaviour.latency_s())
                for _ in range(50)]

    assert draws(1) == draws(1) != draws(2)
    assert all(0 < delay_s <= 1 for _, delay_s in draws(1))
