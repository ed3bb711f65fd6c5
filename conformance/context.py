"""What a case works with: the lab, the bank's test accounts by role, and the steps every case
repeats (pay through the switch, speak as the scheme, read the bank's balance, wait for the
switch's confirmation), each failing the case with one sentence that says what was wrong."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pydantic

from banks.accounts_file import OPEN, TestAccount
from banks.registry import SWITCH_BIC, TREASURY_BIC
from conformance.lab import Answer, Lab
from conformance.relay import Exchange
from conformance.rules import Rules, decoded_or_none
from protocol import reasons
from protocol.codec import new_id
from protocol.hooks import BALANCES_PATH, Balance
from protocol.messages import (
    SCHEME_CURRENCY,
    BusinessMessage,
    CreditTransfer,
    CreditTransferMessage,
    MessageType,
    PaymentStatusReport,
    TransactionStatus,
    TxStatus,
    answer_per_transaction,
)
from protocol.wording import count

CREDIT_WAIT_S = 5.0  # a bank may book a confirmation a little after acknowledging it
CONFIRMATION_WAIT_S = 10.0
SETTLE_PAUSE_S = 0.5  # before looking again for a second credit
# The role of the first open account in another currency than VND: the scheme pays dong only,
# so the bank must refuse it AC09; a bank that holds none has nothing to refuse.
OTHER_CURRENCY = "other-currency"
UNKNOWN_ACCOUNT = "CNF-NO-SUCH-ACCOUNT"  # never in an accounts file (the suite checks)
TEXT_SHOWN = 160  # characters of a refusal's text quoted in a sentence
RUN_TOKEN = secrets.token_hex(4).upper()  # end-to-end ids of this run: CNF<token><sequence>
_SEQUENCE = itertools.count(1)


class CaseFailed(Exception):
    """The bank did something the case does not allow: the text says what, in one sentence."""


class NotApplicable(Exception):
    """The case does not apply to this scheme or this bank: the text says why.

    When the reason is something the bank chose while the case ran (how it answered one
    message), not the scheme nor the bank's declaration, `path_seen` tells an exchange that
    shows the bank taking the path after all (a forward answered 202) and `path` names that
    path in words: the runner keeps NOT APPLICABLE only when no exchange of the whole run
    shows it, else fails the case (runner.confirm_not_applicable; docs/conformance.md,
    "Verdicts"), so that a bank cannot dodge a mandatory case by answering its one message
    otherwise."""

    def __init__(self, why: str, path_seen: Callable[[Exchange], bool] | None = None,
                 path: str = "") -> None:
        super().__init__(why)
        self.path_seen = path_seen
        self.path = path


class NotRun(Exception):
    """The case could not be run (an account role the file lacks, a hook the bank does not
    expose): the text says what is missing."""


@dataclass(frozen=True, slots=True)
class Roles:
    """The first account of each status in the accounts file (in VND), and the first open
    account in another currency (OTHER_CURRENCY)."""

    by_status: dict[str, TestAccount]

    @classmethod
    def of(cls, accounts: list[TestAccount]) -> Roles:
        roles: dict[str, TestAccount] = {}
        for account in accounts:
            if account.currency == SCHEME_CURRENCY:
                roles.setdefault(account.status, account)
            elif account.status == OPEN:
                roles.setdefault(OTHER_CURRENCY, account)
        return cls(roles)

    def need(self, status: str) -> TestAccount:
        account = self.by_status.get(status)
        if account is None and status == OTHER_CURRENCY:
            raise NotApplicable("the accounts file has no open account in another currency "
                                "than VND: a bank that holds none has nothing to refuse AC09")
        if account is None:
            raise NotRun(f"the accounts file has no {status} account")
        return account


@dataclass
class Context:
    lab: Lab
    accounts: Roles
    burst: int
    rules: Rules
    notes: list[str] = field(default_factory=list)
    measured: list[str] = field(default_factory=list)  # figures the terminal line shows
    _decoded: dict[tuple[int, str, bool], BusinessMessage | None] = field(default_factory=dict)

    def note(self, text: str) -> None:
        """A step of the case, in the order it happened (shown in the report)."""
        self.notes.append(text)

    def new_id(self) -> str:
        """An end-to-end id no other case and no other run uses (Max35Text)."""
        return f"CNF{RUN_TOKEN}{next(_SEQUENCE):06d}"

    @property
    def deadline_s(self) -> float:
        return self.lab.settings.creditor_timeout_s

    # ---- reading what passed the relays ---------------------------------------------------

    def message_of(self, exchange: Exchange, answer: bool = False) -> BusinessMessage | None:
        key = (exchange.seq, exchange.receiver, answer)
        if key not in self._decoded:
            self._decoded[key] = decoded_or_none(exchange.response_body if answer
                                                 else exchange.request_body)
        return self._decoded[key]

    def carries(self, exchange: Exchange, e2e: str, kind: type, answer: bool = False) -> bool:
        message = self.message_of(exchange, answer)
        if message is None or not isinstance(message.document, kind):
            return False
        document = message.document
        items = getattr(document, "transactions", None) or getattr(document, "items", [])
        return any(getattr(i, "end_to_end_id", None) == e2e
                   or getattr(i, "original_end_to_end_id", None) == e2e for i in items)

    def forward_of(self, e2e: str) -> Exchange | None:
        """The switch's pacs.008 to the bank that carried this transfer."""
        found = self.lab.bank_said(lambda e: e.sender == "switch"
                                   and self.carries(e, e2e, CreditTransferMessage))
        return found[0] if found else None

    # ---- the bank's test hooks ------------------------------------------------------------

    async def balance(self, account: TestAccount) -> Balance:
        answer = await self.lab.hook("GET", f"{BALANCES_PATH}/{account.account_id}")
        if answer.status == 404 and not answer.body.lstrip().startswith(b"{"):
            raise CaseFailed(f"the balance query GET {BALANCES_PATH}/{account.account_id} "
                             f"answered 404: the bank must expose it (docs/conformance.md)")
        if answer.status != 200:
            raise CaseFailed(f"the balance query for {account.account_id} answered HTTP "
                             f"{answer.status}: {_quote(answer.body)}")
        try:
            return Balance.model_validate_json(answer.body)
        except pydantic.ValidationError as error:
            raise CaseFailed(f"the balance query's answer is not the documented JSON: "
                             f"{error.errors()[0]['loc']}: {error.errors()[0]['msg']}") from None

    async def expect_credited_once(self, account: TestAccount, e2e: str, before: Balance,
                                   amount_vnd: int, times: int = 1) -> None:
        """The bank credits `e2e` (waiting up to CREDIT_WAIT_S for it), and by exactly
        `amount_vnd` × `times` however long one looks."""
        deadline_s = time.monotonic() + CREDIT_WAIT_S
        now = await self.balance(account)
        while e2e not in now.credited and time.monotonic() < deadline_s:
            await asyncio.sleep(0.2)
            now = await self.balance(account)
        if e2e not in now.credited:
            raise CaseFailed(f"the bank did not credit {e2e} within {CREDIT_WAIT_S:g} s of the "
                             "switch's ACSC (its balance query does not list it)")
        await asyncio.sleep(SETTLE_PAUSE_S)
        now = await self.balance(account)
        expected = amount_vnd * times
        moved = now.balance_vnd - before.balance_vnd
        if moved != expected:
            credits = moved / amount_vnd if amount_vnd else 0
            raise CaseFailed(f"the balance of {account.account_id} moved by {moved:,} VND, not "
                             f"{expected:,}: the transfer was credited {credits:g} times")
        self.note(f"{account.account_id} was credited {expected:,} VND, once per end-to-end id")

    async def expect_not_credited(self, account: TestAccount, e2e: str, before: Balance,
                                  why: str) -> None:
        """Nothing was credited since `before`: the balance is the same and `e2e` is not
        newly among the credits."""
        now = await self.balance(account)
        newly = e2e in now.credited and e2e not in before.credited
        if newly or now.balance_vnd != before.balance_vnd:
            raise CaseFailed(f"the bank credited {account.account_id} "
                             f"({now.balance_vnd - before.balance_vnd:+,} VND) {why}")
        self.note(f"{account.account_id} was not credited {why}")

    async def holds(self, account: TestAccount) -> list[str]:
        """The end-to-end ids the bank says it holds for the account (the balance answer's
        `held`); fails the case when the answer does not say."""
        held = (await self.balance(account)).held
        if held is None:
            raise CaseFailed(f"the balance query for {account.account_id} has no \"held\" "
                             "list: the bank must show its holds (docs/conformance.md, the "
                             "test hooks)")
        return held

    async def expect_released(self, account: TestAccount, e2e: str, why: str) -> None:
        """The bank no longer holds `e2e` (waiting up to CREDIT_WAIT_S for it to book)."""
        deadline_s = time.monotonic() + CREDIT_WAIT_S
        while e2e in (held := await self.holds(account)) and time.monotonic() < deadline_s:
            await asyncio.sleep(0.2)
        if e2e in held:
            raise CaseFailed(f"the bank still holds {e2e} on {account.account_id} "
                             f"{CREDIT_WAIT_S:g} s {why}: it never released the hold")
        self.note(f"the bank released its hold of {e2e} {why}")

    # ---- through the switch ---------------------------------------------------------------

    async def pay(self, account_id: str, name: str, amount_vnd: int,
                  citizen_id: str | None = None) -> tuple[str, TransactionStatus]:
        """One instant transfer from the treasury through the switch; its final status."""
        e2e = self.new_id()
        report = await self.lab.pay([self.lab.treasury_transfer(e2e, account_id, name,
                                                               amount_vnd, citizen_id)])
        status = report.transactions[0]
        self.note(f"the treasury paid {amount_vnd:,} VND to {account_id} ({name}) through the "
                  f"switch as {e2e}: the switch answered {status_text(status)}")
        return e2e, status

    def number(self, exchange: Exchange) -> int:
        """The exchange's number in this case's evidence (the report's numbering)."""
        mine = [e for e in self.lab.exchanges() if e.case == exchange.case]
        return mine.index(exchange) + 1

    def diagnose(self, e2e: str, status: TransactionStatus) -> str:
        """What the bank did to earn this status, from what passed the relays: the rule its
        answer broke with the exchange's number, the ids and the time measured; where the
        suite cannot tell, what it saw. Never a guess (issue #23's four misleading ones)."""
        forward = self.forward_of(e2e)
        reason = status.reason_code
        if status.reason_originator_bic == self.lab.bic:
            return f"the bank answered RJCT {reason}"
        if forward is None:
            return self._refused_unforwarded(e2e, status)
        where = f"exchange {self.number(forward)}"
        if forward.error:
            return f"the switch could not reach the bank ({where}): {forward.error}"
        if forward.ended_s is None:
            waited_s = time.time() - forward.started_s
            return (f"the bank had not answered the forward of {e2e} ({where}) {waited_s:.1f} s "
                    f"after it left the switch, past the {self.deadline_s:g} s deadline: the "
                    f"switch rejected it {reason}")
        took = f"{(forward.duration_s or 0.0) * 1000:,.0f} ms"
        if status.status is TxStatus.SETTLED:
            return f"the bank answered ACCP in {took} ({where}): the switch settled it"
        if forward.status not in (200, 202):
            return (f"the bank answered HTTP {forward.status} in {took} ({where}): "
                    f"{_quote(forward.response_body)}")
        problem = self.rules.answer_problem(forward, e2e)
        if problem is not None:
            return (f"{problem} ({where}, HTTP {forward.status} in {took}): the switch could "
                    f"not take it as the answer for {e2e} and rejected it {reason}")
        if reason == reasons.TIMEOUT_CREDITOR_AGENT:
            if forward.status == 202:
                posted = self.lab.bank_said(lambda e: e.sender == "bank" and self.carries(
                    e, e2e, PaymentStatusReport))
                if not posted:
                    return (f"the bank answered 202 in {took} ({where}) and posted no pacs.002 "
                            f"for {e2e} within the {self.deadline_s:g} s deadline")
                late_s = posted[0].started_s - forward.started_s
                return (f"the bank answered 202 in {took} ({where}) and posted its pacs.002 "
                        f"for {e2e} {late_s:.1f} s after the forward (exchange "
                        f"{self.number(posted[0])}), past the {self.deadline_s:g} s deadline")
            if (forward.duration_s or 0.0) > self.deadline_s:
                return (f"the bank answered after {took} ({where}), past the "
                        f"{self.deadline_s:g} s deadline")
        return (f"the switch gave {status_text(status)} after the bank's HTTP {forward.status} "
                f"answer in {took} ({where}); the suite saw no rule that answer broke")

    def _refused_unforwarded(self, e2e: str, status: TransactionStatus) -> str:
        """A status the switch gave without forwarding: AB08 when the bank's breaker was
        open, said with the forwards whose answers opened it."""
        if status.reason_code == reasons.OFFLINE_CREDITOR_AGENT:
            failed = [(forward, problem) for forward in self.lab.bank_said(
                lambda e: e.sender == "switch" and e.case == self.lab.case
                and isinstance(getattr(self.message_of(e), "document", None),
                               CreditTransferMessage))
                for problem in [self._forward_problem(forward)] if problem]
            if failed:
                forward, problem = failed[0]
                return (f"the switch refused {e2e} AB08 without forwarding it: the bank's "
                        f"breaker was open after {count(len(failed), 'forward')} it could not "
                        f"take; "
                        f"the first (exchange {self.number(forward)}): {problem}")
        return (f"the switch refused {e2e} {status.reason_code} before forwarding it: no "
                "forward of it passed the relay")

    def _forward_problem(self, forward: Exchange) -> str | None:
        """Why the switch counted this forward a failure, or None."""
        if forward.error:
            return forward.error
        if forward.status is not None and forward.status not in (200, 202):
            return f"HTTP {forward.status} {_quote(forward.response_body)}"
        message = self.message_of(forward)
        if message is None or not isinstance(message.document, CreditTransferMessage):
            return None
        first = message.document.transactions[0].end_to_end_id
        return self.rules.answer_problem(forward, first)

    async def confirmation(self, e2e: str, status: TxStatus = TxStatus.SETTLED) -> Exchange:
        """The switch's confirmation of `e2e` to the bank, acknowledged 2xx as documented."""
        assert self.lab.to_bank is not None
        exchange = await self.lab.to_bank.wait_for(
            lambda e: e.sender == "switch" and self.carries(e, e2e, PaymentStatusReport),
            CONFIRMATION_WAIT_S)
        if exchange is None:
            raise CaseFailed(f"the switch's {status} confirmation of {e2e} did not pass the relay "
                             f"within {CONFIRMATION_WAIT_S:g} s")
        if exchange.status is None or not 200 <= exchange.status < 300:
            raise CaseFailed(f"the bank answered the switch's {status} confirmation with "
                             f"{_answered(exchange)}, not 2xx: the switch will post it again")
        self.note(f"the switch confirmed {e2e} {status}; the bank acknowledged HTTP "
                  f"{exchange.status}")
        return exchange

    # ---- as the scheme --------------------------------------------------------------------

    def transfer(self, account: TestAccount, amount_vnd: int, name: str | None = None
                 ) -> tuple[CreditTransfer, CreditTransferMessage]:
        """A pacs.008 as the switch forwards one, for this account."""
        tx = self.lab.treasury_transfer(self.new_id(), account.account_id,
                                        name or account.holder_name, amount_vnd,
                                        account.citizen_id)
        return tx, self.lab.credit_transfer([tx])

    async def bank_verdicts(self, answer: Answer, message: CreditTransferMessage
                            ) -> dict[str, TransactionStatus]:
        """The bank's ACCP/RJCT per transaction: in the answer (200), or posted to the switch
        after a 202 (the switch, which never sent this message, refuses it 409)."""
        document = answer.document
        if answer.status == 200 and isinstance(document, PaymentStatusReport):
            return answer_per_transaction(document, message)
        if answer.status != 202:
            raise CaseFailed(f"the bank answered the pacs.008 with HTTP {answer.status}, not 200 "
                             f"with a pacs.002 or 202: {_quote(answer.body)}")
        assert self.lab.to_switch is not None
        e2e = message.transactions[0].end_to_end_id
        posted = await self.lab.to_switch.wait_for(
            lambda e: self.carries(e, e2e, PaymentStatusReport), self.deadline_s + 1)
        posted_message = None if posted is None else self.message_of(posted)
        if posted_message is None or not isinstance(posted_message.document,
                                                    PaymentStatusReport):
            raise CaseFailed(f"the bank answered 202 but posted no pacs.002 for {e2e} within "
                             f"the {self.deadline_s:g} s deadline")
        return {i.original_end_to_end_id: i for i in posted_message.document.transactions}

    async def accepted(self, account: TestAccount, amount_vnd: int, body: bytes | None = None,
                       headers: dict[str, str] | None = None,
                       made: tuple[CreditTransfer, CreditTransferMessage] | None = None
                       ) -> tuple[CreditTransfer, CreditTransferMessage, bytes]:
        """Send a pacs.008 as the scheme (`made` and its `body` and `headers`, or a new one
        signed now) and require the bank's ACCP."""
        tx, message = made or self.transfer(account, amount_vnd)
        body = body or self.lab.encode(message)
        verdict = (await self.bank_verdicts(await self.lab.post_to_bank(body, headers),
                                            message)).get(tx.end_to_end_id)
        if verdict is None or verdict.status is not TxStatus.ACCEPTED:
            raise CaseFailed(f"the bank answered {status_text(verdict) if verdict else 'nothing'} "
                             f"for a transfer to its open account {account.account_id}, not ACCP")
        self.lab.scheme_paid[tx.end_to_end_id] = (account.account_id, amount_vnd)
        self.note(f"as the switch, sent a pacs.008 of {amount_vnd:,} VND to "
                  f"{account.account_id} ({tx.end_to_end_id}): the bank answered ACCP")
        return tx, message, body

    async def confirm(self, tx: CreditTransfer, message: CreditTransferMessage,
                      status: TxStatus, reason_code: str | None = None) -> Answer:
        """Post the switch's confirmation (ACSC) or rejection (RJCT) of one transfer, as the
        scheme; the bank must acknowledge it 2xx."""
        report = PaymentStatusReport(
            msg_id=new_id("CNC"), created_at=datetime.now(UTC), original_msg_id=message.msg_id,
            original_msg_type=MessageType.CREDIT_TRANSFER, transactions=[TransactionStatus(
                original_end_to_end_id=tx.end_to_end_id, original_tx_id=tx.tx_id,
                status=status, reason_code=reason_code,
                reason_text=reasons.DESCRIPTIONS.get(reason_code or ""),
                original_msg_id=message.msg_id,
                reason_originator_bic=SWITCH_BIC if reason_code else None)])
        answer = await self.lab.post_to_bank(self.lab.encode(report))
        if tx.end_to_end_id in self.lab.scheme_paid:
            self.lab.scheme_outcomes[tx.end_to_end_id] = status
        if not 200 <= answer.status < 300:
            raise CaseFailed(f"the bank answered the switch's {status} "
                             f"{reason_code or ''} notice with HTTP {answer.status}, not 2xx: "
                             f"{_quote(answer.body)}")
        self.note(f"as the switch, posted {status}{' ' + reason_code if reason_code else ''} "
                  f"for {tx.end_to_end_id}: the bank acknowledged HTTP {answer.status}")
        return answer


def status_text(status: TransactionStatus | None) -> str:
    """ACSC, or RJCT AC04 (given by BANKVNVX): a status as a sentence quotes it."""
    if status is None:
        return "nothing"
    by = (f" (given by {status.reason_originator_bic})"
          if status.reason_originator_bic and status.reason_originator_bic != TREASURY_BIC
          else "")
    return f"{status.status}{' ' + status.reason_code if status.reason_code else ''}{by}"


def _quote(body: bytes) -> str:
    text = " ".join(body.decode(errors="replace").split())
    return repr(text[:TEXT_SHOWN] + ("…" if len(text) > TEXT_SHOWN else "")) if text else "(empty)"


def _answered(exchange: Exchange) -> str:
    if exchange.status is None:
        return exchange.error or "no answer"
    return f"HTTP {exchange.status} {_quote(exchange.response_body)}"
