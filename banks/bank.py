"""A mock bank, e-wallet or mobile-money operator: one participant of the scheme, over HTTP.

As creditor agent it checks each incoming transfer against its ledger and answers ACCP or
RJCT (AC01, AC04, AC06, BE01, MD07), holds what it accepts, credits only when the switch
confirms settlement (ACSC), once per end-to-end id, and releases what the switch rejects.
Later it may return a payment (pacs.004, MD07) to a beneficiary who died after being paid.
Its faults come from `Behaviour`. It knows the switch only by URL and credentials, exactly as
a real bank would, and runs as a process of its own (`python -m banks.bank --config
bank.json`) so that a scenario can kill and restart it; with a ledger file it loses nothing.
For `switchlab conformance` it reads its test accounts from a file (`accounts_file`) and serves
the signed test hooks of protocol/hooks.py (banks/hooks.py); it passes every case, and each
conformance defect of `Behaviour` fails one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ConfigDict, Field, ValidationError

from banks import hooks
from banks.accounts_file import read_accounts
from banks.behaviour import ASYNC, Behaviour, FaultyAnswers
from banks.config_types import Bic, HttpUrl
from banks.ledger import Account, BookingState, Hold, Ledger
from banks.metrics import POSTED, RESPONSE, BankMetrics
from banks.registry import PARTICIPANTS
from protocol import reasons, settings
from protocol.codec import MAX_MESSAGE_BYTES, CodecError, new_id
from protocol.exposition import METRICS_PATH, metrics_response
from protocol.hooks import TransferOrder
from protocol.http import (
    AUTH_FAILED,
    SWITCH_MESSAGES_PATH,
    Peer,
    Reply,
    Sender,
    bearer_auth,
    read_signed,
    run_alongside,
    sign_answers,
    xml_response,
)
from protocol.ids import booking_key, wire_end_to_end_id
from protocol.keys import MAX_SECRET_BYTES, SwitchKeys
from protocol.messages import (
    MAX_NAME_CHARS,
    SCHEME_CURRENCY,
    CreditTransfer,
    CreditTransferMessage,
    MessageType,
    PaymentReturn,
    PaymentReturnItem,
    PaymentStatusReport,
    Statement,
    StatusRequest,
    StatusRequestItem,
    TransactionStatus,
    TxStatus,
    VerificationReport,
    VerificationRequest,
)
from protocol.retry import with_backoff
from protocol.runtime import bind, ready_until_stopped, run_event_loop, serve, spawn
from protocol.settings import SettingsError
from protocol.signing import SIGNATURE_HEADER, SIGNATURE_INPUT_HEADER, spoiled
from protocol.tls import server_context
from protocol.transport import BANK_MAX_BODY_BYTES
from protocol.wording import count

log = logging.getLogger(__name__)

INBOUND_PATH = "/iso20022"
MAX_PENDING_SENDS = 10_000  # answers and returns scheduled for later; beyond, answer in line
MAX_CONCURRENT_SENDS = 32  # requests to the switch at once
MAX_ITEMS_PER_RETURN = 1_000  # pacs.004 items per message
MAX_PROBLEMS_SHOWN = 10
SEND_TIMEOUT_S = 10.0
SEND_ATTEMPTS = 12  # with the capped backoff, about 40 s of trying
FIRST_BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0
MAX_STATEMENTS_KEPT = 10
BANK = web.AppKey("bank", "Bank")
# the behaviour's message_fault to do to this answer's signature (spoil_signature)
SPOILED_SIGNATURE = web.RequestKey("spoiled_signature", str)


class BankConfig(SwitchKeys):
    """Who the participant is and how it reaches the switch; keys as provisioned (SwitchKeys:
    `signing`, then `secret`, or `private_key` and `switch_public_key`).

    Validating raises pydantic.ValidationError (a ValueError) naming each bad field;
    `model_dump(mode="json")` is the JSON configuration `python -m banks.bank` reads back.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    bic: Bic
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    kind: Literal["bank", "ewallet", "mobile_money"]
    switch_url: HttpUrl  # base URL; messages go to {switch_url}/v1/messages
    switch_bic: Bic
    # the bearer token of the /admin/ API
    admin_token: str = Field(min_length=1, max_length=MAX_SECRET_BYTES, repr=False)
    ledger_path: Path | None = None  # SQLite file; None keeps the ledger in memory
    # Test accounts to open at start (banks/accounts_file.py): the file a conformance run
    # is given; accounts the ledger already holds keep their balances.
    accounts_file: Path | None = None
    behaviour: Behaviour = Field(default_factory=Behaviour)


def short_answer(report: PaymentStatusReport, message: CreditTransferMessage
                 ) -> PaymentStatusReport:
    """The answer to a pacs.008 of several transactions as ISO 20022 allows it (the EPC
    rulebook's pacs.002): the refused transactions only, under GrpSts PART, or GrpSts ACCP
    and no items when all are accepted; a forward of 1,000 is then a short message to write
    and to read, not 1,000 items. One transaction, or none accepted: the report as it is.
    Only in the HTTP answer: a posted answer may reach a switch process that did not send
    the forward and cannot name its transfers by its MsgId. Only for a report that answers
    each of the message's transactions once: a faulty bank's answer (an id twice, one
    missing) is sent as it is, for the switch and the conformance suite to see."""
    items = report.transactions
    refused = [item for item in items if item.status is not TxStatus.ACCEPTED]
    if len(items) < 2 or len(refused) == len(items) or (
            [item.original_end_to_end_id for item in items]
            != [tx.end_to_end_id for tx in message.transactions]):
        return report
    return replace(report, transactions=refused, group_status=(
        TxStatus.PARTIALLY_ACCEPTED if refused else TxStatus.ACCEPTED))


class Bank:
    """One participant's state: its ledger, its faults, and what it still has to send."""

    def __init__(self, config: BankConfig, accounts: Iterable[Account] = ()) -> None:
        self.config = config
        self.behaviour = config.behaviour
        self.ledger = Ledger(config.ledger_path)
        self.ledger.open_accounts(accounts)
        if config.accounts_file is not None:
            self.ledger.open_accounts(
                row.ledger_account() for row in read_accounts(config.accounts_file)
                if row.account_id not in self.ledger.accounts)
        # The switch is the one party that posts to a participant, at most a bank's largest
        # message (a forward of 1,000 items): more is refused 413 from its Content-Length.
        self.senders = {config.switch_bic: Sender(config.credentials(), BANK_MAX_BODY_BYTES)}
        self.debtor_results: dict[str, TransactionStatus] = {}  # as debtor agent
        self.statements: dict[int, Statement] = {}  # camt.053 by cycle, the last few
        self._answering = asyncio.Lock()  # held by each answer when behaviour.serial_answers
        self._redelivered: set[str] = set()  # behaviour.double_credit_on_redelivery's victims
        self.messages_sent = 0
        self.replies_lost = 0  # async answers deliberately never sent
        self._started_at_s = time.monotonic()
        self._switch: Peer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._sending = asyncio.Semaphore(MAX_CONCURRENT_SENDS)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._returning: set[str] = set()  # end-to-end ids whose return is on its way
        self.debtor_accounts: dict[str, str] = {}  # end-to-end id sent as debtor -> account
        self.debtor_amounts: dict[str, int] = {}
        self.inquiries_sent = 0  # pacs.028 asked after an answer that could not be trusted
        self.metrics = BankMetrics(lambda: self.pending_sends)

    async def start(self) -> None:
        """Open the channel to the switch; resume returns a previous run had not finished."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.config.client_ssl()))
        self._switch = Peer(self._session, f"{self.config.switch_url}{SWITCH_MESSAGES_PATH}",
                            self.config.bic, self.senders[self.config.switch_bic].credentials,
                            self.config.switch_bic,
                            timeout_s=SEND_TIMEOUT_S)
        self._started_at_s = time.monotonic()
        self._schedule_returns(self.ledger.returns_due())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        self.ledger.close()

    def uptime_s(self) -> float:
        return time.monotonic() - self._started_at_s

    # ---- sending to the switch ------------------------------------------------------------

    def _room_for(self, count: int) -> bool:
        return len(self._tasks) + count <= MAX_PENDING_SENDS

    @property
    def pending_sends(self) -> int:
        return len(self._tasks)

    async def _deliver(self, delay_s: float,
                       document: PaymentStatusReport | PaymentReturn | CreditTransferMessage
                       | StatusRequest) -> Reply | None:
        """Send after `delay_s`, retrying with capped backoff while the switch is unreachable
        or answers 5xx; None when it never took the message."""
        await asyncio.sleep(delay_s)
        switch = self._switch
        assert switch is not None, "the bank is not started"
        attempts = 0

        async def send() -> Reply | None:
            nonlocal attempts
            attempts += 1
            try:
                async with self._sending:
                    reply = await switch.send(document)
                if reply.status < 500:
                    self.messages_sent += 1
                    if isinstance(document, PaymentStatusReport):
                        self.metrics.answers.labels(POSTED).inc()
                    return reply
                problem = f"HTTP {reply.status} {reply.text.strip()}"
            except (aiohttp.ClientError, OSError, TimeoutError, CodecError) as error:
                problem = repr(error)
            self.metrics.send_failures.inc()
            log.info("%s: sending %s to the switch failed (attempt %d): %s", self.config.bic,
                     document.msg_id, attempts, problem)
            return None

        reply = await with_backoff(send, attempts=SEND_ATTEMPTS, first_backoff_s=FIRST_BACKOFF_S,
                                   max_backoff_s=MAX_BACKOFF_S, done=lambda r: r is not None)
        if reply is None:
            log.warning("%s: gave up sending %s to the switch", self.config.bic,
                        document.msg_id)
        return reply

    # ---- as creditor agent ----------------------------------------------------------------

    def decide(self, message: CreditTransferMessage) -> PaymentStatusReport:
        """Check every transaction and book the accepted ones (held, or with the bug
        credited) in one write, before any answer leaves."""
        behaviour = self.behaviour
        statuses, holds = [], []
        for tx in message.transactions:
            reason = self.refusal(tx) or self.ledger.check(
                tx.creditor_account, tx.creditor_name, tx.creditor_citizen_id)
            if reason is None and behaviour.chance(behaviour.reject_rate):
                reason = behaviour.reject_reason
            reason = behaviour.wrong_reason_codes.get(reason or "", reason)
            key = booking_key(tx.end_to_end_id, tx.tx_id)
            if reason is None and behaviour.double_credit_on_redelivery and self.ledger.knows(
                    key):
                self._redelivered.add(key)
            if reason is None:
                holds.append(Hold(key, tx.tx_id, tx.creditor_account, tx.amount_vnd))
            statuses.append(TransactionStatus(
                original_end_to_end_id=tx.end_to_end_id, original_tx_id=tx.tx_id,
                status=TxStatus.REJECTED if reason else TxStatus.ACCEPTED, reason_code=reason,
                reason_text=reasons.DESCRIPTIONS.get(reason or ""),
            ))
        early: list[str] = []
        with self.ledger.batch():
            self.ledger.hold(holds)
            if behaviour.credit_before_confirmation:
                early = self.ledger.settle([h.end_to_end_id for h in holds],
                                           before_confirmation=True)
        self.metrics.decided(len(holds), [s.reason_code for s in statuses if s.reason_code])
        self.metrics.credited((self.ledger.bookings[e2e].amount_vnd for e2e in early),
                              before_confirmation=True)
        return PaymentStatusReport(
            msg_id=new_id("BKA"), created_at=datetime.now(UTC), original_msg_id=message.msg_id,
            original_msg_type=MessageType.CREDIT_TRANSFER, transactions=statuses,
        )

    def refusal(self, tx: CreditTransfer) -> str | None:
        """What the switch would have refused before forwarding, refused again here: a bank
        takes no transfer only because the switch sent it (docs/conformance.md, the hostile
        peer's cases): AM03 another currency than VND, AM12 an amount that is no positive
        whole number of dong, RC01 a creditor agent that is not this bank."""
        if tx.currency != SCHEME_CURRENCY:
            return reasons.NOT_ALLOWED_CURRENCY
        text = tx.amount_text or str(tx.amount_vnd)
        if not (text.isascii() and text.isdigit() and text[0] != "0"):
            return reasons.INVALID_AMOUNT
        if tx.creditor_agent_bic != self.config.bic:
            return reasons.WRONG_BIC
        return None

    async def answer(self, message: CreditTransferMessage, request: web.Request
                     ) -> web.Response:
        """ACCP/RJCT per transaction, in the response or (async) posted to the switch; one
        message at a time when the behaviour says so."""
        if not self.behaviour.serial_answers:
            return await self._answer(message, request)
        async with self._answering:
            return await self._answer(message, request)

    async def _answer(self, message: CreditTransferMessage, request: web.Request
                      ) -> web.Response:
        behaviour = self.behaviour
        report = self.decide(message)
        delay_s = behaviour.answer_delay_s()
        if behaviour.answer_mode == ASYNC:
            if behaviour.chance(behaviour.lost_reply_rate):
                self.replies_lost += 1
                self.metrics.answers_lost.inc()
                return web.Response(status=202, text="accepted for processing\n")
            copies = 2 if behaviour.chance(behaviour.duplicate_reply_rate) else 1
            if self._room_for(copies):
                for _ in range(copies):
                    spawn(self._tasks, self._deliver(delay_s, report))
                return web.Response(status=202, text="accepted for processing\n")
            log.warning("%s: %d sends pending; answering in the response", self.config.bic,
                        self.pending_sends)
        await asyncio.sleep(delay_s)
        self.metrics.answers.labels(RESPONSE).inc()
        return self.xml_answer(request, short_answer(report, message),
                               "bulk_answer" if len(message.transactions) > 1
                               else "instant_answer")

    def xml_answer(self, request: web.Request, document: PaymentStatusReport |
                   VerificationReport, answers: FaultyAnswers | None) -> web.Response:
        """The answer in the HTTP response, spoiled by the behaviour's message_fault when it
        is one of the answers the fault hits."""
        behaviour = self.behaviour
        fault = behaviour.message_fault if answers == behaviour.message_fault_on else None
        sender, receiver = self.config.bic, self.config.switch_bic
        if fault == "wrong_sender":
            sender = next(bic for bic in PARTICIPANTS if bic != self.config.bic)
        elif fault == "wrong_receiver":
            receiver = next(bic for bic in PARTICIPANTS if bic != self.config.bic)
        response = xml_response(sender, receiver, document)
        if fault == "malformed" and isinstance(response.body, bytes):
            response.body = response.body[:len(response.body) // 2]
        elif fault in ("unsigned", "bad_signature"):
            request[SPOILED_SIGNATURE] = fault
        return response

    def take_status_report(self, report: PaymentStatusReport) -> None:
        """The switch's confirmations: ACSC credits, RJCT releases, in one write. Ids this
        participant never accepted are results of transfers it sent as debtor agent."""
        settled, rejected = [], []
        for item in report.transactions:
            e2e = booking_key(item.original_end_to_end_id, item.original_tx_id)
            if not self.ledger.knows(e2e):
                self._take_debtor_result(item)
            elif item.status is TxStatus.SETTLED:
                settled.append(e2e)
            elif item.status is TxStatus.REJECTED:
                rejected.append(e2e)
        with self.ledger.batch():
            credited = self.ledger.settle(settled)
            released = self.ledger.release(rejected)
            self.ledger.credit_again(e2e for e2e in credited if e2e in self._redelivered)
        self.metrics.credited(self.ledger.bookings[e2e].amount_vnd for e2e in credited)
        self.metrics.releases.inc(len(released))
        self._schedule_returns(self.ledger.returns_due(settled))

    def _schedule_returns(self, due: list[Hold], reason_code: str = reasons.CREDITOR_DECEASED,
                          delay_s: float | None = None) -> None:
        """Return these credits (pacs.004) after `delay_s`, the behaviour's
        return_deceased_after_s when None; nothing when both are None."""
        delay_s = self.behaviour.return_deceased_after_s if delay_s is None else delay_s
        if delay_s is None:
            return
        due = [h for h in due if h.end_to_end_id not in self._returning]
        for start in range(0, len(due), MAX_ITEMS_PER_RETURN):
            chunk = due[start:start + MAX_ITEMS_PER_RETURN]
            if not self._room_for(1):
                log.warning("%s: %d returns left for a later start: too many sends pending",
                            self.config.bic, len(due) - start)
                return
            self._returning.update(h.end_to_end_id for h in chunk)
            spawn(self._tasks, self._send_returns(delay_s, chunk, reason_code))

    def return_credit(self, end_to_end_id: str, reason_code: str,
                      amount_vnd: int | None = None) -> str | None:
        """Send back one credit now, whole or `amount_vnd` of it (the conformance hook); why
        not, or None once on its way. An amount above the credit is sent as asked: the
        switch refuses it AM09 and nothing is debited."""
        booking = self.ledger.bookings.get(end_to_end_id)
        if booking is None or booking.state is not BookingState.CREDITED:
            return f"{end_to_end_id} is not a credit of {self.config.bic}"
        if booking.returned_vnd or end_to_end_id in self._returning:
            return f"{end_to_end_id} is already returned"
        if not self._room_for(1):
            return f"{count(self.pending_sends, 'send')} pending; try later"
        self._schedule_returns([Hold(end_to_end_id, booking.tx_id, booking.account_id,
                                     amount_vnd or booking.amount_vnd)], reason_code,
                               delay_s=0.0)
        return None

    async def _send_returns(self, delay_s: float, due: list[Hold], reason_code: str) -> None:
        """Return the funds (pacs.004, MD07) and book what the switch settled. DUPL means it
        settled an earlier copy whose answer was lost: only this bank can return its credits."""
        ids = [h.end_to_end_id for h in due]
        message = PaymentReturn(
            msg_id=new_id("BKR"), created_at=datetime.now(UTC),
            instructing_agent_bic=self.config.bic, instructed_agent_bic=self.config.switch_bic,
            items=[PaymentReturnItem(
                return_id=self.new_return_id(), original_end_to_end_id=(
                    new_id("OR") if self.behaviour.return_wrong_original
                    else wire_end_to_end_id(h.end_to_end_id)),
                original_tx_id=h.tx_id, returned_amount_vnd=h.amount_vnd,
                reason_code=reason_code, amount_text=str(h.amount_vnd),
            ) for h in due],
        )
        key_of_return = {item.return_id: h.end_to_end_id
                         for item, h in zip(message.items, due, strict=True)}
        try:
            reply = await self._deliver(delay_s, message)
            answer = reply.message.document if reply is not None and reply.message else None
            if not isinstance(answer, PaymentStatusReport):
                return
            amounts = {h.end_to_end_id: h.amount_vnd for h in due}
            done = [key_of_return.get(i.original_tx_id, i.original_end_to_end_id)
                    for i in answer.transactions
                    if i.status is TxStatus.SETTLED or i.reason_code == reasons.DUPLICATE]
            booked = self.ledger.record_returns(
                (e2e, amounts[e2e]) for e2e in done if e2e in amounts)
            self.metrics.returned(amounts[e2e] for e2e in booked)
        finally:
            self._returning.difference_update(ids)

    def new_return_id(self) -> str:
        """A RtrId never used before by this bank (pacs.004 TxInf/RtrId, Max35Text)."""
        return new_id("RT")

    def verification_report(self, request: VerificationRequest) -> VerificationReport:
        """acmt.024 from the ledger: whether each asked account is the named person's."""
        return VerificationReport(
            msg_id=new_id("BKV"), created_at=datetime.now(UTC), assigner_bic=self.config.bic,
            assignee_bic=request.assigner_bic, original_msg_id=request.msg_id,
            results=[self.ledger.verify(item) for item in request.items])

    def take_statement(self, statement: Statement) -> None:
        """A closed cycle's camt.053: kept for the last few cycles."""
        self.statements[statement.cycle_id] = statement
        for cycle_id in sorted(self.statements)[:-MAX_STATEMENTS_KEPT]:
            del self.statements[cycle_id]

    # ---- as debtor agent ------------------------------------------------------------------

    def send_transfer(self, order: TransferOrder) -> str | None:
        """Send one instant pacs.008 to the switch (the conformance hook); why not, or None
        once it is on its way. Sent once: a lost answer is a question for pacs.028, never a
        blind resend."""
        return self.send_transfers([order])

    def send_transfers(self, orders: list[TransferOrder]) -> str | None:
        """Send these transfers in one pacs.008 (instant when one, else a bulk whose final
        statuses the switch pushes); why not, or None once it is on its way."""
        transactions = []
        for order in orders:
            account = self.ledger.accounts.get(order.debtor_account)
            if account is None:
                return f"{self.config.bic} holds no account {order.debtor_account}"
            transactions.append(CreditTransfer(
                end_to_end_id=order.end_to_end_id, tx_id=order.end_to_end_id,
                amount_vnd=order.amount_vnd, debtor_name=account.holder_name,
                debtor_account=account.account_id, debtor_agent_bic=self.config.bic,
                creditor_name=order.creditor_name, creditor_account=order.creditor_account,
                creditor_agent_bic=order.creditor_agent_bic, amount_text=str(order.amount_vnd),
            ))
        if not self._room_for(1):
            return f"{count(self.pending_sends, 'send')} pending; try later"
        for tx in transactions:
            self.debtor_accounts[tx.end_to_end_id] = tx.debtor_account
            self.debtor_amounts[tx.end_to_end_id] = tx.amount_vnd
        spawn(self._tasks, self._send_transfer(CreditTransferMessage(
            msg_id=new_id("BKT"), created_at=datetime.now(UTC),
            instructing_agent_bic=self.config.bic, instructed_agent_bic=self.config.switch_bic,
            transactions=transactions)))
        return None

    async def _send_transfer(self, message: CreditTransferMessage) -> None:
        """Send once; an answer that is lost, or whose signature does not check, is no
        answer (docs/participants.md, "Check every answer"): ask with pacs.028."""
        switch = self._switch
        assert switch is not None, "the bank is not started"
        try:
            async with self._sending:
                reply = await switch.send(message)
        except (aiohttp.ClientError, OSError, TimeoutError, CodecError) as error:
            self.metrics.send_failures.inc()
            log.warning("%s: sending %s failed: %r; asking with pacs.028",
                        self.config.bic, message.msg_id, error)
            await self._inquire(message)
            return
        self.messages_sent += 1
        self._take_debtor_answer(reply)

    def _take_debtor_answer(self, reply: Reply) -> None:
        """The switch's answer to transfers this bank sent (a bulk's is ACTC: its final
        statuses come pushed, take_status_report)."""
        answer = reply.message.document if reply.message is not None else None
        if isinstance(answer, PaymentStatusReport):
            for item in answer.transactions:
                self._take_debtor_result(item)

    def _take_debtor_result(self, item: TransactionStatus) -> None:
        """The final status of a transfer this bank sent: a settled one is taken off the
        debtor's account, once however often it is reported."""
        e2e = item.original_end_to_end_id
        self.debtor_results[e2e] = item
        if item.status is TxStatus.SETTLED and e2e in self.debtor_accounts:
            self.ledger.debit_sent(e2e, self.debtor_accounts[e2e], self.debtor_amounts[e2e])

    async def _inquire(self, message: CreditTransferMessage) -> None:
        """pacs.028 for the transfers of a message whose answer did not come or could not be
        trusted, retried with backoff while the switch cannot be reached."""
        request = StatusRequest(
            msg_id=new_id("BKQ"), created_at=datetime.now(UTC),
            items=[StatusRequestItem(tx.end_to_end_id, tx.tx_id, message.msg_id)
                   for tx in message.transactions])
        self.inquiries_sent += 1
        reply = await self._deliver(0.0, request)
        if reply is not None:
            self._take_debtor_answer(reply)

    def take_returns(self, message: PaymentReturn) -> None:
        """Funds of transfers this bank sent coming back: onto the debtor's account, once per
        end-to-end id however often the pacs.004 is delivered."""
        booked = self.ledger.record_received_returns(
            ((i.original_end_to_end_id, i.returned_amount_vnd) for i in message.items),
            self.debtor_accounts)
        self.metrics.returns_received.inc(len(booked))


# ---- HTTP ---------------------------------------------------------------------------------


async def inbound(request: web.Request) -> web.Response:
    """What the switch posts: pacs.008 to answer, pacs.002 confirmations, pacs.004 returns."""
    bank = request.app[BANK]
    config, behaviour = bank.config, bank.behaviour
    if behaviour.down(bank.uptime_s()):
        raise web.HTTPServiceUnavailable(text=f"503: {config.bic} is offline\n")
    if behaviour.chance(behaviour.error_rate):
        raise web.HTTPInternalServerError(text=f"500: {config.bic} injected error\n")
    message = (await read_signed(request, bank.senders, config.bic)).message
    document = message.document
    if isinstance(document, CreditTransferMessage):
        return await bank.answer(document, request)
    if isinstance(document, VerificationRequest):
        return bank.xml_answer(request, bank.verification_report(document),
                               "verification_answer")
    if isinstance(document, PaymentStatusReport):
        bank.take_status_report(document)
    elif isinstance(document, PaymentReturn):
        bank.take_returns(document)
    elif isinstance(document, Statement):
        bank.take_statement(document)
    else:
        raise web.HTTPBadRequest(text=f"FF01: {config.bic} takes pacs.008, pacs.002, pacs.004, "
                                 f"camt.053 and acmt.023, not {message.header.msg_def_id}\n")
    return web.Response(text="ok\n")


async def ledger_totals(request: web.Request) -> web.Response:
    bank = request.app[BANK]
    return web.json_response({"bic": bank.config.bic, "kind": bank.config.kind}
                             | bank.ledger.totals().as_dict())


async def credits(request: web.Request) -> web.Response:
    """Line by line, for reconciliation: what was credited, early, and returned."""
    ledger = request.app[BANK].ledger
    bookings = ledger.bookings
    return web.json_response({
        "credits": ledger.credits(),
        "credited_before_confirmation": sorted(e for e, b in bookings.items()
                                               if b.credited_early),
        "returned": {e: b.returned_vnd for e, b in bookings.items() if b.returned_vnd},
    })


async def get_behaviour(request: web.Request) -> web.Response:
    return web.json_response(request.app[BANK].behaviour.model_dump(mode="json"))


async def set_behaviour(request: web.Request) -> web.Response:
    """Replace the faults; settings left out take their defaults ({} = well behaved)."""
    bank = request.app[BANK]
    try:
        bank.behaviour = Behaviour.model_validate(await request.json())
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'behaviour'}: {p['msg']}"
                             for p in error.errors()[:MAX_PROBLEMS_SHOWN])
        raise web.HTTPBadRequest(text=f"400: {problems}\n") from None
    except ValueError as error:  # not JSON
        raise web.HTTPBadRequest(text=f"400: {error}\n") from None
    return web.json_response(bank.behaviour.model_dump(mode="json"))


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition (banks/metrics.py), behind the admin token."""
    bank = request.app[BANK]
    return metrics_response(request, bank.metrics.registry, bank.config.admin_token)


async def health(request: web.Request) -> web.Response:
    bank = request.app[BANK]
    return web.json_response({
        "status": "ok", "bic": bank.config.bic, "kind": bank.config.kind,
        "down": bank.behaviour.down(bank.uptime_s()), "accounts": len(bank.ledger.accounts),
        "pending_sends": bank.pending_sends, "messages_sent": bank.messages_sent,
        "replies_lost": bank.replies_lost, "results_as_debtor": len(bank.debtor_results),
    })


@web.middleware
async def spoil_signature(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The behaviour's unsigned or badly signed answers: undone after sign_answers signed."""
    response = await handler(request)
    fault = request.get(SPOILED_SIGNATURE)
    if fault == "unsigned":
        for header in (SIGNATURE_INPUT_HEADER, SIGNATURE_HEADER):
            response.headers.popall(header, None)
    elif fault == "bad_signature" and SIGNATURE_HEADER in response.headers:
        response.headers[SIGNATURE_HEADER] = spoiled(response.headers[SIGNATURE_HEADER])
    return response


def create_bank_app(bank: Bank) -> web.Application:
    """The participant's HTTP face; starting the application starts the bank."""
    app = web.Application(client_max_size=MAX_MESSAGE_BYTES, middlewares=[
        spoil_signature, sign_answers(bank.config.bic, bank.senders),
        bearer_auth("/admin/", bank.config.admin_token)])
    app[BANK] = bank
    app[AUTH_FAILED] = bank.metrics.auth_failed
    run_alongside(app, bank.start, bank.stop)
    app.router.add_post(INBOUND_PATH, inbound)
    app.router.add_get("/health", health)
    app.router.add_get(METRICS_PATH, metrics)
    app.router.add_get("/admin/ledger", ledger_totals)
    app.router.add_get("/admin/credits", credits)
    app.router.add_get("/admin/behaviour", get_behaviour)
    app.router.add_put("/admin/behaviour", set_behaviour)
    hooks.add_routes(app, BANK)
    return app


async def run_bank(config: BankConfig, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve one participant until SIGTERM or SIGINT. The first line printed, "... listening
    on URL", tells whoever started the process that it is ready and where."""
    bound = bind(host, port)
    runner = await serve(create_bank_app(Bank(config)), bound,
                         None if config.tls is None else server_context(config.tls))
    try:
        await ready_until_stopped(f"bank {config.bic} listening on {bound.base_url}"
                                  f"{INBOUND_PATH}")
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m banks.bank", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True,
                        help="the bank's JSON or YAML configuration (BankConfig's fields)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: the OS chooses")
    args = parser.parse_args(argv)
    try:
        config = settings.load(args.config, BankConfig)
    except SettingsError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run_event_loop(run_bank(config, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
