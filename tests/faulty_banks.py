"""The faulty banks that prove the conformance suite: each is switchlab's correct mock bank
with one defect a real integration might have (a Behaviour setting, or one method of its Bank
replaced), the case that must fail for it, and the words its failure must say.

Issue #23 ran eighteen copies of a bank written from the docs alone; five passed and four
were failed with a sentence pointing elsewhere. Those defects are all here, with the classes
of defect the new cases exist for. tests/integration/test_faulty_banks.py runs each in
process against its case (and the reconciliation that ends every run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from aiohttp import web

from banks.bank import Bank, short_answer
from banks.ledger import ACTIVE, CLOSED, BookingState
from protocol import reasons
from protocol.codec import MAX_MESSAGE_BYTES
from protocol.http import AnswerNotAuthentic
from protocol.messages import (
    SCHEME_CURRENCY,
    CreditTransferMessage,
    PaymentStatusReport,
    Statement,
    TxStatus,
    VerificationItem,
    VerificationRequest,
    VerificationResult,
)
from protocol.names import mask_name, same_name

RECONCILIATION = "reconciliation.books"


@dataclass(frozen=True)
class FaultyBank:
    """One defect: how to make it, the case that names it, what the failure must say, and
    the other cases it rightly fails (the reconciliation, when it puts the books wrong)."""

    defect: str
    case: str
    says: str  # words the case's one sentence must hold
    behaviour: dict[str, Any] = field(default_factory=dict)
    patch: Callable[[Bank], None] | None = None
    also_fails: frozenset[str] = frozenset()
    # Its server keeps no request ids (protocol/replay.py), as a bank's own stack may not:
    # the mock bank's transport refuses a replay before its books see it.
    forgets_request_ids: bool = False
    # cases run with it that it passes: what the run sees of the bank besides its defect
    alongside: tuple[str, ...] = ()


# ---- the defects, as patches of one Bank ----------------------------------------------------

def _reuse_return_id(bank: Bank) -> None:
    bank.new_return_id = lambda: "RT-ALWAYS-THE-SAME"  # type: ignore[method-assign]


def _status_before_citizen_id(bank: Bank) -> None:
    """acmt.023 answered from the account's status first: AC04 where BE17 is due."""
    ledger = bank.ledger

    def verify(item: VerificationItem) -> VerificationResult:
        account = ledger.accounts.get(item.account_id or "")
        if account is None:
            return VerificationResult(item.verification_id, False, reasons.WRONG_ACCOUNT)
        if account.status != ACTIVE:
            return VerificationResult(item.verification_id, False, reasons.CLOSED_ACCOUNT
                                      if account.status == CLOSED else reasons.BLOCKED_ACCOUNT)
        if item.citizen_id != account.citizen_id:
            return VerificationResult(item.verification_id, False, reasons.CITIZEN_ID_MISMATCH)
        if not same_name(account.holder_name, item.name):
            return VerificationResult(item.verification_id, False, reasons.NAME_MISMATCH,
                                      mask_name(account.holder_name))
        if account.deceased:
            return VerificationResult(item.verification_id, False, reasons.CREDITOR_DECEASED)
        return VerificationResult(item.verification_id, True)

    ledger.verify = verify  # type: ignore[method-assign]


def _swallowing(error_type: type[BaseException]) -> Callable[[Bank], None]:
    """The bank's own transfers: an answer that fails with `error_type` is taken as it came
    (believed, or forgotten: no pacs.028); any other failure is handled as the correct bank
    does."""
    def patch(bank: Bank) -> None:
        async def send_transfer(message: CreditTransferMessage) -> None:
            switch = bank._switch
            assert switch is not None
            try:
                reply = await switch.send(message)
            except error_type:
                return  # the defect
            except (aiohttp.ClientError, OSError, TimeoutError):
                await bank._inquire(message)
                return
            bank._take_debtor_answer(reply)

        bank._send_transfer = send_transfer  # type: ignore[method-assign]
    return patch


def _book_every_return(bank: Bank) -> None:
    """Received returns booked each time they are delivered."""
    ledger = bank.ledger

    def record(returns: Any, debtor_accounts: Any = None) -> list[str]:
        booked = []
        for e2e, amount_vnd in returns:
            account_id = (debtor_accounts or {}).get(e2e)
            if account_id in ledger.accounts:
                ledger.accounts[account_id].balance_vnd += amount_vnd
            ledger.received_returns[e2e] = amount_vnd
            booked.append(e2e)
        return booked

    ledger.record_received_returns = record  # type: ignore[method-assign]


def _never_release(bank: Bank) -> None:
    bank.ledger.release = lambda end_to_end_ids: []  # type: ignore[method-assign]


def _credit_closed_accounts(bank: Bank) -> None:
    for account in bank.ledger.accounts.values():
        if account.status == CLOSED:
            account.status = ACTIVE  # the core system's status never reaches the answer


def _credit_any_currency(bank: Bank) -> None:
    """A core system that keeps each account's currency but never checks it on a credit."""
    for account in bank.ledger.accounts.values():
        account.currency = SCHEME_CURRENCY


def _answer_one_id_twice(bank: Bank) -> None:
    """A bulk answer that answers its first transaction twice and its last not at all."""
    decide = bank.decide

    def decide_twice(message: CreditTransferMessage) -> PaymentStatusReport:
        report = decide(message)
        if len(report.transactions) > 1:
            report.transactions[-1] = report.transactions[0]
        return report

    bank.decide = decide_twice  # type: ignore[method-assign]


def _credit_anyway(bank: Bank) -> None:
    """A transfer the switch rejected (the answer came too late) is credited anyway."""
    take = bank.take_status_report

    def take_all(report: PaymentStatusReport) -> None:
        take(replace(report, transactions=[
            replace(item, status=TxStatus.SETTLED, reason_code=None)
            if item.status is TxStatus.REJECTED and bank.ledger.knows(item.original_end_to_end_id)
            else item for item in report.transactions]))

    bank.take_status_report = take_all  # type: ignore[method-assign]


def _return_whole(bank: Bank) -> None:
    whole = bank.return_credit
    bank.return_credit = lambda e2e, reason, amount_vnd=None: whole(  # type: ignore[method-assign]
        e2e, reason)


def _debit_on_asking(bank: Bank) -> None:
    """A return debited as soon as it is asked for, whatever the switch then answers."""
    asked = bank.return_credit

    def return_credit(e2e: str, reason: str, amount_vnd: int | None = None) -> str | None:
        booking = bank.ledger.bookings.get(e2e)
        if booking is not None and booking.state is BookingState.CREDITED:
            bank.ledger.accounts[booking.account_id].balance_vnd -= booking.amount_vnd
        return asked(e2e, reason, amount_vnd)

    bank.return_credit = return_credit  # type: ignore[method-assign]


def _half_an_answer(bank: Bank) -> None:
    report = bank.verification_report

    def first_half(request: VerificationRequest) -> Any:
        answered = report(request)
        answered.results = answered.results[:max(1, len(answered.results) // 2)]
        return answered

    bank.verification_report = first_half  # type: ignore[method-assign]


def _no_body_limit(bank: Bank) -> None:
    """Reads whatever the switch's key signs, up to the codec's 128 MiB, as a bank's own
    stack may (a web server's default limit raised, or none)."""
    bank.senders = {bic: replace(sender, max_body_bytes=MAX_MESSAGE_BYTES)
                    for bic, sender in bank.senders.items()}


def _ignoring(check: str) -> Callable[[Bank], None]:
    """The bank's own refusal of what the switch refuses, without one of its checks."""
    def patch(bank: Bank) -> None:
        refusal = bank.refusal

        def without(tx: Any) -> str | None:
            if check == "amount":
                tx = replace(tx, amount_text="1", amount_vnd=1)
            elif check == "currency":
                tx = replace(tx, currency="VND")
            else:
                tx = replace(tx, creditor_agent_bic=bank.config.bic)
            return refusal(tx)

        bank.refusal = without  # type: ignore[method-assign]
    return patch


def _refuse_statements(bank: Bank) -> None:
    def take(statement: Statement) -> None:
        raise web.HTTPInternalServerError(text="500: statements are not booked\n")

    bank.take_statement = take  # type: ignore[method-assign]


def _credit_each_confirmation(bank: Bank) -> None:
    """A confirmation delivered again (its 2xx lost) credited again."""
    take = bank.take_status_report

    def take_again(report: PaymentStatusReport) -> None:
        again = [i.original_end_to_end_id for i in report.transactions
                 if i.status is TxStatus.SETTLED and (b := bank.ledger.bookings.get(
                     i.original_end_to_end_id)) is not None
                 and b.state is BookingState.CREDITED]
        take(report)
        bank.ledger.credit_again(again)

    bank.take_status_report = take_again  # type: ignore[method-assign]


def _refuse_rejecting_what_it_accepted(bank: Bank) -> None:
    """"We answered ACCP: it cannot be rejected now": an RJCT of a transfer it holds refused
    409, as after a switch's crash (AB06), so the hold stays and the switch posts forever."""
    take = bank.take_status_report

    def take_unless_held(report: PaymentStatusReport) -> None:
        if any(i.status is TxStatus.REJECTED and (b := bank.ledger.bookings.get(
                i.original_end_to_end_id)) is not None and b.state is BookingState.HELD
               for i in report.transactions):
            raise web.HTTPConflict(text="409: we accepted this transfer\n")
        take(report)

    bank.take_status_report = take_unless_held  # type: ignore[method-assign]


def _refuse_known_statements(bank: Bank) -> None:
    take = bank.take_statement

    def take_once(statement: Statement) -> None:
        if statement.cycle_id in bank.statements:
            raise web.HTTPConflict(text="409: statement already booked\n")
        take(statement)

    bank.take_statement = take_once  # type: ignore[method-assign]


def _debit_whatever_the_answer(bank: Bank) -> None:
    """Every transfer it sends taken off its debtor, whatever the switch answered."""
    def take(reply: Any) -> None:
        answer = reply.message.document if reply.message is not None else None
        if isinstance(answer, PaymentStatusReport):
            for item in answer.transactions:
                e2e = item.original_end_to_end_id
                account_id = bank.debtor_accounts.get(e2e)
                if account_id in bank.ledger.accounts:
                    bank.ledger.accounts[account_id].balance_vnd -= bank.debtor_amounts[e2e]

    bank._take_debtor_answer = take  # type: ignore[method-assign]


def _one_msg_id(bank: Bank) -> None:
    """Every pacs.008 it sends under one MsgId."""
    send = bank._send_transfer

    async def send_as_one(message: CreditTransferMessage) -> None:
        await send(replace(message, msg_id="BKT-ALWAYS-THE-SAME"))

    bank._send_transfer = send_as_one  # type: ignore[method-assign]


def _look_up_the_citizen(bank: Bank) -> None:
    """A question naming a citizen ID alone answered from the account linked to it."""
    ledger = bank.ledger
    verify = ledger.verify

    def by_citizen(item: VerificationItem) -> VerificationResult:
        if item.account_id is None:
            account = next((a for a in ledger.accounts.values()
                            if a.citizen_id == item.citizen_id), None)
            if account is not None:
                item = replace(item, account_id=account.account_id)
        return verify(item)

    ledger.verify = by_citizen  # type: ignore[method-assign]


LATE_ANSWER_AMOUNT_VND = 340_000  # creditor.late-answer's transfer, as a bank can see it


def _in_time_for_the_late_answer_case(bank: Bank) -> None:
    """Answers 202 and posts its pacs.002 later, except to the one transfer of the case that
    holds that post back (attacker report 3, finding 6): that one it answers 200 at once."""
    answer = bank.answer

    async def dodging(message: CreditTransferMessage, request: web.Request) -> web.Response:
        if [tx.amount_vnd for tx in message.transactions] != [LATE_ANSWER_AMOUNT_VND]:
            return await answer(message, request)
        return bank.xml_answer(request, short_answer(bank.decide(message), message),
                               "instant_answer")

    bank.answer = dodging  # type: ignore[method-assign]


def _one_message_each(bank: Bank) -> None:
    """A bulk order sent as one instant pacs.008 a transfer."""
    send = bank.send_transfers

    def each(orders: list[Any]) -> str | None:
        for order in orders:
            refusal = send([order])
            if refusal is not None:
                return refusal
        return None

    bank.send_transfers = each  # type: ignore[method-assign]


FAULTY_BANKS: list[FaultyBank] = [
    # the thirteen of issue #23 that failed, as banks/behaviour.py makes them
    FaultyBank("a wrong reason code (AC01 for a closed account)",
               "creditor.reject-closed-account", "answered RJCT AC01 for a closed account",
               {"wrong_reason_codes": {"AC04": "AC01"}}),
    FaultyBank("credits on its own ACCP", "creditor.no-credit-before-confirmation",
               "on its own ACCP, before the switch's ACSC",
               {"credit_before_confirmation": True}, also_fails=frozenset({RECONCILIATION})),
    FaultyBank("double credit on redelivery", "creditor.redelivery", "credited 2 times",
               {"double_credit_on_redelivery": True}, also_fails=frozenset({RECONCILIATION})),
    FaultyBank("one answer at a time, too slow", "creditor.burst", "past the 1 s deadline",
               {"serial_answers": True, "latency_ms_median": 300.0},
               also_fails=frozenset({RECONCILIATION})),  # holds what was rejected meanwhile
    FaultyBank("a malformed bulk answer", "creditor.bulk", "not a well-formed ISO 20022",
               {"message_fault": "malformed", "message_fault_on": "bulk_answer"}),
    FaultyBank("an unsigned acmt.024", "creditor.verification", "is not signed",
               {"message_fault": "unsigned", "message_fault_on": "verification_answer"}),
    FaultyBank("an acmt.024 to another receiver", "creditor.verification",
               "head.001 To names", {"message_fault": "wrong_receiver",
                                     "message_fault_on": "verification_answer"}),
    FaultyBank("a bulk answer from another bank", "creditor.bulk", "Fr names",
               {"message_fault": "wrong_sender", "message_fault_on": "bulk_answer"}),
    FaultyBank("a bad signature on the acmt.024", "creditor.verification",
               "signature does not match",
               {"message_fault": "bad_signature", "message_fault_on": "verification_answer"}),
    FaultyBank("a return that names another original", "creditor.return",
               "does not refer to the original", {"return_wrong_original": True}),
    # the five that passed
    FaultyBank("one RtrId reused for every return", "creditor.return-ids",
               "reuse one RtrId RT-ALWAYS-THE-SAME", patch=_reuse_return_id),
    FaultyBank("acmt.023 answered AC04 before the citizen ID is checked",
               "creditor.verification-privacy", "before checking the citizen ID tells a "
               "stranger", patch=_status_before_citizen_id),
    FaultyBank("a debtor that takes unsigned and forged switch answers",
               "debtor.unauthentic-answer", "it took an answer it could not trust",
               patch=_swallowing(AnswerNotAuthentic),
               also_fails=frozenset({RECONCILIATION})),  # never debits what settled
    FaultyBank("a redelivered pacs.004 booked twice", "debtor.return-twice",
               "moved 0011004455667 by +100,000 VND", patch=_book_every_return,
               also_fails=frozenset({RECONCILIATION})),
    FaultyBank("a hold never released after RJCT", "creditor.no-credit-after-refusal",
               "never released the hold", patch=_never_release,
               also_fails=frozenset({RECONCILIATION})),
    # the four whose sentence pointed elsewhere
    FaultyBank("a closed account answered ACCP", "creditor.reject-closed-account",
               "the bank answered ACCP in", patch=_credit_closed_accounts),
    FaultyBank("a USD account credited in dong", "creditor.reject-other-currency",
               "not RJCT AC09 from the bank", patch=_credit_any_currency),
    FaultyBank("a bulk answer naming one end-to-end id twice", "creditor.bulk",
               "twice", patch=_answer_one_id_twice),
    FaultyBank("answers past the deadline, then credits anyway", "creditor.accept",
               "past the 1 s deadline", {"latency_ms_median": 2_500.0},
               patch=_credit_anyway, also_fails=frozenset({RECONCILIATION})),
    FaultyBank("signs no answer", "creditor.accept", "is not signed",
               {"message_fault": "unsigned", "message_fault_on": "instant_answer"}),
    # the defect classes of the new cases
    FaultyBank("a partial return sent whole", "creditor.return-ids",
               "returns 310,000 VND", patch=_return_whole),
    FaultyBank("a return debited although the switch refused it", "creditor.return-refused",
               "moved by -320,000 VND after a return of 320,001 VND",
               patch=_debit_on_asking, also_fails=frozenset({RECONCILIATION})),
    FaultyBank("a debtor that forgets a transfer whose answer was lost", "debtor.lost-answer",
               "no pacs.028 about it", patch=_swallowing(aiohttp.ServerDisconnectedError),
               also_fails=frozenset({RECONCILIATION})),
    FaultyBank("half of a 1,000-item acmt.023 answered", "creditor.verification-1000",
               "answers 500 of the 1,000", patch=_half_an_answer),
    FaultyBank("an amount of 1.5 VND accepted", "security.amount-am12",
               "not RJCT AM12 or 400", patch=_ignoring("amount")),
    FaultyBank("USD accepted", "security.amount-am03", "not RJCT AM03 or 400",
               patch=_ignoring("currency")),
    FaultyBank("a transfer for another bank accepted", "security.not-creditor-agent",
               "not RJCT or 4xx", patch=_ignoring("creditor agent")),
    FaultyBank("an RJCT of a transfer it accepted refused", "creditor.switch-restart",
               "not 2xx", patch=_refuse_rejecting_what_it_accepted,
               also_fails=frozenset({RECONCILIATION})),
    FaultyBank("no limit on the bodies it reads", "security.oversized-body",
               "with HTTP 200, not 413", patch=_no_body_limit),
    FaultyBank("statements refused", "settlement.statement", "HTTP 500",
               patch=_refuse_statements),
    FaultyBank("a confirmation credited again when its 2xx was lost",
               "creditor.confirmation-ack-lost", "credited 2 times",
               patch=_credit_each_confirmation, also_fails=frozenset({RECONCILIATION})),
    FaultyBank("a statement it already holds refused", "settlement.statement-twice",
               "HTTP 409", patch=_refuse_known_statements),
    FaultyBank("a replayed request booked as a new transfer", "security.replay",
               "credited 2 times", {"double_credit_on_redelivery": True},
               also_fails=frozenset({RECONCILIATION}), forgets_request_ids=True),
    FaultyBank("a debtor that debits what the switch rejected", "debtor.rejections",
               "moved by -150,000 VND", patch=_debit_whatever_the_answer,
               also_fails=frozenset({RECONCILIATION})),
    FaultyBank("one MsgId for every transfer it sends", "debtor.rejections",
               "used the MsgId BKT-ALWAYS-THE-SAME for two different pacs.008",
               patch=_one_msg_id),
    FaultyBank("a question naming a citizen ID alone answered from the directory",
               "creditor.verification-privacy", "was answered true, not false AC01",
               patch=_look_up_the_citizen),
    FaultyBank("a late asynchronous ACCP credited", "creditor.late-answer",
               "for a late ACCP the switch refused", {"answer_mode": "async"},
               patch=_credit_anyway, also_fails=frozenset({RECONCILIATION})),
    FaultyBank("answers 202 but 200 to the late-answer case's transfer",
               "creditor.late-answer", "202 (posting its pacs.002 later) in creditor.accept",
               {"answer_mode": "async"}, patch=_in_time_for_the_late_answer_case,
               alongside=("creditor.accept",)),
    FaultyBank("its own bulk sent as one message a transfer", "debtor.bulk",
               "in 100 messages", patch=_one_message_each),
    FaultyBank("keeps up with a burst, not with a steady rate", "creditor.sustained",
               "p99", {"serial_answers": True, "latency_ms_median": 80.0},
               also_fails=frozenset({RECONCILIATION})),
]
