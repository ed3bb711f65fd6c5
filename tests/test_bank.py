"""A mock bank as a creditor agent, spoken to over HTTP as the switch would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from banks.bank import INBOUND_PATH, Bank, BankConfig, create_bank_app
from banks.behaviour import Behaviour
from banks.ledger import Account, Ledger
from protocol.http import SWITCH_MESSAGES_PATH, Peer, read_signed
from protocol.messages import (
    BusinessMessage,
    CreditTransfer,
    MessageType,
    PaymentStatusReport,
    TransactionStatus,
    TxStatus,
)
from switchlab.servers import bind_loopback, serve
from tests.samples import credit_transfer, pacs008

SWITCH_BIC, SWITCH_SECRET, BANK_BIC = "SWLBVNVX", b"switch-secret", "BFTVVNVX"
ACCOUNTS = [
    Account("0071000000001", "Trần Văn Đức & Con <Tèo>", "001190000001"),
    Account("0071000000002", "Lê Thị Mai", "001190000002", status="closed"),
    Account("0071000000003", "Phạm Văn An", "001190000003", status="blocked"),
    Account("0071000000004", "Vũ Thị Lan", "001190000004", deceased=True),
    Account("0071000000005", "Nguyễn Văn Bình", "001190000005"),
]


@dataclass
class BankLab:
    bank: Bank
    switch: Peer
    switch_inbox: list[BusinessMessage]


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[BankLab]:
    inbox: list[BusinessMessage] = []

    async def switch_messages(request: web.Request) -> web.Response:
        _, message = await read_signed(request, {BANK_BIC: b"bank-secret"})
        inbox.append(message)
        return web.Response(status=202)

    switch_app = web.Application()
    switch_app.router.add_post(SWITCH_MESSAGES_PATH, switch_messages)
    switch_socket, bank_socket = bind_loopback(), bind_loopback()
    switch_runner = await serve(switch_app, switch_socket)
    bank = Bank(BankConfig(
        bic=BANK_BIC, name="Vietcombank", kind="bank", secret=b"bank-secret",
        switch_url=switch_socket.base_url, switch_bic=SWITCH_BIC, switch_secret=SWITCH_SECRET,
        ledger_path=tmp_path / "ledger.sqlite",
    ), ACCOUNTS)
    bank_runner = await serve(create_bank_app(bank), bank_socket)
    async with aiohttp.ClientSession() as session:
        switch = Peer(session, f"{bank_socket.base_url}{INBOUND_PATH}", SWITCH_BIC,
                      SWITCH_SECRET, BANK_BIC)
        yield BankLab(bank, switch, inbox)
    await bank_runner.cleanup()
    await switch_runner.cleanup()


def to_account(n: int, account: Account, **changes: object) -> CreditTransfer:
    fields = {"creditor_account": account.account_id, "creditor_name": account.holder_name,
              "creditor_citizen_id": account.citizen_id} | changes
    return replace(credit_transfer(n), **fields)


async def offer(lab: BankLab, *transactions) -> dict[str, tuple[TxStatus, str | None]]:
    reply = await lab.switch.send(replace(pacs008(0), transactions=list(transactions)))
    assert reply.status == 200, reply.text
    return {i.original_end_to_end_id: (i.status, i.reason_code)
            for i in reply.message.document.transactions}


def confirmation(*items: tuple[str, TxStatus]) -> PaymentStatusReport:
    return PaymentStatusReport(
        msg_id="SWN-1", created_at=datetime.now(UTC), original_msg_id="SWF-1",
        original_msg_type=MessageType.CREDIT_TRANSFER,
        transactions=[TransactionStatus(e2e, e2e, status) for e2e, status in items])


async def test_each_rejection_reason(lab: BankLab) -> None:
    answers = await offer(
        lab,
        to_account(1, ACCOUNTS[0]),
        to_account(2, ACCOUNTS[0], creditor_account="9999"),
        to_account(3, ACCOUNTS[1]),
        to_account(4, ACCOUNTS[2]),
        to_account(5, ACCOUNTS[3]),
        to_account(6, ACCOUNTS[4], creditor_name="Nguyễn Văn Bính"),
        to_account(7, ACCOUNTS[4], creditor_name="  nguyễn   văn BÌNH "),
    )
    assert list(answers.values()) == [
        (TxStatus.ACCEPTED, None), (TxStatus.REJECTED, "AC01"), (TxStatus.REJECTED, "AC04"),
        (TxStatus.REJECTED, "AC06"), (TxStatus.REJECTED, "MD07"), (TxStatus.REJECTED, "BE01"),
        (TxStatus.ACCEPTED, None),
    ]


async def test_accepted_is_held_and_credited_once_on_confirmation(lab: BankLab) -> None:
    tx = to_account(1, ACCOUNTS[0])
    await offer(lab, tx)
    assert lab.bank.ledger.totals().credited == 0 and lab.bank.ledger.totals().held == 1
    for _ in range(2):  # a redelivered confirmation credits nothing more
        reply = await lab.switch.send(confirmation((tx.end_to_end_id, TxStatus.SETTLED)))
        assert reply.status == 200
    totals = lab.bank.ledger.totals()
    assert (totals.credited, totals.credited_vnd, totals.held) == (1, tx.amount_vnd, 0)
    assert lab.bank.ledger.accounts[ACCOUNTS[0].account_id].balance_vnd == tx.amount_vnd
    await offer(lab, tx)  # the same end-to-end id offered again is never credited twice
    await lab.switch.send(confirmation((tx.end_to_end_id, TxStatus.SETTLED)))
    assert lab.bank.ledger.totals().credited_vnd == tx.amount_vnd


async def test_rejection_after_acceptance_releases_the_hold(lab: BankLab) -> None:
    tx = to_account(1, ACCOUNTS[0])
    await offer(lab, tx)
    await lab.switch.send(confirmation((tx.end_to_end_id, TxStatus.REJECTED)))
    totals = lab.bank.ledger.totals()
    assert (totals.held, totals.credited) == (0, 0)


async def test_credits_survive_a_restart_of_the_ledger(lab: BankLab, tmp_path: Path) -> None:
    tx = to_account(1, ACCOUNTS[0])
    await offer(lab, tx)
    await lab.switch.send(confirmation((tx.end_to_end_id, TxStatus.SETTLED)))
    reopened = Ledger(path=tmp_path / "ledger.sqlite")
    assert reopened.credits == {tx.end_to_end_id: tx.amount_vnd}
    assert reopened.accounts[ACCOUNTS[0].account_id].balance_vnd == tx.amount_vnd
    assert reopened.credit([tx.end_to_end_id]) == []


async def test_bad_signature_is_401(lab: BankLab) -> None:
    forged = Peer(lab.switch._session, lab.switch.url, SWITCH_BIC, b"not-the-secret", BANK_BIC)
    reply = await forged.send(pacs008(1))
    assert reply.status == 401


async def test_async_mode_answers_the_switch_separately(lab: BankLab) -> None:
    lab.bank.behaviour = Behaviour(answer_mode="async", duplicate_reply_rate=1.0)
    reply = await lab.switch.send(replace(pacs008(0), transactions=[to_account(1, ACCOUNTS[0])]))
    assert reply.status == 202
    while len(lab.switch_inbox) < 2:
        await asyncio.sleep(0.01)
    statuses = [m.document.transactions[0].status for m in lab.switch_inbox]
    assert statuses == [TxStatus.ACCEPTED, TxStatus.ACCEPTED]


async def test_credit_before_confirmation_bug_is_visible(lab: BankLab) -> None:
    lab.bank.behaviour = Behaviour(credit_before_confirmation=True)
    tx = to_account(1, ACCOUNTS[0])
    await offer(lab, tx)
    totals = lab.bank.ledger.totals()
    assert (totals.credited, totals.credited_before_confirmation) == (1, 1)


async def test_outage_and_injected_errors(lab: BankLab) -> None:
    lab.bank.behaviour = Behaviour(offline=True)
    assert (await lab.switch.send(pacs008(1))).status == 503
    lab.bank.behaviour = Behaviour(error_rate=1.0)
    assert (await lab.switch.send(pacs008(1))).status == 500


def test_behaviour_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        Behaviour(error_rate=1.5)
    with pytest.raises(ValueError, match="unknown behaviour settings: speed"):
        Behaviour.from_dict({"speed": 3})
